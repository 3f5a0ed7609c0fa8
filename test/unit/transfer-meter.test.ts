import { describe, expect, it } from 'vitest'
import { TransferMeter } from '../../src/artifacts/transfer-meter.js'

describe('TransferMeter', () => {
  it('measures the rate, the sources and the ETA over its window, then forgets old samples', () => {
    let now = 10_000
    const meter = new TransferMeter(() => now)
    for (let i = 0; i < 10; i++) {
      meter.record('educa@1.0', i % 2 === 0 ? 'a' : 'b', 1_000_000)
      now += 500
    }
    const view = meter.view('educa@1.0', { bytesDone: 10_000_000, bytesTotal: 30_000_000 }, null)
    expect(view.sources).toBe(2)
    expect(view.rate).toBe(2_000_000)
    expect(view.eta).toBe(10)
    now += 6_000
    const idle = meter.view('educa@1.0', { bytesDone: 10_000_000, bytesTotal: 30_000_000 }, null)
    expect(idle).toMatchObject({ rate: 0, sources: 0, eta: null })
  })

  it('gives no ETA while paused', () => {
    const meter = new TransferMeter()
    meter.record('x@1', 'a', 5)
    const paused = { code: 'ERR_DISK_FULL', message: 'full' }
    expect(meter.view('x@1', { bytesDone: 5, bytesTotal: 10 }, paused).eta).toBeNull()
  })
})
