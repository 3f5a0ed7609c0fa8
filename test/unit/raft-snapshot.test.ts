/**
 * Snapshots and log compaction in the Raft core, client sessions (a retried
 * command applies once), the lease formula, and the Ready ordering contract.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { fakeSigner, fakeVerifier } from '../../bench/raft-sim/keys.js'
import { LockstepCluster } from '../../bench/raft-sim/lockstep.js'
import {
  ClientSessions,
  genesisSnapshot,
  handleReady,
  type Message,
  maxLeaseTicks,
  type PersistBatch,
  RaftNode,
  verifyCertificate,
} from '../../src/manager/raft/index.js'

const keys = (c: LockstepCluster, id: string) => c.node(id).machine.applied.map((a) => `${a.client}#${a.seq}`)

describe('snapshots and compaction', () => {
  it('asks for a snapshot, compacts, and brings a lagging follower up with one', () => {
    const c = new LockstepCluster({
      voters: ['a', 'b', 'c'],
      init: { snapshotThreshold: 10 },
      compactEvery: 10,
    })
    const leader = c.electLeader()
    const lagging = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    c.crash(lagging)
    for (let i = 1; i <= 40; i++) {
      c.propose('k', i)
      c.run(1)
    }
    expect(leader.raft.status().snapshotIndex).toBeGreaterThan(30)
    expect(leader.raft.entryAt(2)).toBeUndefined()
    c.restart(lagging)
    c.run(4)
    expect(c.raft(lagging).counters.snapshotsInstalled).toBe(1)
    expect(keys(c, lagging)).toEqual(keys(c, leader.id))
    expect(keys(c, lagging)).toHaveLength(40)
    // And it follows the log after the snapshot.
    c.propose('k', 41)
    c.run(2)
    expect(keys(c, lagging).at(-1)).toBe('k#41')
  })

  it('restarts from its own snapshot plus the log tail', () => {
    const c = new LockstepCluster({ voters: ['a'], compactEvery: 5 })
    c.electLeader()
    for (let i = 1; i <= 12; i++) {
      c.propose('k', i)
      c.run(1)
    }
    c.crash('a')
    c.restart('a')
    c.electLeader()
    c.run(2)
    expect(keys(c, 'a')).toEqual(Array.from({ length: 12 }, (_, i) => `k#${i + 1}`))
    expect(c.raft('a').status().snapshotIndex).toBeGreaterThan(0)
  })
})

describe('client sessions', () => {
  it('applies a retried request once and answers the copy with the first result', () => {
    const s = new ClientSessions<number>()
    let runs = 0
    expect(s.applyOnce({ client: 'x', seq: 3 }, () => ++runs)).toMatchObject({ result: 1 })
    expect(s.applyOnce({ client: 'x', seq: 3 }, () => ++runs)).toMatchObject({
      result: 1,
      outcome: { status: 'duplicate' },
    })
    expect(s.applyOnce({ client: 'x', seq: 2 }, () => ++runs)).toMatchObject({
      result: null,
      outcome: { status: 'stale' },
    })
    expect(s.applyOnce({ client: 'x', seq: 4 }, () => ++runs)).toMatchObject({ result: 2 })
    expect(runs).toBe(2)
    const copy = ClientSessions.fromData(s.toData())
    expect(copy.check({ client: 'x', seq: 4 })).toEqual({ status: 'duplicate', result: 2 })
  })

  it('forgets the least recently used client first, the same way on every node', () => {
    const s = new ClientSessions<number>(2)
    s.record({ client: 'a', seq: 1 }, 1)
    s.record({ client: 'b', seq: 1 }, 2)
    s.record({ client: 'a', seq: 2 }, 3)
    s.record({ client: 'c', seq: 1 }, 4)
    expect(s.size).toBe(2)
    expect(s.check({ client: 'b', seq: 1 })).toEqual({ status: 'new' })
    expect(s.check({ client: 'a', seq: 2 })).toEqual({ status: 'duplicate', result: 3 })
  })

  it('a command proposed twice (a retry through another node after a leader change) applies once', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    c.propose('k', 1)
    c.propose('k', 1)
    c.run(2)
    expect(keys(c, 'a')).toEqual(['k#1'])
  })
})

describe('lease and ordering contract', () => {
  it('the lease is shorter than the election timeout by the drift and a tick', () => {
    expect(maxLeaseTicks(10, 0.01)).toBe(8)
    expect(maxLeaseTicks(10, 0)).toBe(9)
    expect(maxLeaseTicks(20, 0.05)).toBe(17)
    expect(
      () =>
        new RaftNode(
          {
            id: 'a',
            cluster: 'x',
            signer: fakeSigner('a'),
            verifier: fakeVerifier,
            random: () => 0,
            leaseTicks: 10,
          },
          { hardState: { term: 0, vote: null, commit: 0 }, snapshot: genesisSnapshot(['a']), entries: [] },
        ),
    ).toThrow(expect.objectContaining({ code: 'ERR_RAFT_CONFIG' }))
  })

  it('every message that depends on a write leaves in a Ready whose persist holds it', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const seen: Array<{ persist: PersistBatch | null; send: readonly Message[] }> = []
    for (const n of c.nodes.values()) {
      const raft = n.raft
      const ready = raft.ready.bind(raft)
      raft.ready = () => {
        const r = ready()
        if (r != null) seen.push({ persist: r.persist, send: r.send })
        return r
      }
    }
    c.electLeader()
    for (let i = 1; i <= 5; i++) c.propose('k', i)
    c.run(3)
    let checked = 0
    for (const { persist, send } of seen)
      for (const m of send) {
        if (m.type === 'vote-response' && m.granted) {
          expect(persist?.hardState?.vote).toBe(m.to)
          expect(persist?.sync).toBe(true)
          checked++
        }
        if (m.type === 'vote') {
          expect(persist?.hardState).toMatchObject({ term: m.term, vote: m.from })
          checked++
        }
      }
    expect(checked).toBeGreaterThan(0)
  })

  it('handleReady carries a Ready out in order: persist, send, apply, advance', async () => {
    const c = new LockstepCluster({ voters: ['a'] })
    const raft = c.raft('a')
    for (let i = 0; i < 25; i++) raft.tick()
    const order: string[] = []
    while (
      await handleReady(raft, {
        persist: async () => {
          order.push('persist')
        },
        send: () => order.push('send'),
        apply: () => {
          order.push('apply')
        },
      })
    ) {}
    expect(raft.status().role).toBe('leader')
    expect(order.indexOf('persist')).toBeLessThan(order.indexOf('apply'))
  })

  it('certificates verify with real ed25519 keys through node:crypto (what the libp2p adapter uses)', () => {
    const pairs = new Map(['a', 'b', 'c'].map((id) => [id, generateKeyPairSync('ed25519')] as const))
    const signer = (id: string) => ({
      sign: (bytes: Uint8Array) => new Uint8Array(sign(null, bytes, pairs.get(id)!.privateKey)),
    })
    const verifier = {
      verify: (id: string, bytes: Uint8Array, signature: Uint8Array) =>
        pairs.has(id) && verify(null, bytes, pairs.get(id)!.publicKey, signature),
    }
    const genesis = genesisSnapshot(['a', 'b', 'c'])
    const nodes = new Map(
      ['a', 'b', 'c'].map((id) => [
        id,
        new RaftNode(
          { id, cluster: 'ed', signer: signer(id), verifier, random: () => 0.5 },
          { hardState: { term: 0, vote: null, commit: 0 }, snapshot: genesis, entries: [] },
        ),
      ]),
    )
    for (const n of nodes.values()) for (let i = 0; i < 11; i++) n.tick()
    nodes.get('a')!.campaign()
    const queue: Message[] = []
    const pump = () => {
      for (const n of nodes.values()) {
        const r = n.ready()
        if (r == null) continue
        queue.push(...r.send)
        n.advance(r)
      }
    }
    for (let round = 0; round < 10; round++) {
      pump()
      for (const m of queue.splice(0)) nodes.get(m.to)?.step(m)
    }
    const status = nodes.get('a')!.status()
    expect(status.role).toBe('leader')
    expect(verifyCertificate(status.certificate!, ['a', 'b', 'c'], { cluster: 'ed', verifier })).toBe(true)
    expect(verifyCertificate(status.certificate!, ['a', 'b', 'c'], { cluster: 'other', verifier })).toBe(
      false,
    )
    expect(nodes.get('b')!.status().leader).toBe('a')
  })
})
