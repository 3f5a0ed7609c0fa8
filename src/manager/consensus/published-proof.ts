/**
 * Why an agent believes a published cluster state. The leader publishes the
 * state it applied, signed with its key (the store checks that), and with a
 * proof that it is the elected leader of its term: its majority certificate
 * (the signed votes) and the newest committed configuration records. An agent
 * accepts a newer state only when the certificate verifies from the
 * configuration record of the state it already holds, walking the records
 * given (certificate.ts verifyLeader). A member that holds only the cluster
 * secret cannot produce such a certificate, whatever term it claims.
 *
 * Trust starts on first use: an agent that holds no Raft state yet accepts a
 * state whose proof is consistent in itself (as it trusted the cluster it
 * joined with the secret). An agent that was away across more voter changes
 * than a state carries records cannot verify the next one and says so; it
 * follows again once a voter's answer or a restart re-anchors it (docs/manager.md).
 */
import { genesisSnapshot, type NodeId, type Verifier, verifyLeader } from '../raft/index.js'
import type { ClusterState } from '../record.js'
import { peerIdVerifier } from './keys.js'
import {
  type CertificateJson,
  type ConfigRecordJson,
  certificateFromJson,
  certificateToJson,
  configRecordFromJson,
  configRecordToJson,
} from './raft-codec.js'

/** Committed configuration records a published state carries (oldest first). */
export const PROOF_RECORDS = 16

export interface PublishedProof {
  certificate: CertificateJson
  chain: ConfigRecordJson[]
}

export function proofOf(
  certificate: Parameters<typeof certificateToJson>[0],
  chain: ReadonlyArray<Parameters<typeof configRecordToJson>[0]>,
): PublishedProof {
  return {
    certificate: certificateToJson(certificate),
    chain: chain.slice(-PROOF_RECORDS).map(configRecordToJson),
  }
}

/** Whether `next` may replace `current` (null: none held yet); `why` says what failed. */
export function checkPublishedState(
  next: ClusterState,
  current: ClusterState | null,
  context: { cluster: string; verifier: Verifier },
): { ok: true } | { ok: false; why: string } {
  const raft = next.raft
  if (raft == null)
    return current?.raft == null ? { ok: true } : { ok: false, why: 'a state from before the Raft log' }
  let certificate: ReturnType<typeof certificateFromJson>
  let chain: ReturnType<typeof configRecordFromJson>[]
  try {
    const proof = raft.proof as PublishedProof | undefined
    if (proof == null) return { ok: false, why: 'no proof of leadership' }
    certificate = certificateFromJson(proof.certificate)
    chain = proof.chain.map((r) => configRecordFromJson(r))
  } catch {
    return { ok: false, why: 'a malformed proof of leadership' }
  }
  if (certificate.term !== next.term || certificate.leader !== next.manager)
    return { ok: false, why: 'the certificate is for another term or leader' }
  // A cluster that decided nothing yet anchors nothing: a node that founded alone gives way
  // to the cluster it meets (Manager.abandonLoneFounding), and its followers with it.
  const held = current != null && decidedNothing(current) ? undefined : current?.raft
  let anchor = chain[0] ?? genesisSnapshot(raft.genesis).meta.config
  if (held != null && held.generation === raft.generation) {
    const heldChain = (held.proof as PublishedProof | undefined)?.chain ?? []
    const last = heldChain.at(-1)
    anchor = last == null ? genesisSnapshot(held.genesis).meta.config : configRecordFromJson(last)
  } else if (held != null && raft.generation > held.generation) {
    // `shoal voters reset`: only a voter of the configuration this agent knows may start over.
    const founder: NodeId | undefined = raft.genesis[0]
    if (founder == null || !(current?.voters ?? []).includes(founder))
      return { ok: false, why: `a reset by ${founder ?? 'nobody'}, who is not a voter this agent knows` }
    anchor = genesisSnapshot(raft.genesis).meta.config
  } else if (held != null) return { ok: false, why: 'an older generation' }
  const trusted = { latest: anchor, committed: anchor }
  const claim = { term: next.term, leader: next.manager, certificate }
  if (!verifyLeader(claim, trusted, chain, context))
    return { ok: false, why: 'the certificate does not verify from the configuration this agent holds' }
  return { ok: true }
}

/** The store's trust check for cluster `cluster`, with the keys peer ids embed. */
export function publishedStateTrust(cluster: string) {
  const context = { cluster, verifier: peerIdVerifier() }
  return (next: ClusterState, current: ClusterState | null) => checkPublishedState(next, current, context)
}

/** No version wanted, rolled out or unpublished: nothing a node could lose by following another cluster. */
function decidedNothing(state: ClusterState): boolean {
  return (
    state.defaultTarget == null &&
    Object.keys(state.targets).length === 0 &&
    state.rollouts.length === 0 &&
    (state.unpublished?.length ?? 0) === 0
  )
}
