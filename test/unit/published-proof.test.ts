/**
 * Whether an agent believes a published cluster state (consensus/published-proof.ts).
 * The states are published as the manager does (Manager.publish): the applied
 * state, the leader's majority certificate and its committed configuration
 * records, through proofOf() and a JSON round trip (the store's wire). The
 * certificates are real: elections of a lock-step cluster of Raft cores signing
 * with the simulation's keys.
 */
import { describe, expect, it } from 'vitest'
import { fakeSigner, fakeVerifier } from '../../bench/raft-sim/keys.js'
import { CLUSTER, LockstepCluster } from '../../bench/raft-sim/lockstep.js'
import { checkPublishedState, PROOF_RECORDS, proofOf } from '../../src/manager/consensus/published-proof.js'
import {
  type Certificate,
  type ConfigChange,
  type ConfigRecord,
  configBytes,
  type NodeId,
  voteBytes,
} from '../../src/manager/raft/index.js'
import { type ClusterState, emptyState } from '../../src/manager/record.js'

const check = (next: ClusterState, current: ClusterState | null, cluster = CLUSTER) =>
  checkPublishedState(next, current, { cluster, verifier: fakeVerifier })

/** What the leader of `c` publishes now (Manager.publish), as an agent receives it (JSON). */
function publish(
  c: LockstepCluster,
  raft: { generation: number; genesis: NodeId[] },
  transform: (chain: ConfigRecord[]) => ConfigRecord[] = (chain) => chain,
): ClusterState {
  const leader = c.leader()
  const status = leader.raft.status()
  const certificate = status.certificate
  if (certificate == null) throw new Error('the leader has no certificate')
  const chain = leader.raft.configChain(0).chain.filter((r) => r.index <= status.commit)
  const state: ClusterState = {
    ...emptyState(),
    // A cluster that decided something: one that decided nothing anchors no trust (below).
    defaultTarget: 'app@1',
    term: status.term,
    seq: status.commit,
    manager: leader.id,
    issuedAt: new Date(0).toISOString(),
    voters: [...status.config.voters],
    raft: {
      generation: raft.generation,
      genesis: raft.genesis,
      learners: [...status.config.learners],
      proof: proofOf(certificate, transform(chain)),
    },
  }
  return wire(state)
}

const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T

/** The state with its proof's certificate replaced (as JSON, the way a forger would write it). */
function withCertificate(state: ClusterState, certificate: Certificate): ClusterState {
  const raft = state.raft!
  const proof = proofOf(certificate, [])
  return wire({
    ...state,
    raft: { ...raft, proof: { ...(raft.proof as object), certificate: proof.certificate } },
  }) as ClusterState
}

/** A certificate signed with each voter's own key, as a forger holding those keys could make. */
function signed(term: number, leader: NodeId, voters: NodeId[], cluster = CLUSTER): Certificate {
  const bytes = voteBytes(cluster, term, leader)
  return { term, leader, votes: voters.map((voter) => ({ voter, signature: fakeSigner(voter).sign(bytes) })) }
}

function configChange(c: LockstepCluster, change: ConfigChange): void {
  const leader = c.leader()
  const { index } = leader.raft.proposeConfigChange(change)
  c.runUntil(() => c.leader().raft.status().commit >= index)
}

/** Crashes the leader and waits for another one (elected by the rest). */
function newLeader(c: LockstepCluster): void {
  const old = c.leader()
  c.crash(old.id)
  c.runUntil(() => c.leaders().some((l) => l.id !== old.id && l.raft.leaseRead().ok))
}

/** The leader hands over to another live voter (a new term, elected by the current voters). */
function handOver(c: LockstepCluster): void {
  const old = c.leader()
  const target = old.raft.status().config.voters.find((id) => id !== old.id && c.node(id).alive)
  if (target == null) throw new Error('no voter to hand over to')
  old.raft.transferLeadership(target)
  c.runUntil(() => c.leaders().some((l) => l.id === target && l.raft.leaseRead().ok))
}

const GEN0 = { generation: 0, genesis: ['a', 'b', 'c'] }

