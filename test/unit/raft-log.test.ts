/**
 * Log replication in the Raft core: the consistency check and fast back-off, log
 * matching, commit only of current-term entries (the paper's Figure 8), leader
 * completeness and state machine safety under seeded random schedules.
 */
import { describe, expect, it } from 'vitest'
import { fakeSigner, fakeVerifier } from '../../bench/raft-sim/keys.js'
import { LockstepCluster } from '../../bench/raft-sim/lockstep.js'
import { genesisSnapshot, type Message, RaftNode } from '../../src/manager/raft/index.js'

const keys = (c: LockstepCluster, id: string) => c.node(id).machine.applied.map((a) => `${a.client}#${a.seq}`)

function seeded(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('log replication', () => {
  it('replicates and applies proposals in order on every node', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    c.electLeader()
    for (let i = 1; i <= 20; i++) c.propose('k', i)
    c.run(3)
    for (const id of ['a', 'b', 'c'])
      expect(keys(c, id)).toEqual(Array.from({ length: 20 }, (_, i) => `k#${i + 1}`))
  })

  it('a follower far behind with a conflicting suffix is repaired in a few round trips (fast back-off)', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], init: { maxEntriesPerMessage: 1000 } })
    const first = c.electLeader()
    const [x, y] = ['a', 'b', 'c'].filter((id) => id !== first.id) as [string, string]
    // The first leader appends 50 entries that reach nobody, then dies.
    c.filter = (m) => m.from !== first.id
    for (let i = 1; i <= 50; i++) c.propose('lost', i, first.id)
    c.stabilize()
    c.crash(first.id)
    // The others elect a leader and commit 30 entries of their own.
    c.filter = () => true
    const second = c.electLeader()
    for (let i = 1; i <= 30; i++) c.propose('kept', i)
    c.run(2)
    // The first comes back with 50 uncommitted entries of an old term.
    c.restart(first.id)
    const before = c.delivered.filter(
      (m) => m.type === 'append-response' && !m.success && m.from === first.id,
    ).length
    c.run(3)
    const rejects = c.delivered.filter(
      (m) => m.type === 'append-response' && !m.success && m.from === first.id,
    ).length
    expect(rejects - before).toBeLessThanOrEqual(3)
    for (const id of [first.id, x, y]) expect(keys(c, id)).toEqual(keys(c, second.id))
    expect(keys(c, first.id)).not.toContain('lost#1')
  })

  it('commits only entries of the current term by counting replicas (Figure 8)', () => {
    const ids = ['s1', 's2', 's3', 's4', 's5']
    const c = new LockstepCluster({ voters: ids, init: { maxEntriesPerMessage: 1 } })
    const quiet = () => {
      c.filter = () => false
      c.run(11)
    }
    quiet()
    c.filter = () => true
    c.raft('s1').campaign()
    c.stabilize()
    expect(c.raft('s1').status().role).toBe('leader')
    c.run(2) // term-start of s1's term committed everywhere (index 1)
    // (a) s1 appends X at index 2; only s2 gets it. s1 dies.
    c.filter = (m) => m.from !== 's1' || m.to === 's2'
    c.propose('x', 1, 's1')
    c.stabilize()
    expect(c.raft('s2').termAt(2)).toBe(c.raft('s1').termAt(2))
    c.crash('s1')
    // (b) s5 wins with s3, s4 and appends its term-start at index 2, reaching nobody; it dies.
    quiet()
    c.filter = (m) =>
      ['s3', 's4', 's5'].includes(m.from) && ['s3', 's4', 's5'].includes(m.to) && m.type !== 'append'
    c.raft('s5').campaign()
    c.stabilize()
    expect(c.raft('s5').status().role).toBe('leader')
    c.crash('s5')
    // (c) s1 restarts and wins; it sends X (index 2) to s3 but not its own term-start (index 3).
    c.restart('s1')
    quiet()
    const leaderOnly = (m: Message) => m.from !== 's5' && m.to !== 's5'
    // Index 3 (s1's term-start) reaches no one who would accept it; the probes that find X's place do.
    const holdsIndex3Back = (m: Message) =>
      m.type === 'append' &&
      m.entries.some((e) => e.index >= 3) &&
      c.raft(m.to).termAt(m.prevLogIndex) === m.prevLogTerm
    c.filter = (m) => leaderOnly(m) && !holdsIndex3Back(m)
    // Its first try is in s5's term, where s3 and s4 already voted: it loses, and wins the next.
    c.raft('s1').campaign()
    c.stabilize()
    const keep = c.filter
    quiet()
    c.filter = keep
    c.raft('s1').campaign()
    c.stabilize()
    expect(c.raft('s1').status().role).toBe('leader')
    expect(c.raft('s3').termAt(2)).toBe(c.raft('s1').termAt(2))
    // X is on s1, s2, s3 (a majority), but of an older term: not committed.
    expect(c.raft('s1').status().commit).toBe(1)
    // (d) If s1 died now, s5 could win and replace X: nobody may have applied it.
    for (const id of ids) expect(keys(c, id)).not.toContain('x#1')
    // (e) Once s1's own term-start reaches a majority, X commits with it.
    c.filter = leaderOnly
    c.run(2)
    expect(c.raft('s1').status().commit).toBeGreaterThanOrEqual(3)
    expect(keys(c, 's1')).toEqual(['x#1'])
  })

  it('state machine safety, log matching and leader completeness over seeded random schedules', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seeded(seed)
      const ids = ['a', 'b', 'c', 'd', 'e']
      const c = new LockstepCluster({
        voters: ids,
        seed,
        compactEvery: 15,
        init: { maxEntriesPerMessage: 4 },
      })
      c.filter = () => random() > 0.25
      const committed = new Map<number, number>() // index → term applied somewhere
      let clientSeq = 0
      for (let step = 0; step < 300; step++) {
        c.tick()
        c.stabilize()
        const leaders = c.leaders()
        if (leaders.length > 0 && random() < 0.5) {
          try {
            leaders[Math.floor(random() * leaders.length)]!.raft.propose(new Uint8Array([1]), {
              client: 'k',
              seq: ++clientSeq,
            })
          } catch {}
        }
        if (random() < 0.03) {
          const id = ids[Math.floor(random() * ids.length)]!
          if (c.node(id).alive) c.crash(id)
          else c.restart(id)
        }
        for (const n of c.nodes.values()) {
          for (const [index, term] of n.appliedTerms) {
            const known = committed.get(index)
            expect(known ?? term, `seed ${seed}: ${n.id} applied term ${term} at ${index}`).toBe(term)
            committed.set(index, term)
          }
          n.appliedTerms.clear()
        }
        // Leader completeness: every leader holds every entry applied anywhere (or has compacted past it).
        for (const l of c.leaders()) {
          const s = l.raft.status()
          for (const [index, term] of committed)
            if (index > s.snapshotIndex)
              expect(l.raft.termAt(index), `seed ${seed}: leader ${l.id} at ${index}`).toBe(term)
        }
      }
      // Log matching: two logs with the same term at an index agree on every entry before it.
      c.filter = () => true
      for (const n of c.nodes.values()) if (!n.alive) c.restart(n.id)
      c.run(30)
      const logs = [...c.nodes.values()].map((n) => n.raft)
      for (const p of logs)
        for (const q of logs) {
          const last = Math.min(p.status().lastIndex, q.status().lastIndex)
          const from = Math.max(p.status().snapshotIndex, q.status().snapshotIndex) + 1
          for (let i = last; i >= from; i--)
            if (p.termAt(i) === q.termAt(i)) {
              for (let j = i; j >= from; j--)
                expect(JSON.stringify(p.entryAt(j))).toBe(JSON.stringify(q.entryAt(j)))
              break
            }
        }
      const reference = keys(c, 'a')
      for (const id of ids) expect(keys(c, id), `seed ${seed}`).toEqual(reference)
      expect(new Set(reference).size).toBe(reference.length)
    }
  })

  it('refuses a stored log with a gap', () => {
    const genesis = genesisSnapshot(['a'])
    const init = { id: 'a', cluster: 'x', signer: fakeSigner('a'), verifier: fakeVerifier, random: () => 0.5 }
    expect(
      () =>
        new RaftNode(init, {
          hardState: { term: 1, vote: 'a', commit: 0 },
          snapshot: genesis,
          entries: [{ kind: 'command', index: 2, term: 1, request: null, data: new Uint8Array() }],
        }),
    ).toThrow(expect.objectContaining({ code: 'ERR_RAFT_STATE_CORRUPT' }))
  })
})
