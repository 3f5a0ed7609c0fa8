/**
 * The voter policy (src/manager/voter-policy.ts): how many voters, who joins (a
 * learner first, from the least represented zone, never an observer), when a
 * learner is promoted, who leaves (left at once, dead after the removal delay,
 * replaced first when someone can replace it), and what it never does (shrink on
 * suspicion or while a voter does not answer, remove the leader itself).
 */
import { describe, expect, it } from 'vitest'
import type { ClusterConfig, NodeId } from '../../src/manager/raft/index.js'
import { nextVoterChange, type VoterView, voterTarget } from '../../src/manager/voter-policy.js'
import type { Member, MemberMetadata } from '../../src/membership/index.js'

/** A member as a view would hold it, built by hand (as test/unit/metadata-contract.test.ts does). */
const member = (
  id: string,
  options: { state?: Member['state']; zone?: string; roles?: string[]; self?: boolean } = {},
): Member => {
  const meta: Record<string, unknown> = {}
  if (options.zone != null) meta.tags = { zone: options.zone }
  if (options.roles != null) meta.roles = options.roles
  return {
    id,
    addrs: [],
    incarnation: 1,
    state: options.state ?? 'alive',
    meta: meta as MemberMetadata,
    self: options.self ?? false,
    since: 0,
  }
}

const NOW = 1_000_000
const REMOVAL_MS = 60_000

const view = (fields: {
  voters: NodeId[]
  learners?: NodeId[]
  members: Member[]
  self?: NodeId
  commit?: number
  match?: Record<NodeId, number>
  goneSince?: Record<NodeId, number>
  now?: number
  maxVoters?: number
}): VoterView => {
  const config: ClusterConfig = {
    voters: [...fields.voters].sort(),
    learners: [...(fields.learners ?? [])].sort(),
  }
  return {
    config,
    self: fields.self ?? 'a',
    commit: fields.commit ?? 10,
    match: fields.match ?? {},
    members: fields.members,
    goneSince: new Map(Object.entries(fields.goneSince ?? {})),
    now: fields.now ?? NOW,
    removalMs: REMOVAL_MS,
    maxVoters: fields.maxVoters ?? 5,
  }
}

/** Alive members with these ids (the first one is this node). */
const alive = (...ids: string[]) => ids.map((id, i) => member(id, { self: i === 0 }))

/** Plays the policy to a fixed point, carrying out each change on the configuration; learners catch up at once. */
function settle(start: VoterView, max = 20): { config: ClusterConfig; changes: string[] } {
  let config = start.config
  const changes: string[] = []
  for (let i = 0; i < max; i++) {
    const match = Object.fromEntries([...config.voters, ...config.learners].map((id) => [id, start.commit]))
    const change = nextVoterChange({ ...start, config, match })
    if (change == null) return { config, changes }
    changes.push(`${change.op} ${change.node}`)
    const voters = new Set(config.voters)
    const learners = new Set(config.learners)
    if (change.op === 'add-learner') learners.add(change.node)
    if (change.op === 'add-voter') {
      learners.delete(change.node)
      voters.add(change.node)
    }
    if (change.op === 'remove') {
      voters.delete(change.node)
      learners.delete(change.node)
    }
    config = { voters: [...voters].sort(), learners: [...learners].sort() }
  }
  throw new Error(`no fixed point after ${max} changes: ${changes.join(', ')}`)
}

describe('voterTarget', () => {
  it.each([
    [0, 5, 1],
    [1, 5, 1],
    [2, 5, 1],
    [3, 5, 3],
    [4, 5, 3],
    [5, 5, 5],
    [9, 5, 5],
    [100, 5, 5],
    [5, 3, 3],
    [9, 3, 3],
    [2, 3, 1],
    [9, 1, 1],
    [9, 0, 1],
  ])('%i eligible, at most %i: %i voters', (eligible, maxVoters, target) => {
    expect(voterTarget(eligible, maxVoters)).toBe(target)
  })

  it('is always odd', () => {
    for (let eligible = 0; eligible < 12; eligible++)
      for (const max of [1, 3, 5]) expect(voterTarget(eligible, max) % 2).toBe(1)
  })
})

