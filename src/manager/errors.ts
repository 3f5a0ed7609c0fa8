import { errorClass } from '../shared/index.js'

/**
 * No manager can take the command: none reachable, or it is still catching up with
 * the cluster state. Retry in a moment.
 */
export class NoManagerError extends errorClass('ERR_NO_MANAGER') {}

/** No manager that sees a majority of the voters: nothing cluster-wide can be decided on this side. */
export class NoQuorumError extends errorClass('ERR_NO_QUORUM') {}

/** The rollout has ended, or is rolling back: it takes no more commands. */
export class RolloutFinishedError extends errorClass('ERR_ROLLOUT_FINISHED') {
  constructor(id: string, state: string) {
    super(`rollout ${id} is ${state}`)
  }
}

/** Approve: the rollout is not waiting for approval. */
export class NotWaitingError extends errorClass('ERR_NOT_WAITING') {
  constructor(id: string, state: string) {
    super(`rollout ${id} is ${state}, not waiting for approval`)
  }
}

/** Resume: the rollout is not paused. */
export class NotPausedError extends errorClass('ERR_NOT_PAUSED') {
  constructor(id: string) {
    super(`rollout ${id} is not paused`)
  }
}

/** A rollback to the version every node already runs. */
export class AlreadyRunningError extends errorClass('ERR_ALREADY_RUNNING') {
  constructor(target: string) {
    super(`every node already runs ${target}; nothing to roll back`)
  }
}

/** A rollback without `--to` when there is no earlier version to go back to. */
export class NoPreviousVersionError extends errorClass('ERR_NO_PREVIOUS') {
  constructor(name: string) {
    super(`no earlier version of ${name} to roll back to; name one with --to`)
  }
}

/** A rollout names nodes that are not members of the cluster. */
export class UnknownNodeError extends errorClass('ERR_UNKNOWN_NODE') {
  constructor(ids: readonly string[]) {
    super(`no member ${ids.join(', ')} in the cluster`)
  }
}

/** No distribution of that name and version is known (`knownTo`: this agent, the manager). */
export class UnknownDistributionError extends errorClass('ERR_UNKNOWN_DISTRIBUTION') {
  constructor(id: string, knownTo = 'this agent') {
    super(`no distribution ${id} is known to ${knownTo}`)
  }
}

/** The manifest's `placement` breaks a rule; `field` is the path below `placement`, when there is one. */
export class PlacementError extends errorClass('ERR_MANIFEST_INVALID') {
  constructor(detail: string, field?: string) {
    super(`placement${field == null ? '' : `.${field}`}: ${detail}`)
  }
}

/** The cluster unpublished this version (`shoal unpublish`): its id is never used again. */
export class VersionUnpublishedError extends errorClass('ERR_VERSION_UNPUBLISHED') {
  constructor(id: string) {
    super(
      `${id} was unpublished from this cluster and its version cannot be used again; publish under a new version`,
    )
  }
}

/** The version runs somewhere, is wanted, or a rollout names it (kept for rollback). */
export class VersionInUseError extends errorClass('ERR_VERSION_IN_USE') {
  constructor(id: string, why: string) {
    super(`${id} ${why}; only a version never rolled out can be unpublished (retention drops old ones)`)
  }
}

/** `shoal voters reset` on a node that holds no log of the cluster: run it on a node that was a voter. */
export class NoRaftLogError extends errorClass('ERR_NO_RAFT_LOG') {
  constructor() {
    super(
      'this node holds no log of the cluster (it never was a voter or learner); run `shoal voters reset --force` on a node that was a voter',
    )
  }
}

/** An analysis condition (or its options) the manager cannot judge a rollout by. */
export class BadAnalysisError extends errorClass('ERR_BAD_ANALYSIS') {}
