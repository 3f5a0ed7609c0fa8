import { describe, expect, it } from 'vitest'
import { CLAIM_KEY } from '../../src/manager/announcement.js'
import { claimOf, type ElectionInput, elect, isEligible } from '../../src/manager/election.js'
import type { Member, MemberState } from '../../src/membership/member.js'

interface MemberOptions {
  state?: MemberState
  /** A term this member announces in its metadata. */
  claim?: number
  roles?: string[]
  self?: boolean
}

function member(id: string, options: MemberOptions = {}): Member {
  const meta: Record<string, unknown> = {}
  if (options.claim != null) meta[CLAIM_KEY] = { term: options.claim }
  if (options.roles != null) meta.roles = options.roles
  return {
    id,
    addrs: [],
    incarnation: 1,
    state: options.state ?? 'alive',
    meta,
    self: options.self ?? false,
    since: 0,
  }
}

/** One election round as `self` sees it; `self` is marked in `members` by id. */
function round(
  self: string,
  members: Member[],
  options: Partial<Omit<ElectionInput, 'self' | 'members'>> = {},
) {
  return elect({
    self,
    members: members.map((m) => (m.id === self ? { ...m, self: true } : m)),
    voters: options.voters ?? [],
    knownTerm: options.knownTerm ?? 0,
    myClaim: options.myClaim ?? null,
  })
}

describe('elect: first formation', () => {
  const nodes = () => [member('b'), member('a'), member('c')]

  it('lets the smallest alive id claim the term after the highest one it knows', () => {
    const view = round('a', nodes(), { knownTerm: 4 })
    expect(view).toEqual({
      manager: 'a',
      term: 5,
      quorum: true,
      voters: ['a', 'b', 'c'],
      aliveVoters: 3,
      claim: 5,
    })
  })

  it('claims term 1 on a brand-new cluster', () => {
    expect(round('a', nodes()).claim).toBe(1)
  })

  it('makes the other nodes wait for the candidate instead of claiming themselves', () => {
    for (const self of ['b', 'c']) {
      const view = round(self, nodes(), { knownTerm: 4 })
      expect(view.manager).toBeNull()
      expect(view.claim).toBeNull()
      expect(view.term).toBe(4)
      expect(view.quorum).toBe(true)
    }
  })

  it('skips a dead or suspect smallest id when choosing the candidate', () => {
    const members = [member('a', { state: 'dead' }), member('b', { state: 'suspect' }), member('c')]
    expect(round('c', members).claim).toBe(1)
    expect(round('c', members).voters).toEqual(['c'])
  })
})

describe('elect: following a claimer', () => {
  it('follows an alive claimer even when it is not the smallest id', () => {
    const members = [member('a'), member('b'), member('c', { claim: 3 })]
    const view = round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 3 })
    expect(view).toMatchObject({ manager: 'c', term: 3, claim: null, quorum: true })
  })

  it('follows the highest term among several alive claimers', () => {
    const members = [member('a'), member('b', { claim: 7 }), member('c', { claim: 6 })]
    expect(round('a', members, { voters: ['a', 'b', 'c'] })).toMatchObject({ manager: 'b', term: 7 })
  })

  it('breaks a tie between equal terms by the larger id', () => {
    const members = [member('a'), member('b', { claim: 7 }), member('c', { claim: 7 })]
    expect(round('a', members, { voters: ['a', 'b', 'c'] }).manager).toBe('c')
    expect(round('b', members, { voters: ['a', 'b', 'c'], myClaim: 7 })).toMatchObject({
      manager: 'c',
      claim: null,
    })
  })

  it('keeps its own claim while it is the highest, using myClaim rather than its metadata', () => {
    // Its metadata still shows an older claim; the round must use the current one.
    const members = [member('a', { claim: 1 }), member('b', { claim: 2 }), member('c')]
    const view = round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 3, myClaim: 3 })
    expect(view).toMatchObject({ manager: 'a', term: 3, claim: 3 })
  })

  it('steps down when it sees a higher alive claim', () => {
    const members = [member('a'), member('b', { claim: 5 }), member('c')]
    const view = round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 4, myClaim: 4 })
    expect(view).toMatchObject({ manager: 'b', term: 5, claim: null })
  })

  it('ignores a claim whose term is not an integer', () => {
    expect(claimOf({ [CLAIM_KEY]: { term: 2.5 } })).toBeNull()
    expect(claimOf({ [CLAIM_KEY]: { term: '3' } })).toBeNull()
    expect(claimOf({ [CLAIM_KEY]: null })).toBeNull()
    expect(claimOf({})).toBeNull()
    expect(claimOf({ [CLAIM_KEY]: { term: 3 } })).toBe(3)
    const members = [member('a'), { ...member('b'), meta: { [CLAIM_KEY]: { term: 2.5 } } }]
    expect(round('a', members, { voters: ['a', 'b'] })).toMatchObject({ manager: 'a', claim: 1 })
  })
})

