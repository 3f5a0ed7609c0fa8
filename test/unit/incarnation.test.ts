import { describe, expect, it } from 'vitest'
import { applyClaim, refutation } from '../../src/membership/incarnation.js'
import type { Claim, MemberRecord } from '../../src/membership/member.js'

const A = '12D3KooWA'
const record = (state: MemberRecord['state'], incarnation: number): MemberRecord => ({
  id: A,
  addrs: ['/ip4/127.0.0.1/tcp/1'],
  incarnation,
  state,
  meta: {},
})
const alive = (incarnation: number, meta = {}): Claim => ({
  kind: 'alive',
  id: A,
  incarnation,
  addrs: [],
  meta,
})
const suspect = (incarnation: number, from = 'x'): Claim => ({ kind: 'suspect', id: A, incarnation, from })
const dead = (incarnation: number): Claim => ({ kind: 'dead', id: A, incarnation, from: 'x' })
const left = (incarnation: number): Claim => ({ kind: 'left', id: A, incarnation })
const patch = (incarnation: number, base: number, set = {}, drop: string[] = []): Claim => ({
  kind: 'patch',
  id: A,
  incarnation,
  base,
  set,
  drop,
})

describe('applyClaim', () => {
  it('adds an unknown member only when it is claimed alive', () => {
    expect(applyClaim(undefined, alive(1)).effect).toBe('join')
    expect(applyClaim(undefined, suspect(1)).effect).toBe('ignore')
    expect(applyClaim(undefined, dead(1)).effect).toBe('ignore')
    expect(applyClaim(undefined, left(1)).effect).toBe('ignore')
  })

  it('lets alive override only with a higher incarnation', () => {
    expect(applyClaim(record('suspect', 3), alive(3)).effect).toBe('ignore')
    expect(applyClaim(record('suspect', 3), alive(2)).effect).toBe('ignore')
    const outcome = applyClaim(record('suspect', 3), alive(4, { ready: true }))
    expect(outcome).toMatchObject({
      effect: 'update',
      previous: 'suspect',
      record: { state: 'alive', incarnation: 4 },
    })
  })

  it('treats a member coming back from dead or left as a join', () => {
    expect(applyClaim(record('dead', 3), alive(4)).effect).toBe('join')
    expect(applyClaim(record('left', 3), alive(4)).effect).toBe('join')
    expect(applyClaim(record('left', 3), alive(3)).effect).toBe('ignore')
  })

  it('suspects an alive member at the same or a newer incarnation, never an older one', () => {
    expect(applyClaim(record('alive', 2), suspect(2)).effect).toBe('suspect')
    expect(applyClaim(record('alive', 2), suspect(5))).toMatchObject({
      effect: 'suspect',
      record: { incarnation: 5 },
    })
    expect(applyClaim(record('alive', 2), suspect(1)).effect).toBe('ignore')
  })

  it('counts another suspicion of the same incarnation as a confirmation', () => {
    expect(applyClaim(record('suspect', 2), suspect(2, 'other'))).toEqual({
      effect: 'confirm',
      from: 'other',
    })
  })

  it('declares dead from alive or suspect, and dead or left members stay so', () => {
    expect(applyClaim(record('alive', 2), dead(2)).effect).toBe('dead')
    expect(applyClaim(record('suspect', 2), dead(2)).effect).toBe('dead')
    expect(applyClaim(record('alive', 3), dead(2)).effect).toBe('ignore')
    expect(applyClaim(record('dead', 2), suspect(2)).effect).toBe('ignore')
    expect(applyClaim(record('left', 2), dead(2)).effect).toBe('ignore')
  })

  it('makes left final for its incarnation and lets it win over dead', () => {
    expect(applyClaim(record('dead', 2), left(2)).effect).toBe('leave')
    expect(applyClaim(record('left', 2), left(2)).effect).toBe('ignore')
    expect(applyClaim(record('alive', 3), left(2)).effect).toBe('ignore')
  })
})

describe('patches', () => {
  it('apply on the incarnation they patch: changed keys set, dropped keys gone, the member alive again', () => {
    const current = { ...record('suspect', 2), meta: { ready: true, roles: ['web'] } }
    const outcome = applyClaim(current, patch(3, 2, { ready: false }, ['roles']))
    expect(outcome).toMatchObject({ effect: 'update', previous: 'suspect' })
    expect(outcome.effect === 'update' && outcome.record).toMatchObject({
      incarnation: 3,
      state: 'alive',
      meta: { ready: false },
    })
    expect(outcome.effect === 'update' && Object.keys(outcome.record.meta)).toEqual(['ready'])
  })

  it('want the whole record when the patched incarnation is not held, the member is unknown, dead or gone', () => {
    expect(applyClaim(record('alive', 1), patch(3, 2)).effect).toBe('stale')
    expect(applyClaim(undefined, patch(3, 2)).effect).toBe('stale')
    expect(applyClaim(record('dead', 2), patch(3, 2)).effect).toBe('stale')
    expect(applyClaim(record('left', 2), patch(3, 2)).effect).toBe('stale')
  })

  it('are ignored when not newer', () => {
    expect(applyClaim(record('alive', 3), patch(3, 2)).effect).toBe('ignore')
    expect(applyClaim(record('alive', 4), patch(3, 2)).effect).toBe('ignore')
  })

  it('of ourselves, coming back, are no accusation; a newer one is', () => {
    expect(refutation(3, patch(3, 2))).toBeNull()
    expect(refutation(3, patch(5, 4))).toBe(6)
  })
})

describe('refutation', () => {
  it('answers accusations at or above our incarnation by going one above them', () => {
    expect(refutation(3, suspect(3))).toBe(4)
    expect(refutation(3, dead(5))).toBe(6)
    expect(refutation(3, left(3))).toBe(4)
  })

  it('ignores stale accusations and our own current alive claim', () => {
    expect(refutation(3, suspect(2))).toBeNull()
    expect(refutation(3, alive(3))).toBeNull()
  })

  it('goes above a newer alive claim of ourselves (one from a previous life)', () => {
    expect(refutation(3, alive(7))).toBe(8)
  })
})
