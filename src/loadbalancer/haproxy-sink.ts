import type { Logger, TrafficRecorder } from '../shared/index.js'
import type { Backend } from './backends.js'
import { HaproxyDriver, type HaproxyDriverInit } from './haproxy.js'
import type { BackendSink } from './load-balancer.js'

/** How often sessions of draining servers are read while a drain waits on them. */
const DRAIN_POLL_MS = 100

/**
 * The HAProxy driver as the load balancer's sink: syncs servers, and reports a
 * draining backend as drained once HAProxy holds no session to it (polled while
 * any drain is pending), so the node waits for HAProxy exactly as for the
 * built-in proxy. Its `traffic` holds the per-version figures the driver reads
 * from HAProxy's counters on every pass (docs/haproxy.md, "Traffic figures").
 */
export class HaproxySink implements BackendSink {
  readonly traffic: TrafficRecorder
  private draining = new Set<string>()
  private drainedKeys = new Set<string>()
  private readonly listeners = new Set<() => void>()
  private timer: NodeJS.Timeout | undefined

  private constructor(private readonly driver: HaproxyDriver) {
    this.traffic = driver.traffic
  }

  static async start(init: HaproxyDriverInit, log: Logger): Promise<HaproxySink> {
    const driver = new HaproxyDriver(init, log)
    await driver.start()
    return new HaproxySink(driver)
  }

  async sync(backends: Backend[]): Promise<void> {
    await this.driver.sync(backends)
    this.draining = new Set(backends.filter((b) => b.state === 'draining').map((b) => b.key))
    await this.poll()
  }

  drained(): string[] {
    return [...this.drainedKeys]
  }

  onDrainedChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  status() {
    return this.driver.status()
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer)
    await this.driver.stop()
  }

  /** Reads HAProxy's sessions; while some draining server still has any, again soon. */
  private async poll(): Promise<void> {
    clearTimeout(this.timer)
    await this.driver.refresh().catch(() => {})
    const sessions = new Map(this.driver.status().servers.map((s) => [s.key, s.sessions ?? 0]))
    const next = new Set([...this.draining].filter((key) => (sessions.get(key) ?? 0) === 0))
    if ([...next].sort().join() !== [...this.drainedKeys].sort().join()) {
      this.drainedKeys = next
      for (const listener of this.listeners) listener()
    }
    if (next.size < this.draining.size) this.timer = setTimeout(() => void this.poll(), DRAIN_POLL_MS)
  }
}
