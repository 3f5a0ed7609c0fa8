import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { suspicionBounds } from '../../src/membership/config.js'
import { Suspicion } from '../../src/membership/suspicion.js'
import { presetTimers } from '../../src/shared/presets.js'

const LAN_TIMERS = presetTimers('lan').membership

describe('Suspicion', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('fires at the maximum timeout when nobody confirms', () => {
    const fired = vi.fn()
    new Suspicion('a', { expected: 3, required: 1, min: 1_000, max: 6_000 }, fired)
    vi.advanceTimersByTime(5_999)
    expect(fired).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    expect(fired).toHaveBeenCalledOnce()
  })

  it('shrinks towards the minimum as independent confirmations arrive', () => {
    const fired = vi.fn()
    const suspicion = new Suspicion('a', { expected: 3, required: 1, min: 1_000, max: 6_000 }, fired)
    expect(suspicion.confirm('b')).toBe(true)
    // c = 1 of k = 3: 6000 - 5000 * log(2)/log(4) = 3500
    expect(suspicion.timeout()).toBe(3_500)
    expect(suspicion.confirm('b')).toBe(false)
    suspicion.confirm('c')
    suspicion.confirm('d')
    expect(suspicion.timeout()).toBe(1_000)
    vi.advanceTimersByTime(1_000)
    expect(fired).toHaveBeenCalledOnce()
  })

  it('fires at once when a confirmation arrives after the shortened timeout has already passed', () => {
    const fired = vi.fn()
    const suspicion = new Suspicion('a', { expected: 1, required: 1, min: 1_000, max: 6_000 }, fired)
    vi.advanceTimersByTime(2_000)
    suspicion.confirm('b')
    vi.advanceTimersByTime(0)
    expect(fired).toHaveBeenCalledOnce()
  })

  it('never fires once cancelled', () => {
    const fired = vi.fn()
    const suspicion = new Suspicion('a', { expected: 3, required: 1, min: 1_000, max: 6_000 }, fired)
    suspicion.cancel()
    vi.advanceTimersByTime(10_000)
    expect(fired).not.toHaveBeenCalled()
    expect(suspicion.confirm('b')).toBe(false)
  })

  it('waits past its timeout for the accusers agreement needs, then fires on the last of them', () => {
    const fired = vi.fn()
    const suspicion = new Suspicion('a', { expected: 7, required: 3, min: 1_000, max: 6_000 }, fired)
    suspicion.confirm('b')
    vi.advanceTimersByTime(60_000)
    expect(fired).not.toHaveBeenCalled()
    expect(suspicion.waitingForAgreement).toBe(true)
    expect(suspicion.confirm('b')).toBe(false)
    expect(suspicion.confirm('c')).toBe(true)
    expect(fired).toHaveBeenCalledOnce()
    expect(suspicion.waitingForAgreement).toBe(false)
    expect(suspicion.confirm('d')).toBe(false)
  })

  it('with agreement reached early, still runs its (shortened) timer', () => {
    const fired = vi.fn()
    const suspicion = new Suspicion('a', { expected: 3, required: 2, min: 1_000, max: 6_000 }, fired)
    suspicion.confirm('b')
    vi.advanceTimersByTime(3_499)
    expect(fired).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    expect(fired).toHaveBeenCalledOnce()
  })

  it('uses the minimum when no confirmation can be expected', () => {
    const fired = vi.fn()
    new Suspicion('a', { expected: 0, required: 1, min: 1_000, max: 6_000 }, fired)
    vi.advanceTimersByTime(1_000)
    expect(fired).toHaveBeenCalledOnce()
  })
})

describe('suspicionBounds', () => {
  it('scales with log10 of the cluster size, never below one interval multiple', () => {
    expect(suspicionBounds(LAN_TIMERS, 3).min).toBe(1_000)
    expect(suspicionBounds(LAN_TIMERS, 10).min).toBe(1_000)
    expect(suspicionBounds(LAN_TIMERS, 100).min).toBe(2_000)
    expect(suspicionBounds(LAN_TIMERS, 100).max).toBe(6_000)
  })
})
