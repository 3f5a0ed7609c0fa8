import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  bucketCount,
  bucketHashes,
  differingBuckets,
  entriesIn,
  MAX_BUCKETS,
  pages,
  reconcile,
} from '../../src/membership/delta-sync.js'
import type { MemberRecord } from '../../src/membership/index.js'

const STATES = ['alive', 'suspect', 'dead', 'left'] as const
const RANK = { alive: 0, suspect: 1, dead: 2, left: 3 }
const record = (id: string, incarnation: number, state: MemberRecord['state']): MemberRecord => ({
  id,
  incarnation,
  state,
  addrs: [`/ip4/127.0.0.1/tcp/${4000 + incarnation}`],
  meta: { ready: true },
})
const newer = (a: MemberRecord, b: MemberRecord) =>
  a.incarnation - b.incarnation || RANK[a.state] - RANK[b.state]

/** Two views over ids m0..m(n-1): each member in neither, one or both, at random incarnations and states. */
const views = fc
  .array(
    fc.record({
      a: fc.option(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom(...STATES))),
      b: fc.option(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom(...STATES))),
    }),
    { maxLength: 300 },
  )
  .map((members) => {
    const a = new Map<string, MemberRecord>()
    const b = new Map<string, MemberRecord>()
    members.forEach((m, i) => {
      const id = `12D3KooWm${i}`
      if (m.a != null) a.set(id, record(id, m.a[0], m.a[1]))
      if (m.b != null) b.set(id, record(id, m.b[0], m.b[1]))
    })
    return { a, b }
  })

describe('delta sync', () => {
  it('leaves both sides with the newer record of every member either held, sending only what differs', () => {
    fc.assert(
      fc.property(views, ({ a, b }) => {
        // a opens: b offers its bucket hashes, a sends its entries of the buckets that differ.
        const count = bucketCount(b.size)
        const differ = differingBuckets(bucketHashes(a.values(), count), bucketHashes(b.values(), count))
        const { send, want } = reconcile(b, entriesIn(a.values(), differ, count), differ, count)
        const afterA = new Map(a)
        for (const r of send) afterA.set(r.id, r)
        const afterB = new Map(b)
        for (const id of want) afterB.set(id, a.get(id)!)
        const expected = new Map(a)
        for (const r of b.values()) {
          const mine = expected.get(r.id)
          if (mine == null || newer(r, mine) > 0) expected.set(r.id, r)
        }
        expect(Object.fromEntries(afterA)).toEqual(Object.fromEntries(expected))
        expect(Object.fromEntries(afterB)).toEqual(Object.fromEntries(expected))
        // Nothing that was already equal travels.
        for (const r of send) expect(a.get(r.id) == null || newer(r, a.get(r.id)!) > 0).toBe(true)
        for (const id of want) expect(b.get(id) == null || newer(a.get(id)!, b.get(id)!) > 0).toBe(true)
      }),
      { numRuns: 200 },
    )
  })

  it('at 10,000 members, one member changed costs one bucket of entries', () => {
    const a = new Map<string, MemberRecord>()
    for (let i = 0; i < 10_000; i++) a.set(`12D3KooWm${i}`, record(`12D3KooWm${i}`, 1, 'alive'))
    const b = new Map(a)
    b.set('12D3KooWm77', record('12D3KooWm77', 2, 'alive'))
    const count = bucketCount(b.size)
    expect(count).toBe(MAX_BUCKETS)
    const hashes = bucketHashes(b.values(), count)
    const differ = differingBuckets(bucketHashes(a.values(), count), hashes)
    expect(differ).toHaveLength(1)
    const entries = entriesIn(a.values(), differ, count)
    expect(entries.length).toBeLessThan(100)
    expect(JSON.stringify(hashes).length + JSON.stringify(entries).length).toBeLessThan(10_000)
    expect(reconcile(b, entries, differ, count)).toEqual({ send: [b.get('12D3KooWm77')], want: [] })
  })

  it('cuts records into pages under the byte limit, an oversized record alone', () => {
    const records = Array.from({ length: 50 }, (_, i) => record(`12D3KooWm${i}`, 1, 'alive'))
    const size = JSON.stringify(records[0]).length + 1
    const cut = pages(records, size * 8)
    expect(cut.flat()).toEqual(records)
    expect(cut.every((page) => page.length <= 8)).toBe(true)
    expect(pages(records.slice(0, 2), 10)).toHaveLength(2)
    expect(pages([], 10)).toEqual([[]])
  })
})
