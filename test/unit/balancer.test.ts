import { describe, expect, it } from 'vitest'
import type { Slot } from '../../src/loadbalancer/balancer.js'
import type { Backend } from '../../src/loadbalancer/index.js'
import { Balancer } from '../../src/loadbalancer/index.js'

const slot = (key: string, weight = 100, state: Backend['state'] = 'ready'): Slot => ({
  backend: { key, node: key, component: 'web', version: '1', endpoint: '', host: '', port: 1, state, weight },
  inflight: 0,
  ejectedUntil: 0,
  current: 0,
})

const pickMany = (balancer: Balancer, slots: Slot[], n: number) => {
  const counts: Record<string, number> = {}
  const order: string[] = []
  for (let i = 0; i < n; i++) {
    const key = balancer.pick(slots, new Set())!.backend.key
    counts[key] = (counts[key] ?? 0) + 1
    order.push(key)
  }
  return { counts, order }
}

describe('the balancer', () => {
  it('spreads by weight, evenly interleaved (smooth weighted round-robin)', () => {
    const slots = [slot('a', 200), slot('b', 100), slot('c', 100)]
    const { counts, order } = pickMany(new Balancer('round-robin'), slots, 400)
    expect(counts).toEqual({ a: 200, b: 100, c: 100 })
    // Never the heavy backend three times in a row: no bursts.
    expect(order.join('')).not.toContain('aaa')
  })

  it('leaves out draining, ejected, zero-weight and excluded backends, and answers null when none is left', () => {
    const now = 1_000
    const ejected = { ...slot('e'), ejectedUntil: now + 1 }
    const slots = [slot('d', 100, 'draining'), ejected, slot('z', 0), slot('ok')]
    const balancer = new Balancer('round-robin')
    expect(balancer.pick(slots, new Set(), now)!.backend.key).toBe('ok')
    expect(balancer.pick(slots, new Set(['ok']), now)).toBeNull()
    // Ejection ends by itself.
    expect(balancer.pick([ejected], new Set(), now + 2)!.backend.key).toBe('e')
  })

  it('least-outstanding prefers the backend with the fewest requests in flight per weight', () => {
    const slots = [slot('a'), slot('b'), slot('c', 200)]
    slots[0]!.inflight = 3
    slots[1]!.inflight = 1
    slots[2]!.inflight = 3
    const balancer = new Balancer('least-outstanding')
    expect(balancer.pick(slots, new Set())!.backend.key).toBe('b')
    slots[1]!.inflight = 2
    expect(balancer.pick(slots, new Set())!.backend.key).toBe('c')
  })
})