describe('growing the voter set', () => {
  it('a founder alone with two more agents adds a learner, the smallest id when no zones are named', () => {
    expect(nextVoterChange(view({ voters: ['a'], members: alive('a', 'c', 'b') }))).toEqual({
      op: 'add-learner',
      node: 'b',
    })
  })

  it('nothing to do while the set has its target size', () => {
    expect(nextVoterChange(view({ voters: ['a'], members: alive('a', 'b') }))).toBeNull()
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members: alive('a', 'b', 'c', 'd') }))).toBeNull()
  })

  it('promotes a learner only once its log reached the commit index', () => {
    const members = alive('a', 'b', 'c')
    expect(
      nextVoterChange(view({ voters: ['a'], learners: ['b'], members, commit: 10, match: { b: 9 } })),
    ).toBeNull()
    expect(
      nextVoterChange(view({ voters: ['a'], learners: ['b'], members, commit: 10, match: {} })),
    ).toBeNull()
    expect(
      nextVoterChange(view({ voters: ['a'], learners: ['b'], members, commit: 10, match: { b: 10 } })),
    ).toEqual({ op: 'add-voter', node: 'b' })
    expect(
      nextVoterChange(view({ voters: ['a'], learners: ['b'], members, commit: 10, match: { b: 12 } })),
    ).toEqual({ op: 'add-voter', node: 'b' })
  })

  it('one learner at a time: no second learner while one catches up', () => {
    const change = nextVoterChange(
      view({ voters: ['a'], learners: ['b'], members: alive('a', 'b', 'c', 'd', 'e'), match: { b: 0 } }),
    )
    expect(change).toBeNull()
  })

  it('never brings in an observer (lb, observer roles), nor one that is not alive', () => {
    const members = [
      member('a', { self: true }),
      member('b', { roles: ['lb'] }),
      member('c', { roles: ['observer'] }),
      member('d', { state: 'suspect' }),
      member('e', { roles: ['web'] }),
      member('f'),
    ]
    // Eligible and alive or suspect: a, d, e, f (4): three voters.
    expect(nextVoterChange(view({ voters: ['a'], members }))).toEqual({ op: 'add-learner', node: 'e' })
    const { config } = settle(view({ voters: ['a'], members }))
    expect(config).toEqual({ voters: ['a', 'e', 'f'], learners: [] })
  })

  it('observers do not count towards the target', () => {
    const members = [member('a', { self: true }), member('b'), member('c', { roles: ['lb'] })]
    expect(nextVoterChange(view({ voters: ['a'], members }))).toBeNull()
  })

  it('spreads voters over zones: the spare from the zone with the fewest voters first', () => {
    const members = [
      member('a', { self: true, zone: 'z1' }),
      member('b', { zone: 'z1' }),
      member('c', { zone: 'z1' }),
      member('d', { zone: 'z2' }),
      member('e', { zone: 'z3' }),
    ]
    expect(nextVoterChange(view({ voters: ['a'], members }))).toEqual({ op: 'add-learner', node: 'd' })
    expect(nextVoterChange(view({ voters: ['a', 'd'], members }))).toEqual({ op: 'add-learner', node: 'e' })
    const { config } = settle(view({ voters: ['a'], members }))
    expect(config.voters).toEqual(['a', 'b', 'c', 'd', 'e'])
    // With three voters at most, one per zone.
    expect(settle(view({ voters: ['a'], members, maxVoters: 3 })).config.voters).toEqual(['a', 'd', 'e'])
  })

  it('grows to five one change at a time, each voter a learner first', () => {
    const members = alive('a', 'b', 'c', 'd', 'e', 'f')
    const { config, changes } = settle(view({ voters: ['a'], members }))
    expect(config).toEqual({ voters: ['a', 'b', 'c', 'd', 'e'], learners: [] })
    expect(changes).toEqual([
      'add-learner b',
      'add-voter b',
      'add-learner c',
      'add-voter c',
      'add-learner d',
      'add-voter d',
      'add-learner e',
      'add-voter e',
    ])
  })

  it('maxVoters caps the set', () => {
    expect(
      settle(view({ voters: ['a'], members: alive('a', 'b', 'c', 'd', 'e', 'f'), maxVoters: 3 })).config,
    ).toEqual({ voters: ['a', 'b', 'c'], learners: [] })
  })
})

