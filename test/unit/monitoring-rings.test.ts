import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MONITORING_RINGS, ringNeighbours } from '../../src/membership/monitoring-rings.js'

const ids = (n: number, prefix = '12D3KooW') =>
  Array.from({ length: n }, (_, i) => `${prefix}${i.toString(36).padStart(6, 'x')}`)

describe('monitoring rings', () => {
  it('bounds subjects and observers by the number of rings, and A watches B exactly when B is watched by A', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 120 }),
        fc.string({ minLength: 1, maxLength: 8 }),
        (n, prefix) => {
          const live = ids(n, prefix)
          const all = new Map(live.map((id) => [id, ringNeighbours(live, id)]))
          for (const [id, { subjects, observers }] of all) {
            expect(subjects.length).toBeLessThanOrEqual(MONITORING_RINGS)
            expect(observers.length).toBeLessThanOrEqual(MONITORING_RINGS)
            expect(subjects).not.toContain(id)
            for (const subject of subjects) expect(all.get(subject)!.observers).toContain(id)
            for (const observer of observers) expect(all.get(observer)!.subjects).toContain(id)
            // Alone, a member watches nobody; with company, everybody is watched.
            expect(subjects.length > 0).toBe(n > 1)
            expect(observers.length > 0).toBe(n > 1)
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  it('two members watch each other; a member outside the live set still finds its place', () => {
    expect(ringNeighbours(['a', 'b'], 'a')).toEqual({ subjects: ['b'], observers: ['b'] })
    const live = ids(50)
    const outsider = ringNeighbours(live, 'newcomer')
    expect(outsider.subjects.length).toBeGreaterThan(0)
    expect(outsider.subjects.every((id) => live.includes(id))).toBe(true)
  })

  it('spreads the watching evenly at 2,000 members: nobody observed by fewer than 4, the degree stays near the ring count', () => {
    const live = ids(2_000)
    const observedBy = new Map<string, number>()
    let subjects = 0
    for (const id of live) {
      const mine = ringNeighbours(live, id)
      subjects += mine.subjects.length
      for (const s of mine.subjects) observedBy.set(s, (observedBy.get(s) ?? 0) + 1)
    }
    expect(subjects / live.length).toBeGreaterThan(MONITORING_RINGS - 0.5)
    expect(Math.min(...live.map((id) => observedBy.get(id) ?? 0))).toBeGreaterThanOrEqual(4)
  })

  it('moves only the neighbours of a member that leaves the live set', () => {
    const live = ids(300)
    const before = new Map(live.map((id) => [id, ringNeighbours(live, id).subjects]))
    const gone = live[17]!
    const after = live.filter((id) => id !== gone)
    let changed = 0
    for (const id of after)
      if (before.get(id)!.join() !== ringNeighbours(after, id).subjects.join()) changed++
    // Only its observers had it as a subject.
    expect(changed).toBeLessThanOrEqual(MONITORING_RINGS)
    expect(changed).toBeGreaterThan(0)
  })
})
