/**
 * Single-server membership changes and learners in the Raft core: one change at
 * a time, in force when appended, never before the leader committed in its term;
 * learners follow the log without voting; a removed leader steps down; a removed
 * node cannot disrupt; a node that missed voter changes verifies the new leader
 * through the chain of configuration records.
 */
import { describe, expect, it } from 'vitest'
import { LockstepCluster } from '../../bench/raft-sim/lockstep.js'
import { applyConfigChange } from '../../src/manager/raft/index.js'

const keys = (c: LockstepCluster, id: string) => c.node(id).machine.applied.map((a) => `${a.client}#${a.seq}`)

describe('membership changes', () => {
  it('a learner receives the log but neither votes nor counts towards a majority', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['l'] })
    const leader = c.electLeader()
    leader.raft.proposeConfigChange({ op: 'add-learner', node: 'l' })
    c.run(2)
    c.propose('k', 1)
    c.run(2)
    expect(keys(c, 'l')).toEqual(['k#1'])
    expect(c.raft('l').status().config).toEqual({ voters: ['a', 'b', 'c'], learners: ['l'] })
    // With two voters down, the learner does not make a majority: nothing commits.
    const [x, y] = ['a', 'b', 'c'].filter((id) => id !== leader.id) as [string, string]
    c.crash(x)
    c.crash(y)
    const commit = leader.raft.status().commit
    c.propose('k', 2)
    c.run(3)
    expect(leader.raft.status().commit).toBe(commit)
    // A learner never campaigns.
    c.run(40)
    expect(c.raft('l').counters.elections).toBe(0)
    expect(c.raft('l').status().role).toBe('follower')
  })

  it('one change at a time, and none before the new leader committed an entry of its term', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['d', 'e'] })
    c.filter = (m) => m.type !== 'pre-vote'
    c.run(12)
    c.filter = (m) => m.type !== 'append-response'
    c.raft('a').campaign()
    c.stabilize()
    expect(() => c.raft('a').proposeConfigChange({ op: 'add-learner', node: 'd' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_CHANGE_PENDING' }),
    )
    c.filter = () => true
    c.run(2)
    c.filter = (m) => m.type !== 'append-response'
    c.raft('a').proposeConfigChange({ op: 'add-learner', node: 'd' })
    expect(() => c.raft('a').proposeConfigChange({ op: 'add-learner', node: 'e' })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_CHANGE_PENDING' }),
    )
    // In force as soon as appended, on the leader and on followers that appended it.
    expect(c.raft('a').status().config.learners).toEqual(['d'])
    c.stabilize()
    expect(c.raft('b').status().config.learners).toEqual(['d'])
    c.filter = () => true
    c.run(2)
    c.raft('a').proposeConfigChange({ op: 'add-learner', node: 'e' })
    c.run(2)
    expect(c.raft('e').status().config.learners).toEqual(['d', 'e'])
  })

  it('refuses anything but a single-voter change', () => {
    const config = { voters: ['a', 'b'], learners: ['l'] }
    expect(applyConfigChange(config, { op: 'add-voter', node: 'l' })).toEqual({
      voters: ['a', 'b', 'l'],
      learners: [],
    })
    expect(applyConfigChange(config, { op: 'demote', node: 'a' })).toEqual({
      voters: ['b'],
      learners: ['a', 'l'],
    })
    for (const change of [
      { op: 'add-voter', node: 'a' },
      { op: 'add-learner', node: 'l' },
      { op: 'remove', node: 'z' },
      { op: 'demote', node: 'l' },
    ] as const)
      expect(() => applyConfigChange(config, change)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_CONFIG_CHANGE' }),
      )
    expect(() => applyConfigChange({ voters: ['a'], learners: [] }, { op: 'remove', node: 'a' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_CONFIG_CHANGE' }),
    )
  })

  it('grows from one founder to five voters and back to three, with commands in between', () => {
    const c = new LockstepCluster({ voters: ['a'], others: ['b', 'c', 'd', 'e'] })
    c.electLeader()
    let seq = 0
    const change = (op: 'add-learner' | 'add-voter' | 'remove', node: string) => {
      c.electLeader().raft.proposeConfigChange({ op, node })
      c.run(3)
      c.propose('k', ++seq, c.electLeader().id)
      c.run(3)
    }
    for (const id of ['b', 'c', 'd', 'e']) {
      change('add-learner', id)
      change('add-voter', id)
    }
    expect(c.leader().raft.status().config.voters).toEqual(['a', 'b', 'c', 'd', 'e'])
    change('remove', 'a')
    change('remove', 'b')
    const leader = c.electLeader()
    expect(leader.raft.status().config.voters).toEqual(['c', 'd', 'e'])
    for (const id of ['c', 'd', 'e']) expect(keys(c, id)).toEqual(keys(c, leader.id))
    expect(keys(c, leader.id)).toHaveLength(seq)
  })

  it('a leader that removes itself keeps leading until the change commits, then steps down', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    leader.raft.proposeConfigChange({ op: 'remove', node: leader.id })
    expect(leader.raft.status().role).toBe('leader')
    c.run(2)
    expect(leader.raft.status().role).toBe('follower')
    const next = c.electLeader()
    expect(next.id).not.toBe(leader.id)
    expect(next.raft.status().config.voters).not.toContain(leader.id)
    // The removed node, no longer hearing from anyone, never disrupts the others.
    const term = next.raft.status().term
    c.run(60)
    expect(c.leader().id).toBe(next.id)
    expect(c.leader().raft.status().term).toBe(term)
  })

  it('graceful removal of the leader: hand over first, then remove', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'] })
    const leader = c.electLeader()
    const target = ['a', 'b', 'c'].find((id) => id !== leader.id)!
    leader.raft.transferLeadership(target)
    expect(() => leader.raft.propose(new Uint8Array())).toThrow(
      expect.objectContaining({ code: 'ERR_LEADERSHIP_TRANSFER' }),
    )
    expect(leader.raft.isActingLeader()).toBe(false) // lease given up with TimeoutNow
    c.stabilize()
    expect(c.leader().id).toBe(target)
    c.run(2)
    c.leader().raft.proposeConfigChange({ op: 'remove', node: leader.id })
    c.run(3)
    expect(c.raft(target).status().config.voters).not.toContain(leader.id)
    expect(c.raft(target).isActingLeader()).toBe(true)
  })

  it('a node that missed voter changes verifies the new leader through the configuration chain', () => {
    const c = new LockstepCluster({ voters: ['a', 'b', 'c'], others: ['d', 'e'] })
    c.electLeader()
    const lagging = ['a', 'b', 'c'].find((id) => id !== c.leader().id)!
    const rest = ['a', 'b', 'c'].filter((id) => id !== lagging)
    c.crash(lagging)
    const step = (op: 'add-learner' | 'add-voter' | 'remove', node: string) => {
      c.leader().raft.proposeConfigChange({ op, node })
      c.run(3)
    }
    // {a,b,c} → {a,b,c,d} → {a,b,c,d,e} → without one of the two that stayed: a majority of the
    // lagging node's config {a,b,c} no longer signs the new leader's votes.
    step('add-learner', 'd')
    step('add-voter', 'd')
    step('add-learner', 'e')
    step('add-voter', 'e')
    const old = c.leader().id
    step('remove', rest.find((id) => id !== old)!)
    c.leader().raft.transferLeadership('d')
    c.run(3)
    c.leader().raft.proposeConfigChange({ op: 'remove', node: old })
    c.run(3)
    const leader = c.leader()
    expect(leader.id).toBe('d')
    c.propose('k', 1)
    c.run(2)
    c.restart(lagging)
    c.run(5)
    expect(c.raft(lagging).counters.chainVerified).toBe(1)
    expect(c.raft(lagging).status().leader).toBe('d')
    expect(keys(c, lagging)).toEqual(['k#1'])
  })
})
