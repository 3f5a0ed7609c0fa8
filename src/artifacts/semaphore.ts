/** A counting semaphore: `tryAcquire` never waits, `acquire` waits for a free slot. */
export class Semaphore {
  private waiters: Array<() => void> = []

  constructor(private free: number) {}

  tryAcquire(): (() => void) | null {
    if (this.free <= 0) return null
    this.free--
    return this.releaser()
  }

  acquire(signal?: AbortSignal): Promise<() => void> {
    const now = this.tryAcquire()
    if (now != null) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort)
        this.free--
        resolve(this.releaser())
      }
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== wake)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(wake)
    })
  }

  private releaser(): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      this.free++
      this.waiters.shift()?.()
    }
  }
}
