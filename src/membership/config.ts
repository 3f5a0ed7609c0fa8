import { ConfigError } from '../shared/index.js'

/**
 * Membership's timers, all given by the agent from its preset (the table in
 * src/shared/presets.ts, which holds each formula; docs/configuration.md shows
 * it). Each `@default` reads: lan value (the default preset); cloud, test.
 */
export interface MembershipTimers {
  /**
   * ms between two probes started by this node; scaled by local health.
   * @default 500 (lan; cloud 1_000, test 100)
   */
  probeInterval: number
  /**
   * ms to wait for a direct ack; scaled by local health.
   * @default 300 (lan; cloud 500, test 150)
   */
  probeTimeout: number
  /**
   * ms added to a probe's deadline when there is no connection yet (dial, noise and identify handshakes).
   * @default 1_000 (lan; cloud 2_000, test 500)
   */
  connectTimeout: number
  /**
   * Members asked to probe a target indirectly before it is suspected (SWIM's k).
   * @default 3 (lan; cloud 3, test 3)
   */
  indirectChecks: number
  /**
   * Multiplier: minimum suspicion = suspicionMult x max(1, log10(N)) x probeInterval.
   * @default 2 (lan; cloud 4, test 3)
   */
  suspicionMult: number
  /**
   * Multiplier: maximum suspicion = suspicionMaxTimeoutMult x minimum; shrinks to the minimum as confirmations arrive.
   * @default 3 (lan; cloud 6, test 3)
   */
  suspicionMaxTimeoutMult: number
  /**
   * ms: floor of a suspicion's timeout while no observer saw the member's port closed (connection refused).
   * @default 4_000 (lan; cloud 8_000, test 1_000)
   */
  stallTolerance: number
  /**
   * Local-health ceiling (a score): timeouts and the probe interval stretch up to (awarenessMax + 1) x.
   * @default 8 (lan; cloud 8, test 8)
   */
  awarenessMax: number
  /**
   * ms between full state push/pull exchanges with one random member (anti-entropy).
   * @default 15_000 (lan; cloud 30_000, test 1_000)
   */
  syncInterval: number
  /**
   * ms between attempts to reach the bootstrap list while this node knows no other member.
   * @default 2_000 (lan; cloud 5_000, test 200)
   */
  joinRetryInterval: number
  /**
   * ms a dead or left member stays in the view before it is forgotten.
   * @default 60_000 (lan; cloud 60_000, test 3_000)
   */
  reapTimeout: number
  /**
   * ms a graceful leave waits for peers to acknowledge it before shutting down.
   * @default 2_000 (lan; cloud 2_000, test 1_000)
   */
  leaveTimeout: number
  /**
   * ms between attempts to reach one member declared dead (not left), chosen at
   * random: after a split each side has declared the other dead, and without
   * these attempts the halves would never merge again (Serf#605).
   * @default 2_000 (lan; cloud 5_000, test 300)
   */
  reconnectInterval: number
  /**
   * ms a dead member is kept on the reconnect list (6 h; Serf keeps 24 h, a restarted node rejoins by itself).
   * @default 21_600_000 (lan; cloud 21_600_000, test 120_000)
   */
  reconnectTimeout: number
}

/** Timers (a preset's, from the agent) with overrides on top, checked once at start. */
export function resolveTimers(
  base: MembershipTimers,
  overrides: Partial<MembershipTimers> = {},
): MembershipTimers {
  const timers = { ...base, ...overrides }
  for (const [key, value] of Object.entries(timers)) {
    if (!Number.isFinite(value) || value < 0)
      throw new ConfigError(`membership timer ${key} must be a number >= 0`)
  }
  if (timers.probeTimeout >= timers.probeInterval * (timers.awarenessMax + 1)) {
    throw new ConfigError('membership probeTimeout must be shorter than the stretched probe interval')
  }
  return timers
}

/**
 * Suspicion bounds for a cluster of n members (Lifeguard): min = mult x max(1, log10 n)
 * x interval, max = maxMult x min (at least the stall tolerance); `stallFloor`, the
 * shortest timeout while the observers have not agreed that the member's port is closed.
 */
export function suspicionBounds(
  timers: MembershipTimers,
  n: number,
): { min: number; max: number; stallFloor: number } {
  const min = timers.suspicionMult * Math.max(1, Math.log10(Math.max(1, n))) * timers.probeInterval
  const max = Math.max(min * timers.suspicionMaxTimeoutMult, timers.stallTolerance)
  return { min, max, stallFloor: Math.min(timers.stallTolerance, max) }
}
