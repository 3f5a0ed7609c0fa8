/**
 * A virtual clock for the membership simulation: while installed, every timer the
 * process makes (global setTimeout/setInterval/setImmediate, `node:timers`,
 * `node:timers/promises`, AbortSignal.timeout) waits on virtual time, and Date.now
 * and performance.now read it. `runUntil(t)` fires timers in order and lets each
 * batch's promise chains settle (one real macrotask) before time moves on, so code
 * runs as if on an infinitely fast CPU: a 60 s scenario takes as long as its work.
 *
 * It replaces globals, so it belongs in a process (or test) dedicated to the
 * simulation; `uninstall()` puts everything back. A binary heap keeps each timer
 * operation O(log n) with millions pending (fake-timers scans every timer to find
 * the next one, which is too slow at 10,000 nodes).
 *
 * CPU stalls (`stall`): each timer belongs to the member whose code made it (an
 * AsyncLocalStorage store, `context`, set around a member's start and around each
 * delivery to it, so timers and promise chains made inside inherit it). A timer of
 * a stalled member that comes due waits until the stall ends, then runs, late, with
 * everything else that came due meanwhile, in the order it came due: what a Node
 * event loop blocked by a long synchronous task does. (A real loop runs that
 * backlog phase by phase, expired timers before the sockets' data or after it
 * depending on the phase the stall hit; here deliveries and timers keep one order,
 * the order they came due.) Date.now and performance.now keep moving during the
 * stall, so the member's code sees how late it woke.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { TimeHeap } from '../time-heap.js'

const require = createRequire(import.meta.url)
/** Epoch the virtual Date.now starts from (2026-01-01T00:00:00Z): any fixed value works. */
const EPOCH_MS = 1_767_225_600_000

type Callback = (...args: unknown[]) => void

/** What setTimeout returns while the clock is installed: enough of Node's Timeout for the code we run. */
export class VirtualTimer {
  cancelled = false

  constructor(
    readonly id: number,
    public at: number,
    public seq: number,
    readonly fn: Callback,
    readonly args: unknown[],
    readonly repeat: number | null,
    /** The member (its simulated node) whose code made this timer; undefined for the scenario's own. */
    readonly owner: object | undefined,
  ) {}

  ref(): this {
    return this
  }

  unref(): this {
    return this
  }

  hasRef(): boolean {
    return false
  }

  refresh(): this {
    return this
  }

  [Symbol.toPrimitive](): number {
    return this.id
  }
}

export class VirtualClock {
  /** Virtual ms since the simulation began. */
  now = 0
  /** Timer callbacks run so far (a measure of the simulation's work). */
  fired = 0
  /** Timer callbacks that threw (logged once each kind, never fatal). */
  readonly errors = new Map<string, number>()
  /** Which member's code is running: timers made now belong to it. */
  readonly context = new AsyncLocalStorage<object | undefined>()
  /** Timers that came due while their member was stalled and waited for the stall's end, per member. */
  readonly deferred = new Map<object, number>()
  /** Members stalled now or lately: the virtual ms their stall ends. */
  private readonly stalls = new Map<object, number>()
  private readonly heap = new TimeHeap<VirtualTimer>()
  private readonly byId = new Map<number, VirtualTimer>()
  private nextId = 1
  private seq = 0
  private restore: (() => void) | undefined
  private readonly realSetImmediate = globalThis.setImmediate

  get pending(): number {
    return this.heap.size
  }

