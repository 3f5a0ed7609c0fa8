/**
 * Majority certificates: the signed votes that elected a leader.
 *
 * A voter that grants its vote signs (cluster, term, candidate) with its own key;
 * the winner keeps the grants as its term's certificate, writes it into the
 * first entry of its term and sends it with every message it sends as leader.
 * A node follows a leader for a term only once it has verified that a majority
 * of voters it trusts signed for that leader in that term, so a member that holds
 * the cluster secret but was not elected cannot make anyone follow it, whatever
 * term it claims.
 *
 * Trust starts at the genesis configuration every node is given. A node whose
 * configuration is older than the leader's (it missed voter changes while down)
 * verifies the chain of configuration records the leader sends: each record
 * carries the certificate of the term that appended it (checked against the
 * configuration before it) and that leader's signature over the record.
 *
 * Signing and verification are injected and synchronous: the core stays pure and
 * the adapter uses the node's libp2p key (ed25519 signs and verifies synchronously
 * through node:crypto).
 */
import type { ClusterConfig, ConfigRecord, NodeId } from './types.js'

/** This node's key. */
export interface Signer {
  sign(bytes: Uint8Array): Uint8Array
}

/** Any node's public key, found from its id (a libp2p peer id embeds its ed25519 key). */
export interface Verifier {
  verify(node: NodeId, bytes: Uint8Array, signature: Uint8Array): boolean
}

export interface Vote {
  readonly voter: NodeId
  readonly signature: Uint8Array
}

/** The votes that made `leader` the leader of `term`. */
export interface Certificate {
  readonly term: number
  readonly leader: NodeId
  readonly votes: readonly Vote[]
}

/** What verification needs besides the keys: the cluster name scopes every signature. */
export interface SignatureContext {
  readonly cluster: string
  readonly signer: Signer
  readonly verifier: Verifier
}

const encoder = new TextEncoder()

/** The bytes a voter signs to grant its vote. JSON of a fixed-shape array: one spelling per vote. */
export function voteBytes(cluster: string, term: number, candidate: NodeId): Uint8Array {
  return encoder.encode(JSON.stringify(['shoal/raft/vote/1', cluster, term, candidate]))
}

/** The bytes a leader signs when it appends a configuration. */
export function configBytes(
  cluster: string,
  record: { index: number; term: number; config: ClusterConfig },
): Uint8Array {
  const { index, term, config } = record
  return encoder.encode(
    JSON.stringify(['shoal/raft/config/1', cluster, index, term, config.voters, config.learners]),
  )
}

/** True when distinct members of `voters`, a majority of them, signed for (term, leader). */
export function verifyCertificate(
  certificate: Certificate,
  voters: readonly NodeId[],
  context: Pick<SignatureContext, 'cluster' | 'verifier'>,
): boolean {
  if (voters.length === 0) return false
  const bytes = voteBytes(context.cluster, certificate.term, certificate.leader)
  const counted = new Set<NodeId>()
  for (const vote of certificate.votes) {
    if (counted.has(vote.voter) || !voters.includes(vote.voter)) continue
    if (context.verifier.verify(vote.voter, bytes, vote.signature)) counted.add(vote.voter)
  }
  return counted.size >= Math.floor(voters.length / 2) + 1
}

/** What a node trusts when a leader it has not verified yet speaks to it. */
export interface TrustedConfigs {
  /** The newest configuration in its log (maybe not committed). */
  readonly latest: ConfigRecord
  /** The newest committed one: every later leader's log holds it, so chains start there. */
  readonly committed: ConfigRecord
}

/** Where a verified chain of configuration records ends. */
interface ChainEnd {
  readonly config: ClusterConfig
  /** The leader of each term the walk verified. */
  readonly leaders: ReadonlyMap<number, NodeId>
}

/**
 * Walks `chain` (oldest first) from a trusted record: each record's certificate
 * must be signed by a majority of the configuration before it (unless its term's
 * leader is already verified), and the record signed by that leader. Records at
 * or below the start are skipped. Null when any step fails.
 */
function walkChain(
  from: ConfigRecord,
  chain: readonly ConfigRecord[],
  context: Pick<SignatureContext, 'cluster' | 'verifier'>,
): ChainEnd | null {
  let config = from.config
  let at = from.index
  const leaders = new Map<number, NodeId>()
  if (from.certificate != null) leaders.set(from.certificate.term, from.certificate.leader)
  for (const record of chain) {
    if (record.index <= at) continue
    const { certificate: appender, signature } = record
    if (appender == null || signature == null || appender.term !== record.term) return null
    const known = leaders.get(record.term)
    if (known === undefined) {
      // The term's leader was elected under the configuration in force before this record.
      if (!verifyCertificate(appender, config.voters, context)) return null
      leaders.set(record.term, appender.leader)
    } else if (known !== appender.leader) return null
    if (!context.verifier.verify(appender.leader, configBytes(context.cluster, record), signature))
      return null
    config = record.config
    at = record.index
  }
  return { config, leaders }
}

/**
 * Is `leader` the elected leader of `term`? True when its certificate is signed by
 * a majority of the voters of a trusted configuration, or when `chain` (the
 * records after `trusted.committed`, oldest first) verifies step by step and the
 * certificate verifies against where the chain ends.
 */
export function verifyLeader(
  claim: { term: number; leader: NodeId; certificate: Certificate | null },
  trusted: TrustedConfigs,
  chain: readonly ConfigRecord[] | null,
  context: Pick<SignatureContext, 'cluster' | 'verifier'>,
): boolean {
  const { term, leader, certificate } = claim
  if (certificate == null || certificate.term !== term || certificate.leader !== leader) return false
  for (const record of [trusted.latest, trusted.committed]) {
    // The leader appended this very record: its certificate was checked when it was appended.
    if (record.certificate?.term === term && record.certificate.leader === leader) return true
    if (verifyCertificate(certificate, record.config.voters, context)) return true
  }
  if (chain == null) return false
  const end = walkChain(trusted.committed, chain, context)
  if (end == null) return false
  return end.leaders.get(term) === leader || verifyCertificate(certificate, end.config.voters, context)
}

/**
 * May `candidate` ask for our vote? It must be a voter of our newest
 * configuration, or of the newest one its `chain` proves from our committed one
 * (we may lag: it was added while we were away). Without this, a member that is
 * no voter could collect real, signed votes by claiming a long log, and so a
 * valid certificate.
 */
export function verifyVoter(
  candidate: NodeId,
  trusted: TrustedConfigs,
  chain: readonly ConfigRecord[],
  context: Pick<SignatureContext, 'cluster' | 'verifier'>,
): boolean {
  if (trusted.latest.config.voters.includes(candidate)) return true
  const end = walkChain(trusted.committed, chain, context)
  return end?.config.voters.includes(candidate) === true
}
