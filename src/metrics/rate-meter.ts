/**
 * The recent rate of a growing total (bytes moved so far): the total is sampled
 * at intervals, and the rate is the growth across the samples of the last window.
 */
export class RateMeter {
  private readonly samples: Array<{ at: number; total: number }> = []

  constructor(private readonly windowMs: number) {}

  sample(total: number, at = Date.now()): void {
    this.samples.push({ at, total })
    // Keep one sample at or before the window's start, so the window is covered whole.
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift()
  }

  /** Units per second over the window; 0 until two samples exist. */
  perSecond(): number {
    const first = this.samples[0]
    const last = this.samples[this.samples.length - 1]
    if (first == null || last == null || last.at <= first.at) return 0
    return Math.max(0, (last.total - first.total) / ((last.at - first.at) / 1000))
  }
}
