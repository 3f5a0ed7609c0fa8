/**
 * One suspicion of one member (Lifeguard): the timer starts at `max` and shrinks
 * towards `min` as independent members confirm it, following
 * timeout(c) = max(min, max - (max - min) x log(c + 1) / log(k + 1)),
 * with c confirmations seen and k expected. When it fires the member is declared dead.
 */
export class Suspicion {
  private readonly confirmations = new Set<string>()
  private readonly startedAt: number
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    from: string,
    private readonly expected: number,
    private readonly min: number,
    private readonly max: number,
    private readonly onTimeout: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.confirmations.add(from)
    this.startedAt = now()
    this.schedule()
  }

  /** Records a confirmation; true when `from` had not confirmed before. */
  confirm(from: string): boolean {
    if (this.timer == null || this.confirmations.has(from)) return false
    this.confirmations.add(from)
    this.schedule()
    return true
  }

  /** The current timeout in ms, measured from the start of the suspicion. */
  timeout(): number {
    const c = this.confirmations.size - 1
    if (this.expected < 1) return this.min
    const fraction = Math.log(c + 1) / Math.log(this.expected + 1)
    return Math.max(this.min, Math.floor(this.max - (this.max - this.min) * fraction))
  }

  cancel(): void {
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule(): void {
    if (this.timer != null) clearTimeout(this.timer)
    const remaining = Math.max(0, this.timeout() - (this.now() - this.startedAt))
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.onTimeout()
    }, remaining)
    this.timer.unref?.()
  }
}
