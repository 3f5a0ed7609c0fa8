import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { MembershipEvents } from '../../src/membership/events.js'
import type { Claim, MemberRecord } from '../../src/membership/member.js'
import { MemberTable } from '../../src/membership/member-table.js'
import { MetadataContract } from '../../src/membership/metadata-contract.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { TypedEvents } from '../../src/shared/typed-events.js'

const SELF = 'self-id'
const timers = {
  ...presetTimers('test').membership,
  probeInterval: 100,
  suspicionMult: 2,
  suspicionMaxTimeoutMult: 3,
  stallTolerance: 400,
  reapTimeout: 5_000,
}
const selfRecord: MemberRecord = { id: SELF, addrs: [], incarnation: 4, state: 'alive', meta: {} }
const alive = (id: string, incarnation = 1, meta = {}): Claim => ({
  kind: 'alive',
  id,
  incarnation,
  addrs: [],
  meta,
})

/** `observers`: who watches any member, as the membership's rings would say. */
function makeTable(observers: string[] = ['c', SELF]) {
  const events = new TypedEvents<MembershipEvents>(silentLogger)
  const seen: string[] = []
  for (const name of [
    'member:join',
    'member:update',
    'member:suspect',
    'member:dead',
    'member:leave',
    'member:reap',
  ] as const) {
    events.on(name, (member) => seen.push(`${name} ${member.id}`))
  }
  const hooks = {
    declaredDead: vi.fn(),
    refute: vi.fn(),
    observersOf: vi.fn(() => observers),
    stale: vi.fn(),
  }
  const table = new MemberTable(selfRecord, timers, events, hooks, silentLogger, MetadataContract.of())
  return { table, seen, hooks }
}

