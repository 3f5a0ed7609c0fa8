import { describe, expect, it } from 'vitest'
import type { MemberRecord } from '../../src/membership/index.js'
import { FULL_EVERY, SelfAnnouncement } from '../../src/membership/self-announcement.js'

const components = Array.from({ length: 6 }, (_, i) => ({
  name: `c${i}`,
  state: 'ready',
  endpoint: `http://127.0.0.1:${9000 + i}`,
}))
const self = (
  incarnation: number,
  meta: Record<string, unknown>,
  state: MemberRecord['state'] = 'alive',
): MemberRecord => ({
  id: '12D3KooWself',
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  incarnation,
  state,
  meta,
})
const base = { components, distribution: 'educa@1.0', ready: true, roles: [] }

describe('what a member publishes about itself', () => {
  it('starts with its whole record, then patches only the keys that changed', () => {
    const a = new SelfAnnouncement()
    expect(a.next(self(1, base))).toMatchObject({ kind: 'alive', incarnation: 1, meta: base })
    const next = { ...base, ready: false }
    delete (next as Record<string, unknown>).roles
    expect(a.next(self(2, next))).toEqual({
      kind: 'patch',
      id: '12D3KooWself',
      incarnation: 2,
      base: 1,
      set: { ready: false },
      drop: ['roles'],
    })
    // The next patch is against what went out last (incarnation 2), skipping unpublished ones.
    expect(a.next(self(5, { ...next, ready: true }))).toMatchObject({
      kind: 'patch',
      base: 2,
      set: { ready: true },
    })
  })

  it('sends the whole record when asked (a refutation), when addresses change, and every FULL_EVERY', () => {
    const a = new SelfAnnouncement()
    a.next(self(1, base))
    expect(a.next(self(2, { ...base, ready: false }), true).kind).toBe('alive')
    const moved = { ...self(3, base), addrs: ['/ip4/10.0.0.2/tcp/4001'] }
    expect(a.next(moved).kind).toBe('alive')
    const kinds = Array.from(
      { length: FULL_EVERY * 2 },
      (_, i) => a.next({ ...self(4 + i, { ...base, ready: i % 2 === 0 }), addrs: moved.addrs }).kind,
    )
    expect(kinds.filter((k) => k === 'alive')).toHaveLength(2)
    expect(kinds.slice(0, FULL_EVERY - 1).every((k) => k === 'patch')).toBe(true)
  })

  it('sends the whole record when most of it changed', () => {
    const a = new SelfAnnouncement()
    a.next(self(1, { distribution: 'x@1' }))
    expect(a.next(self(2, { distribution: 'x@2' })).kind).toBe('alive')
  })
})
