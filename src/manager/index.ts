/**
 * Manager: what the cluster decides as a whole. Every agent takes part in the
 * election; the elected manager (with a majority of the voters) keeps the
 * replicated cluster state: voters, the version each node should run, the
 * rollouts that move them (all-at-once, rolling, canary; approval, pause,
 * abort, rollback) and their audit trail.
 */

export {
  type AnalysisSpec,
  analysisSchema,
  type Condition,
  judge,
  METRICS,
  ON_MISSING,
  parseCondition,
  show as showFigure,
  type Verdict,
  verdictSchema,
} from './analysis.js'
export {
  CLAIM_KEY,
  type ManagerAnnouncement,
  managerAnnouncement,
  STATE_KEY,
  type StateHead,
} from './announcement.js'
export { CommandClient, type CommandClientComponents } from './command-client.js'
export { publishedStateTrust } from './consensus/published-proof.js'
export { RaftStorage } from './consensus/raft-storage.js'
export { HISTORY_LENGTH, ROLLOUT_DEFAULTS } from './constants.js'
export {
  commandSchema,
  type ManagerCommand,
  type Unpublishing,
} from './decisions.js'
export {
  type DesiredState,
  desiredOf,
  desiredState,
  type FollowedStore,
  UnpublishedFollower,
} from './desired-state.js'
export { type ElectionView, isEligible } from './election.js'
export {
  AlreadyRunningError,
  BadAnalysisError,
  NoManagerError,
  NoPreviousVersionError,
  NoQuorumError,
  NoRaftLogError,
  NotPausedError,
  NotWaitingError,
  PlacementError,
  RolloutFinishedError,
  UnknownDistributionError,
  UnknownNodeError,
  VersionInUseError,
  VersionUnpublishedError,
} from './errors.js'
export {
  Manager,
  type ManagerComponents,
  type ManagerInit,
  type ManagerStatus,
  type VotersView,
} from './manager.js'
export {
  type Assignment,
  moves,
  type PlacementSpec,
  parsePlacement,
  place,
} from './placement.js'
export {
  type ClusterState,
  ClusterStateStore,
  emptyState,
  NODE_PROGRESS,
  ROLLOUT_STATES,
  ROLLOUT_STRATEGIES,
  type RolloutRecord,
  type RolloutState,
  type RolloutStrategy,
  rolloutSchema,
  runsHere,
  targetOf,
  type UnpublishedVersion,
} from './record.js'
export { retentionGuard, versionsInUse } from './retention.js'
export { isFinished, step, targetsOf } from './rollout-engine.js'
export { type RolloutNode, type RolloutView, rolloutView } from './rollout-view.js'
