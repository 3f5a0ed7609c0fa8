/**
 * Every message the core sends or receives. `from` must be the authenticated
 * sender (the adapter checks it against the stream's remote peer id); `term` is
 * the sender's term, except in a pre-vote request, where it is the term the
 * sender would campaign in.
 *
 * Messages from a leader carry its certificate (certificate.ts) and `sentAt`, the
 * leader's tick count when it sent them; responses echo `sentAt`, which is how
 * the leader measures its lease from the moment it *sent* what a majority acked.
 */
import type { Certificate } from './certificate.js'
import type { ConfigRecord, Entry, NodeId, Snapshot } from './types.js'

interface Envelope {
  readonly from: NodeId
  readonly to: NodeId
  readonly term: number
}

/** "Would you vote for me in `term`?" Changes no one's term (Raft thesis §9.6). */
export interface PreVoteRequest extends Envelope {
  readonly type: 'pre-vote'
  readonly lastLogIndex: number
  readonly lastLogTerm: number
  /** The candidate's newest configuration records: proof it is a voter, for a voter that lags (verifyVoter). */
  readonly chain: readonly ConfigRecord[]
}

export interface PreVoteResponse extends Envelope {
  readonly type: 'pre-vote-response'
  readonly granted: boolean
}

export interface VoteRequest extends Envelope {
  readonly type: 'vote'
  readonly lastLogIndex: number
  readonly lastLogTerm: number
  readonly chain: readonly ConfigRecord[]
  /** Set when the leader handed over leadership (TimeoutNow): voters then ignore their leader stickiness. */
  readonly transfer: boolean
}

export interface VoteResponse extends Envelope {
  readonly type: 'vote-response'
  readonly granted: boolean
  /** On a grant: the voter's signature over voteBytes(cluster, term, candidate). */
  readonly signature: Uint8Array | null
}

interface FromLeader extends Envelope {
  readonly certificate: Certificate
  /** Configuration records after the follower's committed one, sent after it said it could not verify us. */
  readonly chain: readonly ConfigRecord[] | null
  readonly sentAt: number
}

export interface AppendRequest extends FromLeader {
  readonly type: 'append'
  readonly prevLogIndex: number
  readonly prevLogTerm: number
  readonly entries: readonly Entry[]
  readonly commit: number
}

export interface AppendResponse extends Envelope {
  readonly type: 'append-response'
  readonly success: boolean
  /** On success the last index now known to match; on a reject the prevLogIndex refused. */
  readonly index: number
  /** On a reject: where the leader should look next (fast back-off, Raft paper §5.3). */
  readonly hint: { readonly conflictIndex: number; readonly conflictTerm: number | null } | null
  readonly sentAt: number
}

/** Keeps followers' election timers quiet and tells them what is committed; no log check. */
export interface HeartbeatRequest extends FromLeader {
  readonly type: 'heartbeat'
  /** min(the follower's match index, the leader's commit): safe to commit without a log check. */
  readonly commit: number
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeat-response'
  readonly sentAt: number
}

export interface SnapshotRequest extends FromLeader {
  readonly type: 'snapshot'
  readonly snapshot: Snapshot
}

/** Sent by the leader to the node it hands leadership to: start an election now. */
export interface TimeoutNowRequest extends FromLeader {
  readonly type: 'timeout-now'
}

/** "I cannot verify your certificate from the configuration I trust (index `configIndex`): send the chain." */
export interface UnverifiedResponse extends Envelope {
  readonly type: 'unverified'
  readonly configIndex: number
}

export type LeaderMessage = AppendRequest | HeartbeatRequest | SnapshotRequest | TimeoutNowRequest

export type Message =
  | PreVoteRequest
  | PreVoteResponse
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest
  | UnverifiedResponse

export type MessageType = Message['type']

export function isLeaderMessage(message: Message): message is LeaderMessage {
  return (
    message.type === 'append' ||
    message.type === 'heartbeat' ||
    message.type === 'snapshot' ||
    message.type === 'timeout-now'
  )
}
