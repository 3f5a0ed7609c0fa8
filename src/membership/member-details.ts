import type { MemberMetadata } from './member.js'

/**
 * The order of one member's details: its incarnation when they were written, then
 * a counter its process raises with each change. A restart raises the incarnation,
 * so a new process's details beat the old one's even with its counter back at 1.
 */
export interface DetailVersion {
  inc: number
  dv: number
}

/** One member's details (its metadata keys of reach `watchers`) as this node holds them. */
export interface Detail extends DetailVersion {
  id: string
  meta: MemberMetadata
}

export function isNewerDetail(a: DetailVersion, b: DetailVersion | undefined): boolean {
  return b == null || a.inc > b.inc || (a.inc === b.inc && a.dv > b.dv)
}

/**
 * Details by member: a watcher's from what members send it, anyone's own, and a
 * non-watcher's copy fetched from a watcher for its API. Every change gets the next
 * sequence number, and the map keeps entries in that order, so "what changed after
 * sequence s" (a non-watcher's refresh) is a walk from the end.
 */
export class MemberDetails {
  private readonly byId = new Map<string, Detail & { seq: number }>()
  private seq = 0

  get(id: string): Detail | undefined {
    return this.byId.get(id)
  }

  /** Stores `detail` when newer than the one held; true when it did. */
  set(detail: Detail): boolean {
    const current = this.byId.get(detail.id)
    if (!isNewerDetail(detail, current)) return false
    this.byId.delete(detail.id)
    this.byId.set(detail.id, { ...detail, seq: ++this.seq })
    return true
  }

  delete(id: string): void {
    this.byId.delete(id)
  }

  /** The sequence number of the latest change. */
  get latest(): number {
    return this.seq
  }

  get size(): number {
    return this.byId.size
  }

  /**
   * The details changed after sequence `after`, oldest first, as many as fit
   * `maxBytes` of JSON (at least one); `upTo`, the sequence of the last one given.
   */
  since(after: number, maxBytes: number): { details: Detail[]; upTo: number; more: boolean } {
    const newer: Array<Detail & { seq: number }> = []
    const entries = [...this.byId.values()]
    for (let i = entries.length - 1; i >= 0 && entries[i]!.seq > after; i--) newer.push(entries[i]!)
    newer.reverse()
    const details: Detail[] = []
    let bytes = 0
    let upTo = after
    for (const entry of newer) {
      const { seq, ...detail } = entry
      const size = JSON.stringify(detail).length
      if (details.length > 0 && bytes + size > maxBytes) return { details, upTo, more: true }
      details.push(detail)
      bytes += size
      upTo = seq
    }
    return { details, upTo: Math.max(upTo, after), more: false }
  }
}
