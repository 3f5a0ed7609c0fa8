import type { TimerPreset } from '../membership/index.js'

/**
 * How often the manager loop runs (elect, keep the voters, step the rollout,
 * place components). Well below a failure-detection round, so the hand-over
 * after a manager is declared dead costs one tick more.
 */
export const MANAGER_TICK_MS: Record<TimerPreset, number> = { lan: 250, cloud: 500, test: 100 }

/**
 * A voter dead this long leaves the voting set, decided by a manager that sees
 * a majority (so a minority side never shrinks the set to give itself quorum).
 * Long enough to outlast a restart or a short partition, short enough that a
 * cluster that really lost nodes can decide again without them.
 */
export const VOTER_REMOVAL_MS: Record<TimerPreset, number> = { lan: 30_000, cloud: 120_000, test: 5000 }

/** A candidate asks each voter whom it follows before it claims a term (pre-vote); the connection usually exists. */
export const PRE_VOTE_TIMEOUT_MS: Record<TimerPreset, number> = { lan: 1000, cloud: 2000, test: 500 }

/**
 * A node alone, with no cluster state, waits this long after start before it
 * founds a cluster by itself: enough for a joining node to reach its bootstrap
 * peers (or mDNS to answer) and hear of the existing manager first.
 */
export const FORMATION_WAIT_MS: Record<TimerPreset, number> = { lan: 3000, cloud: 6000, test: 1000 }

/** How long a command waits for a manager that can act before ERR_NO_QUORUM (a hand-over takes a few ticks). */
export const MANAGER_WAIT_MS = 3000

/** One command exchange with the manager, dial to answer. */
export const COMMAND_TIMEOUT_MS = 10_000
export const MAX_COMMAND_BYTES = 64 * 1024

/** A version named a moment ago on another agent may still be on its way here. */
export const LEARN_WAIT_MS = 5000

/** Rollouts kept in the cluster state (the audit trail `shoal history` shows). */
export const HISTORY_LENGTH = 30

/** How long a manager's write waits for a newer state some member announces (a new term catching up). */
export const STATE_CATCH_UP_MS = 3000

/** Fetching the cluster state from a member that announces a newer head. */
export const STATE_FETCH_TIMEOUT_MS = 5000
export const MAX_STATE_BYTES = 4 * 1024 * 1024

/** Rollout defaults when the command does not say. */
export const ROLLOUT_DEFAULTS = {
  /** rolling: nodes out of rotation at once */
  maxUnavailable: 1,
  /** canary: share of the nodes switched first, percent */
  canaryPercent: 20,
  /** rolling and canary: a switched node stays ready this long before the next goes */
  minReadyMs: 1000,
  /** failed nodes that stop a rollout */
  failureThreshold: 1,
  /**
   * A node's switch that has not finished this long after its turn came fails
   * (and, by default, the rollout rolls back): Kubernetes' progressDeadlineSeconds
   * default, 600 s. It bounds a start that never becomes healthy, whatever the
   * components' own start timeouts and crash-loop back-off add up to.
   */
  progressDeadlineMs: 600_000,
} as const

/**
 * After every holder of a newer cluster state failed to serve it (a timeout on a
 * loaded host, say), the members are scanned again this long after: a head is
 * otherwise only fetched when its holder announces again, which may be never.
 */
export const STATE_RETRY_MS = 1000