describe('elect: a failed manager', () => {
  it('ignores a dead claimer and claims the term after every term seen', () => {
    const members = [member('a'), member('b'), member('c', { state: 'dead', claim: 9 })]
    const view = round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 2 })
    expect(view).toMatchObject({ manager: 'a', term: 10, claim: 10, quorum: true, aliveVoters: 2 })
  })

  it('keeps following a merely suspected manager (a slow moment does not start a new term)', () => {
    const members = [member('a'), member('b'), member('c', { state: 'suspect', claim: 9 })]
    const view = round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 2 })
    expect(view).toMatchObject({ manager: 'c', term: 9, claim: null, quorum: true, aliveVoters: 2 })
  })

  it('follows no claim from an observer such as a load balancer', () => {
    const members = [member('a'), member('b'), member('z', { claim: 9, roles: ['lb'] })]
    expect(round('a', members, { voters: ['a', 'b'], knownTerm: 2 })).toMatchObject({
      manager: 'a',
      claim: 10,
    })
  })

  it('never reuses a term it already knows, even above every term it sees', () => {
    const members = [member('a'), member('b'), member('c', { state: 'dead', claim: 3 })]
    expect(round('a', members, { voters: ['a', 'b', 'c'], knownTerm: 8 }).claim).toBe(9)
  })

  it('reports the highest term seen while waiting for the candidate to claim', () => {
    const members = [member('a'), member('b'), member('c', { state: 'dead', claim: 9 })]
    expect(round('b', members, { voters: ['a', 'b', 'c'], knownTerm: 2 })).toMatchObject({
      manager: null,
      term: 9,
      claim: null,
    })
  })
})

describe('elect: quorum', () => {
  const voters = ['a', 'b', 'c', 'd', 'e']
  const split = () => [
    member('a'),
    member('b'),
    member('c', { state: 'dead' }),
    member('d', { state: 'dead' }),
    member('e', { state: 'suspect' }),
  ]

  it('elects no one on the minority side of a split (2 of 5 voters alive)', () => {
    for (const self of ['a', 'b']) {
      const view = round(self, split(), { voters, knownTerm: 3 })
      expect(view).toEqual({ manager: null, term: 3, quorum: false, voters, aliveVoters: 2, claim: null })
    }
  })

  it('elects on the majority side of the same split (3 of 5 voters alive)', () => {
    const members = [
      member('a', { state: 'dead' }),
      member('b', { state: 'dead' }),
      member('c'),
      member('d'),
      member('e'),
    ]
    expect(round('c', members, { voters, knownTerm: 3 })).toMatchObject({
      manager: 'c',
      term: 4,
      quorum: true,
      aliveVoters: 3,
      claim: 4,
    })
  })

  it('needs a strict majority: half of the voters alive is not enough', () => {
    const members = [member('a'), member('b'), member('c', { state: 'dead' }), member('d', { state: 'dead' })]
    const view = round('a', members, { voters: ['a', 'b', 'c', 'd'] })
    expect(view).toMatchObject({ quorum: false, manager: null, claim: null, aliveVoters: 2 })
  })

  it('counts recorded voters missing from the view as not alive', () => {
    const view = round('a', [member('a'), member('b')], { voters: ['a', 'b', 'x', 'y', 'z'] })
    expect(view).toMatchObject({ quorum: false, aliveVoters: 2, claim: null })
  })

  it('does not let alive non-voters make up a quorum', () => {
    const members = [member('a'), member('b'), member('n1'), member('n2'), member('n3')]
    const view = round('a', members, { voters: ['a', 'c', 'd', 'e', 'f'] })
    expect(view).toMatchObject({ quorum: false, aliveVoters: 1, claim: null, manager: null })
  })
})