describe('a first state (nothing held yet)', () => {
  it('is trusted on first use when its proof is consistent in itself', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    const first = publish(c, GEN0)
    expect(first.raft?.proof).toBeDefined()
    expect(check(first, null)).toEqual({ ok: true })
    // Over a state written before the Raft log, too.
    expect(check(first, { ...emptyState(), seq: 5, manager: 'old' })).toEqual({ ok: true })
  })

  it('is refused when its certificate does not verify even from its own genesis', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const first = publish(c, GEN0)
    const term = first.term
    // One vote of three (the leader's own).
    const minority = withCertificate(first, signed(term, leader.id, [leader.id]))
    expect(check(minority, null)).toEqual({
      ok: false,
      why: 'the certificate does not verify from the configuration this agent holds',
    })
    // Votes of members that are no voters.
    const outsiders = withCertificate(first, signed(term, leader.id, ['x', 'y', 'z']))
    expect(check(outsiders, null).ok).toBe(false)
  })

  it('a state before the Raft log is accepted while no Raft state is held', () => {
    expect(check({ ...emptyState(), seq: 3, manager: 'old' }, null)).toEqual({ ok: true })
    expect(check({ ...emptyState(), seq: 4 }, { ...emptyState(), seq: 3 })).toEqual({ ok: true })
  })
})

describe('the next state in the same generation', () => {
  it('verifies from the configuration of the state held, across leader changes', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    const first = publish(c, GEN0)
    c.propose('k', 1)
    c.run(2)
    const same = publish(c, GEN0)
    expect(same.seq).toBeGreaterThan(first.seq)
    expect(check(same, first)).toEqual({ ok: true })
    newLeader(c)
    const second = publish(c, GEN0)
    expect(second.term).toBeGreaterThan(first.term)
    expect(second.manager).not.toBe(first.manager)
    expect(check(second, first)).toEqual({ ok: true })
    expect(check(second, same)).toEqual({ ok: true })
  })
})

describe('a forged state', () => {
  const setup = () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const held = publish(c, GEN0)
    c.propose('k', 1)
    c.run(2)
    const next = publish(c, GEN0)
    return { c, leader, held, next }
  }

  it('written by another member than the certificate names is refused', () => {
    const { leader, held, next } = setup()
    const other = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    expect(check({ ...next, manager: other }, held)).toEqual({
      ok: false,
      why: 'the certificate is for another term or leader',
    })
    // The certificate rewritten to name the writer: the signatures are for the real leader.
    const cert = next.raft!.proof!.certificate as { term: number; leader: string; votes: unknown[] }
    const rewritten = wire({
      ...next,
      manager: other,
      raft: { ...next.raft!, proof: { ...next.raft!.proof!, certificate: { ...cert, leader: other } } },
    })
    expect(check(rewritten, held)).toEqual({
      ok: false,
      why: 'the certificate does not verify from the configuration this agent holds',
    })
  })

  it('with a certificate of another term is refused', () => {
    const { held, next } = setup()
    expect(check({ ...next, term: next.term + 1 }, held)).toEqual({
      ok: false,
      why: 'the certificate is for another term or leader',
    })
    // The certificate's term rewritten to match: its signatures no longer do.
    const cert = next.raft!.proof!.certificate as { term: number }
    const rewritten = wire({
      ...next,
      term: next.term + 1,
      raft: { ...next.raft!, proof: { ...next.raft!.proof!, certificate: { ...cert, term: next.term + 1 } } },
    })
    expect(check(rewritten, held).ok).toBe(false)
  })

  it('signed by members that are no voters is refused, with or without a made-up chain', () => {
    const { held, next } = setup()
    const term = next.term + 1
    const forged = withCertificate({ ...next, term, manager: 'x' }, signed(term, 'x', ['x', 'y', 'z']))
    expect(check(forged, held)).toEqual({
      ok: false,
      why: 'the certificate does not verify from the configuration this agent holds',
    })
    // A configuration record naming the forgers as voters, signed by the forger: the
    // record's certificate must verify from the voters held, and it does not.
    const certificate = signed(term, 'x', ['x', 'y', 'z'])
    const record = { index: next.seq + 1, term, config: { voters: ['x', 'y', 'z'], learners: [] } }
    const fake: ConfigRecord = {
      ...record,
      certificate,
      signature: fakeSigner('x').sign(configBytes(CLUSTER, record)),
    }
    const withChain = wire({
      ...forged,
      raft: { ...forged.raft!, proof: proofOf(certificate, [fake]) },
    })
    expect(check(withChain, held).ok).toBe(false)
  })

  it('with a minority of the votes is refused', () => {
    const { leader, held, next } = setup()
    const real = next.raft!.proof!.certificate as { votes: Array<{ voter: string }> }
    expect(real.votes.length).toBeGreaterThanOrEqual(2)
    const minority = wire({
      ...next,
      raft: {
        ...next.raft!,
        proof: {
          ...next.raft!.proof!,
          certificate: { ...real, votes: real.votes.filter((v) => v.voter === leader.id) },
        },
      },
    })
    expect(check(minority, held)).toEqual({
      ok: false,
      why: 'the certificate does not verify from the configuration this agent holds',
    })
    // A vote counted twice is still one vote.
    const one = real.votes.find((v) => v.voter === leader.id)!
    const twice = wire({
      ...next,
      raft: {
        ...next.raft!,
        proof: { ...next.raft!.proof!, certificate: { ...real, votes: [one, one, one] } },
      },
    })
    expect(check(twice, held).ok).toBe(false)
  })

  it('for another cluster is refused (signatures are scoped by the cluster name)', () => {
    const { held, next } = setup()
    expect(check(next, held, 'other-cluster').ok).toBe(false)
  })

  it('without a proof, or with a malformed one, is refused', () => {
    const { held, next } = setup()
    const { proof: _, ...bare } = next.raft!
    expect(check({ ...next, raft: bare }, held)).toEqual({ ok: false, why: 'no proof of leadership' })
    expect(check({ ...next, raft: bare }, null)).toEqual({ ok: false, why: 'no proof of leadership' })
    const malformed = [
      { certificate: { term: 'one' }, chain: [] },
      { certificate: next.raft!.proof!.certificate, chain: [{ index: -1 }] },
      {
        certificate: {
          ...(next.raft!.proof!.certificate as object),
          votes: [{ voter: 'a', signature: '*' }],
        },
        chain: [],
      },
    ]
    for (const proof of malformed)
      expect(check({ ...next, raft: { ...next.raft!, proof } }, held)).toEqual({
        ok: false,
        why: 'a malformed proof of leadership',
      })
  })
})

