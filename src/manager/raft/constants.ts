/**
 * Defaults of RaftInit (raft-node.ts). Times are in ticks: the adapter chooses
 * the tick period (the manager's `lan` preset: 100 ms, so an election timeout of
 * 1–2 s and a heartbeat every 100 ms).
 */

/** Minimum election timeout; each node draws its timeout in [E, 2E). 10 ticks ≈ 10 heartbeats, as etcd. */
export const DEFAULT_ELECTION_TICKS = 10
/** A heartbeat per tick: followers hear 10 times per election timeout, so loss rarely starts an election. */
export const DEFAULT_HEARTBEAT_TICKS = 1
/** Clock rate difference the lease tolerates between any two nodes (1 %: far above a quartz's 100 ppm). */
export const DEFAULT_MAX_CLOCK_DRIFT = 0.01
/** Unacknowledged appends per follower in flight: bounds memory and re-sends after a loss. */
export const DEFAULT_MAX_INFLIGHT = 64
/** Entries and bytes per append (always at least one entry). */
export const DEFAULT_MAX_ENTRIES_PER_MESSAGE = 64
export const DEFAULT_MAX_BYTES_PER_MESSAGE = 1024 * 1024
/** Entries handed to the state machine per Ready. */
export const DEFAULT_MAX_APPLY_PER_READY = 256
/** Ask the state machine for a snapshot once this many entries were applied since the last one. */
export const DEFAULT_SNAPSHOT_THRESHOLD = 1000
/** Configuration records a candidate sends with its (pre-)vote requests, so voters that missed that many changes can verify it. */
export const VOTE_REQUEST_CHAIN = 8
