import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A token bucket in bytes per second (burst: one second's worth). `take` waits
 * until the bytes may pass; a limit of 0 means unlimited.
 */
export class RateLimiter {
  private tokens: number
  private last = Date.now()
  private queue: Promise<void> = Promise.resolve()

  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond <= 0) return Promise.resolve()
    // Callers are served in order so a large request cannot starve behind small ones.
    const turn = this.queue.then(async () => {
      this.refill()
      this.tokens -= bytes
      if (this.tokens < 0) await sleep((-this.tokens / this.bytesPerSecond) * 1000, undefined, { signal })
    })
    this.queue = turn.catch(() => {})
    return turn
  }

  private refill(): void {
    const now = Date.now()
    this.tokens = Math.min(
      this.bytesPerSecond,
      this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
    )
    this.last = now
  }
}