describe('voter changes', () => {
  /** a, b, c found the cluster; d and e join, a and b go: the voters become c, d, e under new leaders. */
  const evolve = () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['d', 'e'] })
    c.electLeader()
    const first = publish(c, GEN0)
    configChange(c, { op: 'add-learner', node: 'd' })
    configChange(c, { op: 'add-voter', node: 'd' })
    configChange(c, { op: 'add-learner', node: 'e' })
    configChange(c, { op: 'add-voter', node: 'e' })
    // The founders a and b leave: the leader hands over first when it is one of them.
    for (const gone of ['a', 'b']) {
      if (c.leader().id === gone) {
        c.raft(gone).transferLeadership('c')
        c.runUntil(() => c.leaders().some((l) => l.id === 'c' && l.raft.leaseRead().ok))
      }
      configChange(c, { op: 'remove', node: gone })
    }
    c.crash('a')
    c.crash('b')
    // And a leader elected by the new voters only.
    newLeader(c)
    c.electLeader()
    return { c, first }
  }

  it('a lagging agent verifies the new leader through the configuration chain', () => {
    const { c, first } = evolve()
    const later = publish(c, GEN0)
    expect([...later.voters].sort()).toEqual(['c', 'd', 'e'])
    expect(later.manager).not.toBe('a')
    expect(later.manager).not.toBe('b')
    const votes = (later.raft!.proof!.certificate as { votes: Array<{ voter: string }> }).votes.map(
      (v) => v.voter,
    )
    expect(votes.every((v) => ['c', 'd', 'e'].includes(v))).toBe(true)
    expect(check(later, first)).toEqual({ ok: true })
    // The chain is what made it verify: without it, the founders' majority did not sign.
    const unchained = publish(c, GEN0, () => [])
    expect(check(unchained, first)).toEqual({
      ok: false,
      why: 'the certificate does not verify from the configuration this agent holds',
    })
    // Nor does a chain with a record altered (its leader's signature no longer matches).
    const altered = publish(c, GEN0, (chain) =>
      chain.map((r, i) =>
        i === chain.length - 1 ? { ...r, config: { voters: [...r.config.voters, 'x'], learners: [] } } : r,
      ),
    )
    expect(check(altered, first).ok).toBe(false)
  })

  it('an agent that held a state after the changes verifies from its newest record', () => {
    const { c, first } = evolve()
    const middle = publish(c, GEN0)
    expect(check(middle, first)).toEqual({ ok: true })
    handOver(c)
    const last = publish(c, GEN0, () => [])
    // Its chain carries nothing, but the held state's newest record names c, d, e.
    expect(check(last, middle)).toEqual({ ok: true })
    expect(check(last, first).ok).toBe(false)
  })

  it(`a state carries at most the newest ${PROOF_RECORDS} records`, () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['d'] })
    c.electLeader()
    for (let i = 0; i < PROOF_RECORDS; i++) {
      configChange(c, { op: 'add-learner', node: 'd' })
      configChange(c, { op: 'remove', node: 'd' })
    }
    const state = publish(c, GEN0)
    const chain = state.raft!.proof!.chain as Array<{ index: number }>
    expect(chain).toHaveLength(PROOF_RECORDS)
    const all = c.leader().raft.configChain(0).chain
    expect(chain.map((r) => r.index)).toEqual(all.slice(-PROOF_RECORDS).map((r) => r.index))
    // Learner changes only: the voters never changed, so it still verifies from genesis.
    expect(check(state, null)).toEqual({ ok: true })
  })
})

