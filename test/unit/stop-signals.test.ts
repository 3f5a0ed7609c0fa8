import { describe, expect, it } from 'vitest'
import { classifyStopSignal, REPEAT_WINDOW_MS } from '../../src/cli/stop-signals.js'

describe('what a stop signal means', () => {
  it('the first starts the graceful stop; repeats within the window are the same request; a later one forces', () => {
    expect(classifyStopSignal(null, 1000)).toBe('stop')
    expect(classifyStopSignal(1000, 1000)).toBe('repeat')
    expect(classifyStopSignal(1000, 1000 + REPEAT_WINDOW_MS - 1)).toBe('repeat')
    expect(classifyStopSignal(1000, 1000 + REPEAT_WINDOW_MS)).toBe('force')
  })
})
