import { describe, expect, it } from 'vitest'
import { Awareness } from '../../src/membership/awareness.js'
import {
  ACCUSATION_BURST,
  ACCUSATIONS_PER_INTERVAL,
  Backpressure,
  QUIET_INTERVALS,
} from '../../src/membership/backpressure.js'
import { presetTimers } from '../../src/shared/presets.js'

const timers = presetTimers('lan').membership

function make() {
  let now = 1_000_000
  const awareness = new Awareness(timers.awarenessMax)
  const backpressure = new Backpressure(timers, awareness, () => now)
  return { backpressure, awareness, advance: (ms: number) => (now += ms), at: () => now }
}

describe('backpressure', () => {
  it('after a stall, accuses nobody for a few probe intervals and stretches its timers', () => {
    const { backpressure, awareness, advance } = make()
    backpressure.woke(timers.probeTimeout) // late, but within a probe timeout: no stall
    expect(backpressure.reliable).toBe(true)
    backpressure.woke(2_000)
    expect(backpressure.reliable).toBe(false)
    expect(awareness.health).toBe(1)
    advance(timers.probeInterval * QUIET_INTERVALS - 1)
    expect(backpressure.reliable).toBe(false)
    advance(1)
    expect(backpressure.reliable).toBe(true)
  })

  it('does not trust its verdicts while local health is poor', () => {
    const { backpressure, awareness } = make()
    awareness.apply(Math.ceil(timers.awarenessMax / 2) - 1)
    expect(backpressure.reliable).toBe(true)
    awareness.apply(1)
    expect(backpressure.reliable).toBe(false)
  })

  it('lets a burst of accusations out, then a few per probe interval', () => {
    const { backpressure, advance } = make()
    let published = 0
    for (let i = 0; i < 100; i++) if (backpressure.mayAccuse()) published++
    expect(published).toBe(ACCUSATION_BURST)
    advance(timers.probeInterval)
    published = 0
    for (let i = 0; i < 100; i++) if (backpressure.mayAccuse()) published++
    expect(published).toBe(ACCUSATIONS_PER_INTERVAL)
  })
})
