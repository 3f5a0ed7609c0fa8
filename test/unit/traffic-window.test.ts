import { describe, expect, it } from 'vitest'
import {
  bucketBoundMs,
  figuresOf,
  LATENCY_BUCKETS,
  latencyBucket,
  mergeSeconds,
  TrafficRecorder,
} from '../../src/shared/index.js'

describe('traffic window', () => {
  it('puts each latency in a bucket whose bounds hold it, 12 % wide', () => {
    for (const ms of [0.1, 0.3, 1, 7.5, 20, 49, 150, 999, 12_000]) {
      const i = latencyBucket(ms)
      expect(bucketBoundMs(i)).toBeGreaterThanOrEqual(ms)
      if (i > 0) expect(bucketBoundMs(i - 1)).toBeLessThan(ms)
    }
    expect(latencyBucket(1e9)).toBe(LATENCY_BUCKETS - 1)
    expect(latencyBucket(Number.NaN)).toBe(0)
  })

  it('counts requests, errors and percentiles per version and second', () => {
    let now = 1_000_000
    const rec = new TrafficRecorder(60, () => now)
    for (let i = 0; i < 100; i++) rec.record('1.0', false, 10)
    rec.record('1.1', true, 200)
    now += 1000
    for (let i = 0; i < 99; i++) rec.record('1.1', false, 10)
    const all = rec.seconds(0, 2_000_000)
    expect(all['1.0']).toHaveLength(1)
    expect(all['1.1']!.map((s) => s.at)).toEqual([1000, 1001])
    const f = figuresOf(all['1.1']!)
    expect(f).toMatchObject({ requests: 100, errors: 1, errorRate: 0.01 })
    expect(f.p50Ms).toBeGreaterThan(9)
    expect(f.p50Ms).toBeLessThan(11)
    expect(f.p99Ms).toBeLessThan(11) // the 100th request is the one at 200 ms
    expect(figuresOf([]).p99Ms).toBeNull()
  })

  it('forgets seconds older than its history and reuses their slots', () => {
    let now = 10_000_000
    const rec = new TrafficRecorder(10, () => now)
    rec.record('1.0', false, 5)
    now += 10_000
    rec.record('1.0', false, 5)
    const seconds = rec.seconds(0, 1e9)['1.0']!
    expect(seconds.map((s) => s.at)).toEqual([10_010])
    now += 30_000
    expect(rec.seconds(0, 1e9)).toEqual({})
  })

  it('sums several load balancers second by second', () => {
    const a = [{ at: 5, requests: 2, errors: 1, latency: [[3, 2]] as Array<[number, number]> }]
    const b = [
      { at: 5, requests: 1, errors: 0, latency: [[4, 1]] as Array<[number, number]> },
      { at: 6, requests: 1, errors: 0, latency: [[3, 1]] as Array<[number, number]> },
    ]
    expect(mergeSeconds([a, b])).toEqual([
      {
        at: 5,
        requests: 3,
        errors: 1,
        latency: [
          [3, 2],
          [4, 1],
        ],
      },
      { at: 6, requests: 1, errors: 0, latency: [[3, 1]] },
    ])
  })
})