describe('elect: observers', () => {
  const lb = (id: string) => member(id, { roles: ['lb'] })

  it('treats members with the lb role as ineligible and others as eligible', () => {
    expect(isEligible(lb('a'))).toBe(false)
    expect(isEligible(member('a', { roles: ['agent'] }))).toBe(true)
    expect(isEligible(member('a'))).toBe(true)
  })

  it('never makes an observer the candidate, even with the smallest id', () => {
    const members = [lb('a'), member('b'), member('c')]
    expect(round('b', members)).toMatchObject({ manager: 'b', claim: 1, voters: ['b', 'c'] })
    expect(round('a', members)).toMatchObject({ manager: null, claim: null })
  })

  it('leaves observers out of the first voters, so they cannot make a quorum', () => {
    const members = [member('a'), lb('b'), lb('c'), lb('d')]
    expect(round('a', members)).toMatchObject({ voters: ['a'], aliveVoters: 1, quorum: true, claim: 1 })
  })

  it('elects no one when only observers are alive', () => {
    expect(round('a', [lb('a'), lb('b')])).toMatchObject({ manager: null, claim: null, voters: [] })
  })
})

describe('elect: after a partition heals', () => {
  // Both sides elected in turn: the old manager `a` at term 3, then `c` at term 4.
  const healed = () => [member('a', { claim: 3 }), member('b'), member('c', { claim: 4 })]
  const voters = ['a', 'b', 'c']

  it('makes the lower-term claimer step down and follow the higher term', () => {
    expect(round('a', healed(), { voters, knownTerm: 3, myClaim: 3 })).toMatchObject({
      manager: 'c',
      term: 4,
      claim: null,
    })
  })

  it('keeps the higher-term claimer as manager', () => {
    expect(round('c', healed(), { voters, knownTerm: 4, myClaim: 4 })).toMatchObject({
      manager: 'c',
      term: 4,
      claim: 4,
    })
  })

  it('has every node agree on the same manager', () => {
    const claims: Record<string, number | null> = { a: 3, b: null, c: 4 }
    const managers = voters.map(
      (self) => round(self, healed(), { voters, knownTerm: 4, myClaim: claims[self] ?? null }).manager,
    )
    expect(managers).toEqual(['c', 'c', 'c'])
  })
})

describe('elect: voters that left', () => {
  it('a voter that announced its leave does not count; one that is dead still does', () => {
    const left = round('a', [member('a', { claim: 3 }), member('b', { state: 'left' })], {
      voters: ['a', 'b'],
      myClaim: 3,
    })
    expect(left).toMatchObject({ manager: 'a', quorum: true, voters: ['a'], aliveVoters: 1 })
    const dead = round('a', [member('a', { claim: 3 }), member('b', { state: 'dead' })], {
      voters: ['a', 'b'],
      myClaim: 3,
    })
    expect(dead).toMatchObject({ quorum: false, voters: ['a', 'b'], aliveVoters: 1 })
  })
})
