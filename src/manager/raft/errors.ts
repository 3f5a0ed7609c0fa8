/**
 * The failures a caller of the core can act on, each with a stable code
 * (docs/raft.md). The core throws them from propose / proposeConfigChange /
 * transferLeadership; the messages say what to do.
 */
import type { NodeId } from './types.js'

export class RaftError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'RaftError'
  }
}

/** Only the leader takes proposals; `leader` is the node this one follows, when it knows one. */
export class NotLeaderError extends RaftError {
  constructor(readonly leader: NodeId | null) {
    super(
      'ERR_NOT_LEADER',
      leader == null
        ? 'this node is not the leader and knows no leader; retry after an election'
        : `this node is not the leader; send the request to ${leader}`,
    )
  }
}

/** A leadership transfer is under way: the leader takes no proposal until it ends (at most an election timeout). */
export class TransferInProgressError extends RaftError {
  constructor(readonly target: NodeId) {
    super('ERR_LEADERSHIP_TRANSFER', `leadership is being handed to ${target}; retry in a moment`)
  }
}

/** One configuration change at a time, and only once the leader committed an entry of its own term. */
export class ConfigChangePendingError extends RaftError {
  constructor(reason: string) {
    super('ERR_CONFIG_CHANGE_PENDING', `${reason}; retry once it is committed`)
  }
}

/** The change would not be a single-voter change of the current configuration (or changes nothing). */
export class InvalidConfigChangeError extends RaftError {
  constructor(reason: string) {
    super('ERR_INVALID_CONFIG_CHANGE', reason)
  }
}

/** Storage handed the core something that cannot be a log (a gap, a commit past the end, …). */
export class CorruptStateError extends RaftError {
  constructor(reason: string) {
    super('ERR_RAFT_STATE_CORRUPT', `stored Raft state is inconsistent: ${reason}`)
  }
}

/** A setting out of range (thrown once, when the node is created). */
export class RaftConfigError extends RaftError {
  constructor(reason: string) {
    super('ERR_RAFT_CONFIG', reason)
  }
}
