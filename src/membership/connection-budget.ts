/**
 * Keeps the number of connections a member holds bounded, whatever the size of
 * the cluster. Membership needs only its ring neighbours and the gossip mesh; a
 * connection opened for anything else (a sync, an indirect probe, a dead member
 * tried again, an inbound dial) is closed again once the member holds more than
 * its budget, least recently used first. Without this, connections only ever
 * accumulate, every member ends up connected to every other (docs/scale.md), and
 * at libp2p's limit new dials are refused, which a prober cannot tell from a
 * crash.
 */

/** Connections a member aims to stay within (issue 19: at most 64 per member). */
export const CONNECTION_BUDGET = 48

/** A connection used this recently is never trimmed (a sync or probe may be about to reuse it). */
export const CONNECTION_IDLE_MS = 10_000

/** What the budget needs to know of a connection (a libp2p Connection has all of it). */
export interface TrimmableConnection {
  remotePeer: { toString(): string }
  timeline: { open: number }
  streams: Array<{ protocol?: string }>
}

export interface TrimRules {
  /** Peers whose connections stay: ring neighbours, gossip mesh peers. */
  keep: ReadonlySet<string>
  /** Protocols whose open streams do not count as use (long-lived gossip, identify, membership's own). */
  background: (protocol: string) => boolean
}

export class ConnectionBudget {
  private readonly lastUsed = new Map<string, number>()

  constructor(
    private readonly budget = CONNECTION_BUDGET,
    private readonly idleMs = CONNECTION_IDLE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Notes that membership just used (or was used by) `peer`. */
  touch(peer: string): void {
    this.lastUsed.set(peer, this.now())
  }

  forget(peer: string): void {
    this.lastUsed.delete(peer)
  }

  /**
   * The connections to close so that at most `budget` remain, least recently used
   * first; never a kept peer's, one in use by another subsystem (a stream of a
   * protocol that is not background: a raft link, a transfer, a command), nor one
   * used within `idleMs`. Fewer than needed when the rest must stay.
   */
  excess<C extends TrimmableConnection>(connections: readonly C[], rules: TrimRules): C[] {
    const over = connections.length - this.budget
    if (over <= 0) return []
    const now = this.now()
    const lastUse = (c: C) => Math.max(this.lastUsed.get(c.remotePeer.toString()) ?? 0, c.timeline.open)
    const candidates = connections.filter(
      (c) =>
        !rules.keep.has(c.remotePeer.toString()) &&
        now - lastUse(c) >= this.idleMs &&
        c.streams.every((s) => s.protocol == null || rules.background(s.protocol)),
    )
    for (const id of this.lastUsed.keys())
      if (now - this.lastUsed.get(id)! > this.idleMs * 60) this.lastUsed.delete(id)
    return candidates.sort((a, b) => lastUse(a) - lastUse(b)).slice(0, over)
  }
}