describe('MemberTable', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('emits join, update and leave as claims change a member', () => {
    const { table, seen } = makeTable()
    expect(table.apply(alive('b'))).toBe(true)
    expect(table.apply(alive('b'))).toBe(false)
    expect(table.apply(alive('b', 2, { ready: false }))).toBe(true)
    expect(table.apply({ kind: 'left', id: 'b', incarnation: 2 })).toBe(true)
    expect(seen).toEqual(['member:join b', 'member:update b', 'member:leave b'])
    expect(table.get('b')).toMatchObject({ state: 'left', meta: { ready: false } })
  })

  it('turns an unrefuted suspicion into dead after the stall tolerance, and tells the cluster', () => {
    const { table, seen, hooks } = makeTable(['c'])
    table.apply(alive('b'))
    table.apply(alive('c'))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c' })
    expect(table.get('b')?.state).toBe('suspect')
    // n = 3 live members: min = 2 x 1 x 100 = 200 ms, but no one found b's port closed:
    // b may only be stalled, and gets the stall tolerance (400 ms) to refute.
    vi.advanceTimersByTime(399)
    expect(table.get('b')?.state).toBe('suspect')
    vi.advanceTimersByTime(1)
    expect(table.get('b')?.state).toBe('dead')
    expect(seen).toContain('member:dead b')
    expect(hooks.declaredDead).toHaveBeenCalledWith({ kind: 'dead', id: 'b', incarnation: 1, from: SELF })
  })

  it('keeps a member suspect past the timeout until enough of its observers agree', () => {
    const { table, hooks } = makeTable(['c', 'd', 'e', SELF])
    for (const id of ['b', 'c', 'd', 'e', 'f']) table.apply(alive(id))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c' })
    // max = 3 x min (2 x log10(5) x 100 ms): long past it, one accuser is not a verdict.
    vi.advanceTimersByTime(60_000)
    expect(table.get('b')?.state).toBe('suspect')
    expect(table.suspicionsWaiting()).toBe(1)
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'd' })).toBe(true)
    // f does not watch b (it passed the suspicion on, or its view has the rings wrong): no witness.
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'f' })).toBe(true)
    expect(table.get('b')?.state).toBe('suspect')
    // The third distinct accuser (AGREEMENT) ends it at once.
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: SELF })).toBe(true)
    expect(table.get('b')?.state).toBe('dead')
    expect(hooks.declaredDead).toHaveBeenCalledOnce()
    expect(table.suspicionsWaiting()).toBe(0)
  })

  it('needs fewer accusers once a witness dies: the ones still alive are enough', () => {
    const { table } = makeTable(['c', 'd', 'e'])
    for (const id of ['b', 'c', 'd', 'e']) table.apply(alive(id))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c' })
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'd' })
    vi.advanceTimersByTime(60_000)
    expect(table.get('b')?.state).toBe('suspect')
    // e crashed too: its own observers declare it dead, and c and d are then all of b's witnesses.
    table.apply({ kind: 'dead', id: 'e', incarnation: 1, from: 'c' })
    expect(table.get('b')?.state).toBe('dead')
  })

  it('declares dead sooner when another member confirms the suspicion', () => {
    const { table } = makeTable()
    table.apply(alive('b'))
    table.apply(alive('c'))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c' })
    // One accuser of two expected: max = 3 x 200 = 600 ms; both: down to the stall tolerance.
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: SELF })).toBe(true)
    vi.advanceTimersByTime(399)
    expect(table.get('b')?.state).toBe('suspect')
    vi.advanceTimersByTime(1)
    expect(table.get('b')?.state).toBe('dead')
  })

  it('declares a member dead after the minimum once its observers agree its port is closed', () => {
    const { table } = makeTable(['c', 'd', SELF])
    for (const id of ['b', 'c', 'd']) table.apply(alive(id))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c', refused: true })
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'd', refused: true })
    // Two of three witnesses saw it refused: the stall tolerance still holds.
    vi.advanceTimersByTime(200)
    expect(table.get('b')?.state).toBe('suspect')
    // This node had only timed out; its later probe found the port closed too: a confirmation that counts.
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: SELF })).toBe(true)
    expect(table.get('b')?.state).toBe('suspect')
    expect(table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: SELF, refused: true })).toBe(true)
    // All three agree and the minimum (2 x log10(4) x 100 = 120 ms) has passed: dead on the next tick.
    vi.advanceTimersByTime(0)
    expect(table.get('b')?.state).toBe('dead')
  })

  it('cancels the suspicion when the member refutes it with a higher incarnation', () => {
    const { table, seen } = makeTable()
    table.apply(alive('b'))
    table.apply({ kind: 'suspect', id: 'b', incarnation: 1, from: 'c' })
    table.apply(alive('b', 2))
    vi.advanceTimersByTime(10_000)
    expect(table.get('b')?.state).toBe('alive')
    expect(seen).toEqual(['member:join b', 'member:suspect b', 'member:update b'])
  })

  it('asks this node to refute accusations about itself instead of applying them', () => {
    const { table, hooks } = makeTable()
    expect(table.apply({ kind: 'suspect', id: SELF, incarnation: 4, from: 'b' })).toBe(false)
    expect(hooks.refute).toHaveBeenCalledWith(5)
    table.apply({ kind: 'dead', id: SELF, incarnation: 3, from: 'b' })
    expect(hooks.refute).toHaveBeenCalledTimes(1)
    expect(table.get(SELF)?.state).toBe('alive')
  })

  it('forgets dead and left members after the reap timeout', () => {
    const { table, seen } = makeTable()
    table.apply(alive('b'))
    table.apply({ kind: 'dead', id: 'b', incarnation: 1, from: 'c' })
    vi.advanceTimersByTime(4_999)
    expect(table.get('b')).toBeDefined()
    vi.advanceTimersByTime(1)
    expect(table.get('b')).toBeUndefined()
    expect(seen.at(-1)).toBe('member:reap b')
  })

  it('has equal digests for equal views and different ones otherwise', () => {
    const one = makeTable().table
    const two = makeTable().table
    one.apply(alive('b'))
    two.apply(alive('b'))
    expect(one.digest()).toBe(two.digest())
    two.apply(alive('b', 2))
    expect(one.digest()).not.toBe(two.digest())
  })
})
