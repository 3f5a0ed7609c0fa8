import type { Awareness } from './awareness.js'
import type { MembershipTimers } from './config.js'

/**
 * What an overloaded member does instead of collapsing (issue 19). A member whose
 * event loop runs late sees its probes time out although its peers answered; if it
 * accused them, they would refute, the refutations and accusations would load
 * everyone, and the cluster would fall into a storm of false suspicions (100
 * members on 2 cores did, docs/scale.md). So:
 * - a loop that wakes far later than it asked to is a stall: local health (Lifeguard)
 *   goes up, which slows this member's probing and stretches its timeouts;
 * - for a while after a stall, and while local health is poor, this member's own
 *   verdicts are unreliable: a failed probe accuses nobody (the member's other
 *   observers still can: a dead verdict needs several, member-table.ts);
 * - accusations it publishes are rate-limited, and refutations of accusations about
 *   itself go out once per probe interval at most (Membership.announceSelf), so a
 *   burst costs the cluster a bounded amount of gossip.
 */
export class Backpressure {
  private unreliableUntil = 0
  private tokens: number
  private refilledAt: number

  constructor(
    private readonly timers: MembershipTimers,
    private readonly awareness: Awareness,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = ACCUSATION_BURST
    this.refilledAt = now()
  }

  /** A loop woke `lateMs` after it meant to. */
  woke(lateMs: number): void {
    if (lateMs <= this.timers.probeTimeout) return
    this.awareness.apply(1)
    this.unreliableUntil = Math.max(
      this.unreliableUntil,
      this.now() + this.timers.probeInterval * QUIET_INTERVALS,
    )
  }

  /** Whether a failed probe of this member may accuse anyone now. */
  get reliable(): boolean {
    return this.now() >= this.unreliableUntil && this.awareness.health < this.unreliableHealth
  }

  /** Takes one accusation's worth of gossip; false when over the rate (keep it local). */
  mayAccuse(): boolean {
    const now = this.now()
    const perMs = ACCUSATIONS_PER_INTERVAL / this.timers.probeInterval
    this.tokens = Math.min(ACCUSATION_BURST, this.tokens + (now - this.refilledAt) * perMs)
    this.refilledAt = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }

  /** Local health from which this member's verdicts are not trusted: half the ceiling. */
  private get unreliableHealth(): number {
    return Math.max(1, Math.ceil(this.timers.awarenessMax / 2))
  }
}

/** Probe intervals after a stall during which this member accuses nobody. */
export const QUIET_INTERVALS = 4
/** Accusations (suspicions and confirmations) a member may publish per probe interval, on average. */
export const ACCUSATIONS_PER_INTERVAL = 4
export const ACCUSATION_BURST = 16
