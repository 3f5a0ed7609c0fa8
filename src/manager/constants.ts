/** How long a command waits for a manager that can act before ERR_NO_QUORUM (a hand-over takes a few ticks). */
export const MANAGER_WAIT_MS = 3000

/** One command exchange with the manager, dial to answer. */
export const COMMAND_TIMEOUT_MS = 10_000
export const MAX_COMMAND_BYTES = 64 * 1024

/** A version named a moment ago on another agent may still be on its way here. */
export const LEARN_WAIT_MS = 5000

/**
 * How long an agent's answer to a command waits for the cluster state that shows it
 * to reach this agent (read-your-writes: a client's next read here agrees), and how
 * often it looks. An answer is not held longer: the state follows on its own.
 */
export const COMMAND_VISIBLE_WAIT_MS = 3000
export const COMMAND_VISIBLE_POLL_MS = 20

/** How often a rollout asked of this agent looks for its version while LEARN_WAIT_MS runs. */
export const LEARN_POLL_MS = 100

/** Retention keeps both versions of this many of the newest rollouts (a rollback needs its target on the nodes). */
export const RETAINED_ROLLOUTS = 3

/** Rollouts kept whole in the cluster state, with each node's progress, base and failure. */
export const HISTORY_LENGTH = 30
/**
 * Rollouts kept in the audit trail (`shoal history`): past the newest HISTORY_LENGTH
 * a record keeps what was asked, by whom, when, how it ended and its actions, not its
 * per-node maps (about 0.5 KB each instead of kilobytes per node; every agent fetches
 * the state after each change).
 */
export const AUDIT_LENGTH = 300

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
  /** analysis: each step's window of traffic (Flagger's and Argo's usual interval is a minute; 30 s judges sooner) */
  intervalMs: 30_000,
  /** analysis: fewer requests in a window make the verdict inconclusive (a 1 % error rate needs ~100 to show) */
  minRequests: 100,
} as const

/**
 * A window is judged this long after it ends: a load balancer counts a request in
 * the second it answered, so the last second is complete one second later; the rest
 * covers clocks a little apart.
 */
export const ANALYSIS_GRACE_MS = 1500

/**
 * When no load balancer answers for a window, the manager asks again until this long
 * after the window ended, then judges what it has (nothing: inconclusive).
 */
export const ANALYSIS_FETCH_PATIENCE_MS = 10_000

/**
 * After every holder of a newer cluster state failed to serve it (a timeout on a
 * loaded host, say), the members are scanned again this long after: a head is
 * otherwise only fetched when its holder announces again, which may be never.
 */
export const STATE_RETRY_MS = 1000

/** A leader leaving gracefully spends at most this long bringing a successor in and handing over (then it just leaves). */
export const HAND_OVER_MS = 15_000