describe('generations (shoal voters reset)', () => {
  const setup = () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    const held = publish(c, GEN0)
    return held
  }
  /** A voter that starts over alone: a new log, with itself as the only founder. */
  const reset = (founder: NodeId, generation = 1) => {
    const c = new LockstepCluster({ voters: [founder] })
    c.electLeader()
    return publish(c, { generation, genesis: [founder] })
  }

  it('a reset by a voter the agent knew is accepted', () => {
    const held = setup()
    expect(held.voters).toContain('b')
    const next = reset('b')
    expect(check(next, held)).toEqual({ ok: true })
    // Generations may jump.
    expect(check(reset('c', 4), held)).toEqual({ ok: true })
  })

  it('a reset by anyone else is refused', () => {
    const held = setup()
    expect(check(reset('z'), held)).toEqual({
      ok: false,
      why: 'a reset by z, who is not a voter this agent knows',
    })
  })

  it('a reset whose founder did not sign its own election is refused', () => {
    const held = setup()
    const next = reset('b')
    const forged = withCertificate({ ...next }, signed(next.term, 'b', ['z']))
    expect(check(forged, held).ok).toBe(false)
  })

  it('after a reset, the next state of the new generation verifies from it', () => {
    const held = setup()
    const c = new LockstepCluster({ voters: ['b'], others: ['c'] })
    c.electLeader()
    const gen1 = publish(c, { generation: 1, genesis: ['b'] })
    expect(check(gen1, held)).toEqual({ ok: true })
    configChange(c, { op: 'add-learner', node: 'c' })
    configChange(c, { op: 'add-voter', node: 'c' })
    const later = publish(c, { generation: 1, genesis: ['b'] })
    expect(check(later, gen1)).toEqual({ ok: true })
  })

  it('an older generation is refused', () => {
    const held = reset('b', 2)
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    expect(check(publish(c, GEN0), held)).toEqual({ ok: false, why: 'an older generation' })
    expect(check(publish(c, { generation: 1, genesis: ['a', 'b', 'c'] }), held)).toEqual({
      ok: false,
      why: 'an older generation',
    })
  })

  it('a state without the Raft log is refused once a Raft state is held', () => {
    const held = setup()
    const legacy: ClusterState = { ...emptyState(), term: 99, seq: 99, manager: 'a', voters: ['a'] }
    expect(check(legacy, held)).toEqual({ ok: false, why: 'a state from before the Raft log' })
  })
})

describe('a cluster that decided nothing anchors no trust', () => {
  // A node that founded a cluster alone gives way to the one it meets (Manager), and the
  // agents that followed it must follow the other cluster too, whose votes their anchor
  // cannot verify.
  it('another cluster’s state replaces one that decided nothing, never one that decided something', () => {
    const mine = new LockstepCluster({ voters: ['x'] })
    mine.runUntil(() => mine.leaders().length === 1)
    const held = publish(mine, { generation: 0, genesis: ['x'] })
    const other = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    other.runUntil(() => other.leaders().length === 1)
    const next = wire(publish(other, GEN0))
    const nothing: ClusterState = { ...held, defaultTarget: null }
    expect(check(next, nothing)).toEqual({ ok: true })
    expect(check(next, held)).toMatchObject({ ok: false })
  })
})