  /**
   * Runs `fn` after `ms` virtual ms (>= 0; NaN counts as 0, as Node does), as code of
   * `owner` (default: the member whose code is running now; null: no member's).
   */
  schedule(
    ms: number,
    fn: Callback,
    args: unknown[] = [],
    repeat: number | null = null,
    owner: object | null = this.context.getStore() ?? null,
  ): VirtualTimer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    const timer = new VirtualTimer(
      this.nextId++,
      this.now + delay,
      this.seq++,
      fn,
      args,
      repeat,
      owner ?? undefined,
    )
    this.heap.push(timer)
    this.byId.set(timer.id, timer)
    return timer
  }

  /**
   * Stalls `owner`'s event loop for `ms` virtual ms from now (a stall already under
   * way is extended): none of its timers run, and nothing delivered to it is
   * processed, until the stall ends.
   */
  stall(owner: object, ms: number): void {
    this.stalls.set(owner, Math.max(this.stalls.get(owner) ?? 0, this.now + ms))
  }

  /** Whether `owner` is stalled now. */
  isStalled(owner: object): boolean {
    const until = this.stalls.get(owner)
    return until != null && until > this.now
  }

  /** Runs `fn` now as code of `owner` (what it schedules belongs to `owner`). */
  runAs<T>(owner: object | undefined, fn: () => T): T {
    return this.context.run(owner, fn)
  }

  cancel(timer: unknown): void {
    const found =
      timer instanceof VirtualTimer ? timer : typeof timer === 'number' ? this.byId.get(timer) : undefined
    if (found == null) return
    found.cancelled = true
    this.byId.delete(found.id)
  }

  /** A promise resolved after `ms` virtual ms, rejected with an AbortError when `signal` aborts first. */
  sleep<T>(ms: number, value?: T, signal?: AbortSignal | null): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal.reason))
        return
      }
      const onAbort = () => {
        this.cancel(timer)
        reject(abortError(signal?.reason))
      }
      const timer = this.schedule(ms, () => {
        signal?.removeEventListener('abort', onAbort)
        resolve(value as T)
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** An AbortSignal that aborts with a TimeoutError after `ms` virtual ms (AbortSignal.timeout). */
  timeoutSignal(ms: number): AbortSignal {
    const controller = new AbortController()
    this.schedule(ms, () =>
      controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    )
    return controller.signal
  }

  /**
   * Fires every timer due up to virtual time `until`, in (time, creation) order.
   * Timers due at the same instant run as one batch; then one real macrotask lets
   * every promise chain they started settle before time moves on.
   */
  async runUntil(until: number): Promise<void> {
    while (this.heap.size > 0 && this.heap.peek()!.at <= until) {
      const at = this.heap.peek()!.at
      if (at > this.now) this.now = at
      // Only timers that existed when the batch began: one made now (a 0 ms timeout)
      // runs after the promise chains of this batch, as in Node.
      const limit = this.seq
      let batch = 0
      while (
        batch < 50_000 &&
        this.heap.size > 0 &&
        this.heap.peek()!.at <= this.now &&
        this.heap.peek()!.seq < limit
      ) {
        const timer = this.heap.pop()!
        if (timer.cancelled) continue
        if (timer.owner != null && this.stalls.size > 0) {
          const until = this.stalls.get(timer.owner)
          if (until != null) {
            if (until > this.now) {
              // Its member is stalled: due again when the stall ends, after what came due before it.
              timer.at = until
              timer.seq = this.seq++
              this.heap.push(timer)
              this.deferred.set(timer.owner, (this.deferred.get(timer.owner) ?? 0) + 1)
              continue
            }
            this.stalls.delete(timer.owner)
          }
        }
        batch++
        if (timer.repeat != null) {
          timer.at = this.now + Math.max(1, timer.repeat)
          timer.seq = this.seq++
          this.heap.push(timer)
        } else {
          this.byId.delete(timer.id)
        }
        this.fired++
        try {
          this.context.run(timer.owner, timer.fn, ...timer.args)
        } catch (err) {
          const key = err instanceof Error ? err.message.slice(0, 120) : String(err)
          this.errors.set(key, (this.errors.get(key) ?? 0) + 1)
        }
      }
      await this.settle()
    }
    if (until > this.now) this.now = until
    await this.settle()
  }

  /** Drops cancelled timers from the heap (they would otherwise stay until their time). */
  compact(): void {
    this.heap.retain((timer) => !timer.cancelled)
  }

  /** Lets pending promise chains run (one real macrotask). */
  settle(): Promise<void> {
    return new Promise((resolve) => this.realSetImmediate(resolve))
  }

  /** Replaces the process's clocks and timers with this one; returns `uninstall`. */
  install(): () => void {
    if (this.restore != null) return this.restore
    const g = globalThis as Record<string, unknown>
    const saved: Array<[object, string, PropertyDescriptor | undefined]> = []
    const replace = (target: object, key: string, value: unknown) => {
      saved.push([target, key, Object.getOwnPropertyDescriptor(target, key)])
      Object.defineProperty(target, key, { value, configurable: true, writable: true, enumerable: true })
    }
    const setTimeoutV = (fn: Callback, ms?: number, ...args: unknown[]) => this.schedule(ms ?? 0, fn, args)
    const setIntervalV = (fn: Callback, ms?: number, ...args: unknown[]) =>
      this.schedule(ms ?? 0, fn, args, ms ?? 0)
    const setImmediateV = (fn: Callback, ...args: unknown[]) => this.schedule(0, fn, args)
    const clear = (timer: unknown) => this.cancel(timer)
    const timers: Record<string, unknown> = {
      setTimeout: setTimeoutV,
      setInterval: setIntervalV,
      setImmediate: setImmediateV,
      clearTimeout: clear,
      clearInterval: clear,
      clearImmediate: clear,
    }
    for (const [key, value] of Object.entries(timers)) replace(g, key, value)
    const nodeTimers = require('node:timers') as Record<string, unknown>
    for (const [key, value] of Object.entries(timers)) replace(nodeTimers, key, value)
    const promises = require('node:timers/promises') as Record<string, unknown>
    replace(promises, 'setTimeout', (ms?: number, value?: unknown, options?: { signal?: AbortSignal }) =>
      this.sleep(ms ?? 0, value, options?.signal),
    )
    replace(promises, 'setImmediate', (value?: unknown, options?: { signal?: AbortSignal }) =>
      this.sleep(0, value, options?.signal),
    )
    replace(Date, 'now', () => Math.floor(EPOCH_MS + this.now))
    replace(performance, 'now', () => this.now)
    replace(AbortSignal, 'timeout', (ms: number) => this.timeoutSignal(ms))
    syncBuiltinESMExports()
    this.restore = () => {
      for (const [target, key, descriptor] of saved.reverse()) {
        if (descriptor == null) delete (target as Record<string, unknown>)[key]
        else Object.defineProperty(target, key, descriptor)
      }
      syncBuiltinESMExports()
      this.restore = undefined
    }
    return this.restore
  }
}

function abortError(reason: unknown): Error {
  const err = new Error('The operation was aborted', { cause: reason })
  err.name = 'AbortError'
  return err
}
