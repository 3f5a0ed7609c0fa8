/**
 * The manager's Raft core (issue 18): a deterministic, pure state machine.
 * docs/raft.md describes the API, the guarantees and the assumptions.
 */
export type { Certificate, Signer, Verifier, Vote } from './certificate.js'
export { configBytes, verifyCertificate, verifyLeader, verifyVoter, voteBytes } from './certificate.js'
export { ClientSessions, type SessionOutcome, type SessionsData } from './client-sessions.js'
export { applyConfigChange } from './config-change.js'
export * from './constants.js'
export {
  ConfigChangePendingError,
  CorruptStateError,
  InvalidConfigChangeError,
  NotLeaderError,
  RaftConfigError,
  RaftError,
  TransferInProgressError,
} from './errors.js'
export { checkLease, maxLeaseTicks } from './lease.js'
export type * from './messages.js'
export { isLeaderMessage } from './messages.js'
export {
  type LeaseRead,
  type RaftCounters,
  type RaftInit,
  RaftNode,
  type RaftStatus,
} from './raft-node.js'
export {
  type ApplyBatch,
  handleReady,
  type PersistBatch,
  type Ready,
  type ReadyIo,
  type SoftState,
} from './ready.js'
export type * from './types.js'
export { EMPTY_CONFIG, genesisSnapshot, isMember, isVoter, normalizeConfig, quorumSize } from './types.js'
