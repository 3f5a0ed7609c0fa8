export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

/**
 * What a node says about itself, as JSON: each key declared once by the subsystem
 * that writes it (metadata-contract.ts); read through its owner's announcement
 * (`runtimeAnnouncement.of(member).components`), never by casting.
 */
export type MemberMetadata = Readonly<Record<string, unknown>>

/** A member as every node's view holds it; `incarnation` orders claims about it. */
export interface MemberRecord {
  id: string
  addrs: string[]
  incarnation: number
  state: MemberState
  meta: MemberMetadata
}

/** A member as the view shows it to callers. */
export interface Member extends MemberRecord {
  /** True for the node that holds this view. */
  self: boolean
  /** Local wall-clock ms when this view last saw the state change (display only, never compared across nodes). */
  since: number
}

/**
 * A statement about a member, as disseminated by gossip or exchanged in a sync.
 * `from` names the member that made a suspect or dead accusation.
 */
export type Claim =
  | { kind: 'alive'; id: string; incarnation: number; addrs: string[]; meta: MemberMetadata }
  /**
   * A member's own metadata change, as the keys that changed since incarnation `base`
   * (`set`, `drop`): an alive claim without what stayed the same. A view that does not
   * hold `base` asks the member for its whole record instead.
   */
  | {
      kind: 'patch'
      id: string
      incarnation: number
      base: number
      set: MemberMetadata
      drop: string[]
    }
  /** `refused`: `from`'s probe found the member's port closed (its process is gone, docs/architecture.md). */
  | { kind: 'suspect'; id: string; incarnation: number; from: string; refused?: boolean }
  | { kind: 'dead'; id: string; incarnation: number; from: string }
  | { kind: 'left'; id: string; incarnation: number }

/** The claims that reproduce a record in another view: its alive facts, then its state. */
export function claimsOfRecord(record: MemberRecord, from: string): Claim[] {
  const alive: Claim = {
    kind: 'alive',
    id: record.id,
    incarnation: record.incarnation,
    addrs: record.addrs,
    meta: record.meta,
  }
  switch (record.state) {
    case 'alive':
      return [alive]
    case 'suspect':
      return [alive, { kind: 'suspect', id: record.id, incarnation: record.incarnation, from }]
    case 'dead':
      return [alive, { kind: 'dead', id: record.id, incarnation: record.incarnation, from }]
    case 'left':
      return [alive, { kind: 'left', id: record.id, incarnation: record.incarnation }]
  }
}