describe('voters that go', () => {
  it('a voter that left is removed at once, before anything else', () => {
    const members = [...alive('a', 'b', 'c', 'd'), member('e', { state: 'left' })]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c', 'd', 'e'], members }))).toEqual({
      op: 'remove',
      node: 'e',
    })
  })

  it('a learner that left is removed at once; one dead past the delay too, not before', () => {
    const members = [...alive('a', 'b', 'c'), member('l', { state: 'left' })]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], learners: ['l'], members }))).toEqual({
      op: 'remove',
      node: 'l',
    })
    const dead = [...alive('a', 'b', 'c'), member('l', { state: 'dead' })]
    expect(
      nextVoterChange(
        view({
          voters: ['a', 'b', 'c'],
          learners: ['l'],
          members: dead,
          goneSince: { l: NOW - REMOVAL_MS + 1 },
        }),
      ),
    ).toBeNull()
    expect(
      nextVoterChange(
        view({ voters: ['a', 'b', 'c'], learners: ['l'], members: dead, goneSince: { l: NOW - REMOVAL_MS } }),
      ),
    ).toEqual({ op: 'remove', node: 'l' })
  })

  it('a dead voter is replaced: a spare comes in as a learner, is promoted, then the dead one goes', () => {
    const members = [...alive('a', 'b', 'd'), member('c', { state: 'dead' })]
    const goneSince = { c: NOW - REMOVAL_MS }
    // Three eligible alive (a, b, d): target 3, two healthy voters.
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members, goneSince }))).toEqual({
      op: 'add-learner',
      node: 'd',
    })
    // The learner catching up: the dead voter stays (removing it first would leave two voters).
    expect(
      nextVoterChange(
        view({ voters: ['a', 'b', 'c'], learners: ['d'], members, goneSince, match: { d: 3 } }),
      ),
    ).toBeNull()
    expect(
      nextVoterChange(
        view({ voters: ['a', 'b', 'c'], learners: ['d'], members, goneSince, match: { d: 10 } }),
      ),
    ).toEqual({ op: 'add-voter', node: 'd' })
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c', 'd'], members, goneSince }))).toEqual({
      op: 'remove',
      node: 'c',
    })
    expect(nextVoterChange(view({ voters: ['a', 'b', 'd'], members, goneSince }))).toBeNull()
  })

  it('a voter missing from the membership view counts as dead', () => {
    const members = alive('a', 'b', 'd')
    const { changes, config } = settle(view({ voters: ['a', 'b', 'c'], members, goneSince: { c: 0 } }))
    expect(changes).toEqual(['add-learner d', 'add-voter d', 'remove c'])
    expect(config.voters).toEqual(['a', 'b', 'd'])
  })

  it('a dead voter is kept until the removal delay when no spare can replace it, then removed', () => {
    const members = [...alive('a', 'b', 'c', 'd'), member('e', { state: 'dead' })]
    const voters = ['a', 'b', 'c', 'd', 'e']
    // Four eligible: target 3, four healthy voters; no spare.
    expect(nextVoterChange(view({ voters, members, goneSince: { e: NOW - REMOVAL_MS + 1 } }))).toBeNull()
    expect(nextVoterChange(view({ voters, members }))).toBeNull()
    expect(nextVoterChange(view({ voters, members, goneSince: { e: NOW - REMOVAL_MS } }))).toEqual({
      op: 'remove',
      node: 'e',
    })
  })

  it('with too few agents left, a dead voter past the delay is removed all the same', () => {
    const members = [...alive('a', 'b'), member('c', { state: 'dead' })]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members, goneSince: { c: NOW - 1 } }))).toBeNull()
    expect(
      nextVoterChange(view({ voters: ['a', 'b', 'c'], members, goneSince: { c: NOW - REMOVAL_MS } })),
    ).toEqual({ op: 'remove', node: 'c' })
  })

  it('never removes itself, whether it left, is dead in its own view or sits in the most crowded zone', () => {
    // Left (a graceful leave: the leader hands over instead), with the others alive.
    const left = [member('a', { self: true, state: 'left' }), ...alive('b', 'c')]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members: left }))).toBeNull()
    // Dead in its own view and long gone.
    const dead = [member('a', { self: true, state: 'dead' }), ...alive('b', 'c')]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members: dead, goneSince: { a: 0 } }))).toBeNull()
    // Shrinking to one voter, whichever node leads: it is the one that stays.
    const ids = ['a', 'b', 'c', 'd', 'e']
    for (const self of ids) {
      const members = ids.map((id) => member(id, { self: id === self, zone: id === self ? 'crowded' : id }))
      members.push(member('x', { zone: 'crowded' }), member('y', { zone: 'crowded' }))
      const { config, changes } = settle(view({ voters: ids, members, self, maxVoters: 1 }))
      expect(config).toEqual({ voters: [self], learners: [] })
      expect(changes).not.toContain(`remove ${self}`)
    }
  })
})

