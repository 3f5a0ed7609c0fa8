import type { MembershipTimers } from './config.js'

/**
 * Timer presets. The anchors are memberlist's LAN defaults (probe every 1 s, probe
 * timeout 500 ms, k = 3 indirect probes, suspicion = 4 x log10(N) x interval);
 * `lan` halves the probe interval and the suspicion multiplier so that a dead
 * member is declared within ~2 s at N = 50 (the design target is <= 3 s), relying
 * on Lifeguard's local-health scaling to keep a slow prober from accusing others.
 */
export const LAN_TIMERS: MembershipTimers = {
  /** ms between two probes started by this node; scaled by local health. */
  probeInterval: 500,
  /** ms to wait for a direct ack; scaled by local health. */
  probeTimeout: 300,
  /** ms added to a probe's deadline when there is no connection yet (dial, noise and identify handshakes). */
  connectTimeout: 1_000,
  /** members asked to probe a target indirectly before it is suspected (SWIM's k). */
  indirectChecks: 3,
  /** minimum suspicion = suspicionMult x max(1, log10(N)) x probeInterval: 1 s at N = 10, 1.7 s at N = 50. */
  suspicionMult: 2,
  /** maximum suspicion = suspicionMaxTimeoutMult x minimum; shrinks to the minimum as confirmations arrive. */
  suspicionMaxTimeoutMult: 3,
  /** local-health ceiling: timeouts and the probe interval stretch up to (awarenessMax + 1) x. */
  awarenessMax: 8,
  /** ms between full state push/pull exchanges with one random member (anti-entropy). */
  syncInterval: 15_000,
  /** ms between attempts to reach the bootstrap list while this node knows no other member. */
  joinRetryInterval: 2_000,
  /** ms a dead or left member stays in the view before it is forgotten. */
  reapTimeout: 60_000,
  /** ms a graceful leave waits for peers to acknowledge it before shutting down. */
  leaveTimeout: 2_000,
  /**
   * ms between attempts to reach one member declared dead (not left), chosen at
   * random: after a network split each side has declared the other dead, and
   * without these attempts the halves would never merge again (Serf#605).
   */
  reconnectInterval: 2_000,
  /** ms a dead member is kept on the reconnect list (Serf keeps 24 h; a restarted node rejoins by itself). */
  reconnectTimeout: 6 * 3600_000,
}

/** For WAN-ish clouds where latencies vary: memberlist's own defaults. */
export const CLOUD_TIMERS: MembershipTimers = {
  ...LAN_TIMERS,
  probeInterval: 1_000,
  probeTimeout: 500,
  connectTimeout: 2_000,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  syncInterval: 30_000,
  joinRetryInterval: 5_000,
  reconnectInterval: 5_000,
}

/** Short timers for tests (Serf's tests shrink the probe interval the same way). */
export const TEST_TIMERS: MembershipTimers = {
  ...LAN_TIMERS,
  probeInterval: 100,
  probeTimeout: 150,
  connectTimeout: 500,
  suspicionMult: 3,
  syncInterval: 1_000,
  joinRetryInterval: 200,
  reapTimeout: 3_000,
  leaveTimeout: 1_000,
  reconnectInterval: 300,
  reconnectTimeout: 120_000,
}

export const TIMER_PRESETS = { lan: LAN_TIMERS, cloud: CLOUD_TIMERS, test: TEST_TIMERS } as const
export type TimerPreset = keyof typeof TIMER_PRESETS

/** Largest membership message (a full-state sync of ~1,000 members with metadata fits). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/** Largest metadata a member may publish about itself, serialized. */
export const MAX_METADATA_BYTES = 16 * 1024
export const MAX_ADDRS = 32
export const PROTOCOL_VERSION = '1.0.0'
/** Sync rounds after start that run every 2 probe intervals instead of every sync interval. */
export const CATCH_UP_SYNCS = 4

/** Failed joins in a row through one bootstrap address before the agent logs that it cannot reach it. */
export const BOOTSTRAP_WARN_AFTER = 3
