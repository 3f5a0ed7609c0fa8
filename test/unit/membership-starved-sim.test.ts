import { afterEach, describe, expect, it } from 'vitest'
import { SimCluster } from '../../bench/scale/cluster.js'
import { runStarved } from '../../bench/scale/starved.js'

/**
 * Issue 19's starvation campaign (bench/scale/starved.ts), a small slice: 30 members
 * on the real membership code, 3 simulated minutes with members whose event loop
 * stalls 2 s at a time, 5 % loss on every link and one-way loss between ring
 * neighbours. Virtual time only: nothing here depends on how fast the machine is.
 */
describe('membership under CPU stalls, loss and one-way loss (simulated)', () => {
  it('declares nobody dead, and the stalled members really stalled', async () => {
    const r = await runStarved({
      n: 30,
      minutes: 3,
      seed: 11,
      starved: 2,
      stallGapMeanS: 20,
      oneWay: 2,
      blockS: [40, 70],
      clearS: [10, 30],
    })
    expect(r.notes).toEqual([])
    expect(r.converge.completeViewsAfterJoinsMs).not.toBeNull()

    // No view ever listed a live member dead.
    expect(r.falseDead.verdicts).toBe(0)
    expect(r.falseDead.listedDeadAtEnd).toBe(0)

    // The stalls happened, and held their members: each had callbacks waiting for its
    // end, none of the member's code ran meanwhile (no send, log line or view event),
    // and the membership's own measure of a late event loop saw every one.
    expect(r.stalls.members).toHaveLength(2)
    expect(r.stalls.count).toBeGreaterThanOrEqual(6)
    expect(r.stalls.withNothingDeferred).toBe(0)
    expect(r.stalls.ranWhileStalled).toBe(0)
    expect(r.stalls.healthAfterStall.min).toBeGreaterThanOrEqual(1)

    // The one-way blocks held messages back, and traffic flowed.
    expect(r.oneWay.blocks).toBeGreaterThanOrEqual(2)
    expect(r.oneWay.heldMessages).toBeGreaterThan(0)
    expect(r.traffic.sentBytesPerMemberPerSec).toBeGreaterThan(0)
  })

  describe('the virtual clock', () => {
    let cluster: SimCluster | undefined
    afterEach(async () => {
      await cluster?.close()
      cluster = undefined
    })

    it("holds a stalled member's timers and deliveries until the stall ends, then runs them late, in order", async () => {
      const c = new SimCluster({ seed: 5 })
      cluster = c
      c.install()
      const first = await c.add()
      const second = await c.add([first.addr])
      await c.until(() => first.alive === 2 && second.alive === 2, { capMs: 10_000 })
      const ran: Array<{ at: number; what: string }> = []
      c.clock.runAs(first.node, () => {
        setTimeout(() => ran.push({ at: c.now, what: 'timer 100' }), 100)
        setTimeout(() => ran.push({ at: c.now, what: 'timer 300' }), 300)
      })
      c.world.after(200, first.node, () => ran.push({ at: c.now, what: 'delivery 200' }))
      c.clock.runAs(second.node, () =>
        setTimeout(() => ran.push({ at: c.now, what: 'other member 150' }), 150),
      )
      const start = c.now
      c.clock.stall(first.node, 1_000)
      await c.run(2_000)
      expect(ran.map((r) => [r.what, Math.round(r.at - start)])).toEqual([
        ['other member 150', 150],
        ['timer 100', 1_000],
        ['delivery 200', 1_000],
        ['timer 300', 1_000],
      ])
      expect(c.clock.deferred.get(first.node)).toBeGreaterThanOrEqual(3)
    })

    it('a one-way block holds one direction of a connection and lets the other through', async () => {
      const c = new SimCluster({ seed: 5 })
      cluster = c
      c.install()
      const a = await c.add()
      const b = await c.add([a.addr])
      await c.until(() => a.alive === 2 && b.alive === 2, { capMs: 10_000 })
      c.world.blockOneWay(a.node, b.node, 10_000)
      // A write from a to b now waits for TCP's first retransmission after the block
      // (200 ms, doubling: 200 + 400 + ... + 6,400 = 12,600 ms); b to a flows.
      const held = c.world.delay(a.node, b.node)
      expect(held).toBeGreaterThanOrEqual(12_600)
      expect(held).toBeLessThan(12_610)
      expect(c.world.delay(b.node, a.node)).toBeLessThan(10)
      await c.run(13_000)
      expect(c.world.delay(a.node, b.node)).toBeLessThan(10)
    })
  })
})
