import { afterEach, describe, expect, it } from 'vitest'
import { SimCluster } from '../../bench/scale/cluster.js'
import { Membership, suspicionBounds } from '../../src/membership/index.js'
import { presetTimers } from '../../src/shared/presets.js'

/**
 * The scale simulation (bench/scale/, docs/scale.md) runs the real Membership on
 * a simulated network under a virtual clock: these check that it does, and that
 * what it reports is what the protocol promises.
 */
describe('membership simulation (real code, simulated network and clock)', () => {
  let cluster: SimCluster | undefined
  const realSetTimeout = globalThis.setTimeout
  afterEach(async () => {
    await cluster?.close()
    cluster = undefined
  })

  it('20 simulated members converge, and a crashed one is declared dead by all the others', async () => {
    const n = 20
    const c = new SimCluster({ seed: 7 })
    cluster = c
    c.install()
    const first = await c.add()
    for (let i = 1; i < n; i++) await c.add([first.addr])
    expect(first.membership).toBeInstanceOf(Membership)

    const converged = await c.until(() => c.members.every((m) => m.alive === n), { capMs: 10_000 })
    expect(converged).not.toBeNull()
    for (const m of c.members)
      expect(m.membership.members().filter((x) => x.state === 'alive')).toHaveLength(n)

    const victim = c.members[n - 1]!
    const rest = c.members.filter((m) => m !== victim)
    await c.crash(victim)
    const dead = await c.until(() => rest.every((m) => m.stateOf(victim.id) === 'dead'), { capMs: 30_000 })
    // Suspected, then dead once the suspicion ran out: not before the minimum timeout.
    const { min, max } = suspicionBounds(presetTimers('lan').membership, n)
    expect(dead).not.toBeNull()
    expect(dead!).toBeGreaterThanOrEqual(min)
    expect(dead!).toBeLessThan(max + 5_000)
    for (const m of rest) expect(m.membership.get(victim.id)?.state).toBe('dead')
    // Nobody else was ever accused, and the wire carried probes.
    expect(c.accusations.filter((a) => a.target !== victim.id)).toEqual([])
    expect(first.node.meter.total('sent')).toBeGreaterThan(0)
  })

  it('puts the real timers back when it closes', async () => {
    const c = new SimCluster({ seed: 1 })
    cluster = c
    c.install()
    expect(globalThis.setTimeout).not.toBe(realSetTimeout)
    await c.add()
    await c.run(5_000)
    expect(c.now).toBe(5_000)
    await c.close()
    cluster = undefined
    expect(globalThis.setTimeout).toBe(realSetTimeout)
  })
})
