/**
 * The data the Raft core reasons about: ids, log entries, the cluster
 * configuration, hard state and snapshots. Plain data only (it survives
 * structuredClone), so adapters can encode it for level and for the wire.
 */
import type { Certificate } from './certificate.js'

/** A node's id: in Shoal its libp2p peer id, whose key signs its votes. */
export type NodeId = string

/** The voters (whose majority decides) and the learners (who follow the log and never vote). */
export interface ClusterConfig {
  /** Sorted, no duplicates. */
  readonly voters: readonly NodeId[]
  /** Sorted, no duplicates, disjoint from `voters`. */
  readonly learners: readonly NodeId[]
}

/** One voter or learner added, promoted, demoted or removed: the only change the core accepts. */
export type ConfigChange =
  | { readonly op: 'add-learner'; readonly node: NodeId }
  /** Adds a voter, or promotes a learner. */
  | { readonly op: 'add-voter'; readonly node: NodeId }
  /** A voter becomes a learner (it keeps the log, stops counting). */
  | { readonly op: 'demote'; readonly node: NodeId }
  /** A voter or learner leaves the configuration. */
  | { readonly op: 'remove'; readonly node: NodeId }

/** A client's request id: the state-machine layer applies a (client, seq) once (client-sessions.ts). */
export interface RequestId {
  readonly client: string
  /** Increasing per client (gaps allowed); a retry repeats it. */
  readonly seq: number
}

interface EntryBase {
  readonly index: number
  readonly term: number
}

/** A command for the state machine; the core never looks inside `data`. */
export interface CommandEntry extends EntryBase {
  readonly kind: 'command'
  readonly request: RequestId | null
  readonly data: Uint8Array
}

/**
 * A configuration, effective on every node as soon as it is in its log (committed
 * or not). It carries the certificate of the term that appended it and that
 * leader's signature, so a node that missed it can verify the chain of
 * configurations up to the current leader (certificate.ts).
 */
export interface ConfigEntry extends EntryBase {
  readonly kind: 'config'
  readonly config: ClusterConfig
  readonly change: ConfigChange
  readonly certificate: Certificate
  readonly signature: Uint8Array
}

/** The first entry of every leader's term: it makes the leader able to commit, and records who elected it. */
export interface TermStartEntry extends EntryBase {
  readonly kind: 'term-start'
  readonly certificate: Certificate
}

export type Entry = CommandEntry | ConfigEntry | TermStartEntry

/**
 * A configuration and its provenance. The genesis record (index 0) has no
 * certificate: every node is given it, and it is the root of trust.
 */
export interface ConfigRecord {
  readonly index: number
  readonly term: number
  readonly config: ClusterConfig
  readonly certificate: Certificate | null
  readonly signature: Uint8Array | null
}

/** What must be durable before a message that depends on it leaves the node. */
export interface HardState {
  readonly term: number
  readonly vote: NodeId | null
  /** A hint for a faster restart; losing it is harmless (the commit index is learned again). */
  readonly commit: number
}

export interface SnapshotMeta {
  /** The last index the snapshot covers, and its term. */
  readonly index: number
  readonly term: number
  /** The configuration in force at `index`, and the records before it (oldest first, bounded). */
  readonly config: ConfigRecord
  readonly history: readonly ConfigRecord[]
}

/** The state machine as of `meta.index`, encoded by the state-machine layer. */
export interface Snapshot {
  readonly meta: SnapshotMeta
  readonly data: Uint8Array
}

/** What an adapter loads from storage to start a node. */
export interface PersistedState {
  readonly hardState: HardState
  /** For a node that never stored anything: the genesis snapshot (genesisSnapshot()). */
  readonly snapshot: Snapshot
  /** Contiguous, starting at snapshot.meta.index + 1. */
  readonly entries: readonly Entry[]
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

export const EMPTY_CONFIG: ClusterConfig = { voters: [], learners: [] }

/** The root of every log: index 0, term 0, the founding voters. Identical on every node. */
export function genesisSnapshot(voters: readonly NodeId[], learners: readonly NodeId[] = []): Snapshot {
  const config = normalizeConfig({ voters, learners })
  const record: ConfigRecord = { index: 0, term: 0, config, certificate: null, signature: null }
  return { meta: { index: 0, term: 0, config: record, history: [] }, data: new Uint8Array() }
}

export function normalizeConfig(config: ClusterConfig): ClusterConfig {
  const voters = [...new Set(config.voters)].sort()
  const learners = [...new Set(config.learners)].filter((n) => !voters.includes(n)).sort()
  return { voters, learners }
}

export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id)
}

export function isMember(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id) || config.learners.includes(id)
}

/** The smallest number of voters that is a majority. */
export function quorumSize(config: ClusterConfig): number {
  return Math.floor(config.voters.length / 2) + 1
}
