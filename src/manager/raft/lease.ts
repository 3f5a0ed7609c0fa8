/**
 * The leader lease: how long a leader may act alone (answer reads, tell clients
 * it is the leader) after a majority acknowledged it, without hearing again.
 *
 * Why it holds. A follower that received a leader's message at time r refuses
 * every vote and pre-vote (except a leadership transfer's) and starts no
 * election of its own until it has counted `electionTicks` ticks since r (leader
 * stickiness, thesis §4.2.3); a node that just started does the same. So no
 * other leader can be elected, by a majority that must include one of those
 * followers, before r + (electionTicks − 1)·P_f in real time (its first tick may
 * come right after r). The leader measures its lease from the tick it *sent* the
 * acknowledged message (s ≤ r), and it ends at most leaseTicks·P_l after s. With
 * tick periods that differ by at most a ratio ρ from the nominal one (P_f/P_l ≥
 * (1−ρ)/(1+ρ)), the lease ends first when
 *
 *     leaseTicks ≤ (electionTicks − 1) · (1 − ρ) / (1 + ρ).
 *
 * Assumptions, which the adapter must keep: ticks count real elapsed time on a
 * monotonic clock (a paused or starved process catches up on the ticks it missed
 * before it acts: a late timer must not stretch the lease), clocks run at rates
 * within ρ of each other (ρ is drift, not offset; NTP steps do not matter on a
 * monotonic clock), and a leader that hands over leadership (TimeoutNow) stops
 * acting at once, since voters ignore stickiness for that election.
 */
import { RaftConfigError } from './errors.js'

/** The longest safe lease for these settings. */
export function maxLeaseTicks(electionTicks: number, maxClockDrift: number): number {
  return Math.floor(((electionTicks - 1) * (1 - maxClockDrift)) / (1 + maxClockDrift))
}

export function checkLease(leaseTicks: number, electionTicks: number, maxClockDrift: number): void {
  const max = maxLeaseTicks(electionTicks, maxClockDrift)
  if (!(Number.isInteger(leaseTicks) && leaseTicks >= 1 && leaseTicks <= max))
    throw new RaftConfigError(
      `leaseTicks must be a whole number in [1, ${max}] for electionTicks ${electionTicks} and ` +
        `maxClockDrift ${maxClockDrift} (lease.ts gives the formula); got ${leaseTicks}`,
    )
}