describe('never shrinking on a doubt', () => {
  it('a suspected voter keeps its place, and no replacement is brought in', () => {
    const members = [...alive('a', 'b', 'c', 'f'), member('d', { state: 'suspect' }), member('e')]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c', 'd', 'e'], members }))).toBeNull()
  })

  it('suspected members still count towards the target', () => {
    // Three alive and two suspect: five eligible, the set stays at five.
    const members = [
      ...alive('a', 'b', 'c'),
      member('d', { state: 'suspect' }),
      member('e', { state: 'suspect' }),
    ]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c', 'd', 'e'], members }))).toBeNull()
    // Three voters, a suspected agent and a spare: five eligible, so the set grows (with the spare).
    const growing = [...alive('a', 'b', 'c', 'e'), member('d', { state: 'suspect' })]
    expect(nextVoterChange(view({ voters: ['a', 'b', 'c'], members: growing }))).toEqual({
      op: 'add-learner',
      node: 'e',
    })
  })

  it('shrinks (too many voters for the agents left) only while every voter is alive', () => {
    // Five voters, four eligible: one voter suspected, one missing (not past the delay).
    const base = alive('a', 'b', 'c')
    const voters = ['a', 'b', 'c', 'd', 'e']
    const suspect = [...base, member('d', { state: 'suspect' })]
    expect(nextVoterChange(view({ voters, members: suspect }))).toBeNull()
    // Every voter alive again: it shrinks to the target, one at a time.
    expect(nextVoterChange(view({ voters, members: alive('a', 'b', 'c', 'd', 'e'), maxVoters: 3 }))).toEqual({
      op: 'remove',
      node: 'e',
    })
  })

  it('shrinks 5 → 3 by removing from the most crowded zone, the largest id first', () => {
    const members = [
      member('a', { self: true, zone: 'z1' }),
      member('b', { zone: 'z2' }),
      member('c', { zone: 'z2' }),
      member('d', { zone: 'z3' }),
      member('e', { zone: 'z1' }),
    ]
    // maxVoters 3: two voters too many, every voter alive.
    const first = nextVoterChange(view({ voters: ['a', 'b', 'c', 'd', 'e'], members, maxVoters: 3 }))
    // z1 (a, e) and z2 (b, c) both hold two; ties go to the largest id, never self.
    expect(first).toEqual({ op: 'remove', node: 'e' })
    const second = nextVoterChange(view({ voters: ['a', 'b', 'c', 'd'], members, maxVoters: 3 }))
    expect(second).toEqual({ op: 'remove', node: 'c' })
    expect(nextVoterChange(view({ voters: ['a', 'b', 'd'], members, maxVoters: 3 }))).toBeNull()
  })
})

describe('learners nobody needs', () => {
  it('an alive learner is removed when the voter set is full', () => {
    expect(
      nextVoterChange(view({ voters: ['a', 'b', 'c'], learners: ['d'], members: alive('a', 'b', 'c', 'd') })),
    ).toEqual({ op: 'remove', node: 'd' })
  })

  it('a learner is kept while the set still needs a voter', () => {
    expect(
      nextVoterChange(
        view({ voters: ['a'], learners: ['d'], members: alive('a', 'b', 'd'), match: { d: 0 } }),
      ),
    ).toBeNull()
  })

  it('a learner that became an observer is not promoted', () => {
    const members = [...alive('a', 'b', 'c'), member('l', { roles: ['lb'] })]
    const change = nextVoterChange(view({ voters: ['a', 'b'], learners: ['l'], members, match: { l: 99 } }))
    expect(change).not.toEqual({ op: 'add-voter', node: 'l' })
  })
})
