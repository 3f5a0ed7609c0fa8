/**
 * Leader election in the Raft core: one leader per term (election safety),
 * votedFor survives a restart, the election restriction, pre-vote, leader
 * stickiness, check-quorum and the lease, and majority certificates.
 */
import { describe, expect, it } from 'vitest'
import { fakeVerifier } from '../../bench/raft-sim/keys.js'
import { CLUSTER, LockstepCluster } from '../../bench/raft-sim/lockstep.js'
import { type Message, type VoteRequest, verifyCertificate } from '../../src/manager/raft/index.js'

const voteGrants = (c: LockstepCluster) =>
  c.delivered.filter((m): m is Message & { type: 'vote-response' } => m.type === 'vote-response' && m.granted)

describe('election', () => {
  it('elects one leader whose certificate is signed by a majority of the voters', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c', 'd', 'e'] })
    const leader = c.electLeader()
    expect(c.leaders()).toHaveLength(1)
    const status = leader.raft.status()
    expect(status.certificate).not.toBeNull()
    expect(
      verifyCertificate(status.certificate!, status.config.voters, {
        cluster: CLUSTER,
        verifier: fakeVerifier,
      }),
    ).toBe(true)
    // The certificate is also in the log: the first entry of the term.
    for (const n of c.nodes.values()) {
      const start = n.raft.entryAt(1)
      expect(start?.kind).toBe('term-start')
    }
  })

  it('election safety: at most one leader per term over many seeded schedules with loss and crashes', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const c = new LockstepCluster({ voters: ['a', 'b', 'c', 'd', 'e'], seed })
      let r = seed
      const random = () => {
        r = (Math.imul(r ^ (r >>> 15), 2246822507) + 0x6d2b79f5) >>> 0
        return r / 2 ** 32
      }
      c.filter = () => random() > 0.2
      const leaderOf = new Map<number, string>()
      for (let step = 0; step < 400; step++) {
        c.tick()
        c.stabilize()
        if (random() < 0.02) {
          const id = [...c.nodes.keys()][Math.floor(random() * 5)]!
          if (c.node(id).alive) c.crash(id)
          else c.restart(id)
        }
        for (const l of c.leaders()) {
          const term = l.raft.status().term
          expect(leaderOf.get(term) ?? l.id).toBe(l.id)
          leaderOf.set(term, l.id)
        }
      }
      expect(leaderOf.size).toBeGreaterThan(0)
    }
  })

  it('a vote is durable before it is sent, and a restarted node does not vote twice in a term', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.filter = (m) => m.type !== 'pre-vote'
    c.run(12) // past the start-up stickiness, with no election
    const b = c.raft('b')
    c.raft('a').campaign()
    const fromA = c.raft('a').ready()!
    c.raft('a').advance(fromA)
    const request = fromA.send.find((m): m is VoteRequest => m.type === 'vote' && m.to === 'b')!
    b.step(request)
    const ready = b.ready()!
    // Step 1 writes the vote with sync; step 2 sends the grant.
    expect(ready.persist?.hardState?.vote).toBe('a')
    expect(ready.persist?.sync).toBe(true)
    expect(ready.send.some((m) => m.type === 'vote-response' && m.granted)).toBe(true)
    c.node('b').disk.write(ready.persist!)
    c.node('b').disk.sync()
    b.advance(ready)
    c.crash('b')
    c.restart('b')
    c.run(0)
    // c asks b for a vote in the same term: b remembers it voted for a.
    const b2 = c.raft('b')
    b2.step({ ...request, from: 'c', transfer: true })
    const answer = b2.ready()!.send.find((m) => m.type === 'vote-response')
    expect(answer).toMatchObject({ granted: false })
  })

  it('the election restriction: a candidate missing a committed entry cannot win', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const [x, y] = ['a', 'b', 'c'].filter((id) => id !== leader.id) as [string, string]
    // y misses the next command; the leader and x commit it.
    c.filter = (m) => m.to !== y && m.from !== y
    c.propose('k', 1)
    c.run(2)
    expect(c.raft(x).status().commit).toBe(c.raft(leader.id).status().commit)
    // The leader dies; y campaigns first but x holds a longer log and refuses.
    c.crash(leader.id)
    c.filter = () => true
    c.run(11)
    c.raft(y).campaign()
    c.stabilize()
    expect(c.raft(y).status().role).not.toBe('leader')
    const next = c.electLeader()
    expect(next.id).toBe(x)
    expect(next.machine.applied.map((a) => `${a.client}#${a.seq}`)).toEqual(['k#1'])
  })

  it('pre-vote: a node cut off and back does not raise the term or depose the leader', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const term = leader.raft.status().term
    const loner = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    c.filter = (m) => m.to !== loner && m.from !== loner
    c.run(100) // many election timeouts: it keeps pre-voting, never raising its term
    expect(c.raft(loner).status().term).toBe(term)
    expect(c.raft(loner).counters.elections).toBe(0)
    c.filter = () => true
    c.run(5)
    expect(c.leader().id).toBe(leader.id)
    expect(c.leader().raft.status().term).toBe(term)
  })

  it('without pre-vote the same node would disrupt the cluster (the test has teeth)', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], init: { preVote: false } })
    const leader = c.electLeader()
    const term = leader.raft.status().term
    const loner = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    c.filter = (m) => m.to !== loner && m.from !== loner
    c.run(100)
    expect(c.raft(loner).status().term).toBeGreaterThan(term)
  })

  it('stickiness: a voter that heard from its leader within the election timeout ignores vote requests', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const [x, y] = ['a', 'b', 'c'].filter((id) => id !== leader.id) as [string, string]
    const before = voteGrants(c).length
    c.raft(x).campaign()
    c.stabilize()
    expect(voteGrants(c).length).toBe(before)
    expect(c.raft(y).status().leader).toBe(leader.id)
    expect(c.leader().id).toBe(leader.id)
  })

  it('check-quorum: an isolated leader steps down, and its lease ends before another leader acts', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const old = c.electLeader()
    c.filter = (m) => m.to !== old.id && m.from !== old.id
    let leaseEnded = -1
    let otherActing = -1
    for (let t = 1; t <= 60; t++) {
      c.tick()
      c.stabilize()
      if (leaseEnded < 0 && !old.raft.isActingLeader()) leaseEnded = t
      const others = [...c.nodes.values()].filter((n) => n.id !== old.id && n.raft.isActingLeader())
      if (otherActing < 0 && others.length > 0) otherActing = t
      expect(old.raft.isActingLeader() && others.length > 0).toBe(false)
    }
    expect(leaseEnded).toBeGreaterThan(0)
    expect(otherActing).toBeGreaterThan(leaseEnded)
    expect(old.raft.status().role).not.toBe('leader') // check-quorum
    expect(old.raft.leaseRead()).toMatchObject({ ok: false, reason: 'not-leader' })
  })

  it('a new leader answers reads only once it committed an entry of its term', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.filter = (m) => m.type !== 'pre-vote'
    c.run(12)
    c.filter = (m) => m.type !== 'append-response'
    c.raft('a').campaign()
    c.stabilize()
    expect(c.raft('a').status().role).toBe('leader')
    expect(c.raft('a').leaseRead()).toMatchObject({ ok: false })
    c.filter = () => true
    c.run(2)
    expect(c.raft('a').leaseRead()).toMatchObject({ ok: true })
  })

  it('a member that holds the secret but was not elected is never followed', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['f'] })
    const leader = c.electLeader()
    const term = leader.raft.status().term
    const target = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    const forgedCert = { term: term + 5, leader: 'f', votes: [{ voter: 'a', signature: new Uint8Array(8) }] }
    c.raft(target).step({
      type: 'append',
      from: 'f',
      to: target,
      term: term + 5,
      certificate: forgedCert,
      chain: null,
      sentAt: 0,
      prevLogIndex: c.raft(target).status().lastIndex,
      prevLogTerm: term,
      entries: [],
      commit: 0,
    })
    // A real certificate replayed by someone else does not help either.
    c.raft(target).step({
      type: 'heartbeat',
      from: 'f',
      to: target,
      term,
      certificate: leader.raft.status().certificate!,
      chain: null,
      sentAt: 0,
      commit: 0,
    })
    // Nor does a vote request from a non-voter with a "longer" log.
    c.raft(target).step({
      type: 'vote',
      from: 'f',
      to: target,
      term: term + 9,
      lastLogIndex: 1e9,
      lastLogTerm: 1e9,
      chain: [],
      transfer: true,
    })
    const s = c.raft(target).status()
    expect(s.term).toBe(term)
    expect(s.leader).toBe(leader.id)
    expect(c.raft(target).counters.unverified).toBe(2)
    c.stabilize()
    expect(c.leader().id).toBe(leader.id)
  })
})
