import type { Logger } from '../../shared/index.js'
import { freePort } from '../../shared/index.js'
import type { ComponentDescriptor } from '../descriptor.js'
import { checkHealth } from '../health.js'
import type { ComponentStatus } from '../supervisor.js'

/** The configuration properties through which a bundle learns where to serve HTTP. */
export const HTTP_HOST_PROPERTY = 'shoal.http.host'
export const HTTP_PORT_PROPERTY = 'shoal.http.port'

/** The PID a bundle component's configuration goes to: `start.osgi.pid`, else its name. */
export function pidOf(descriptor: ComponentDescriptor): string {
  const start = descriptor.start as { osgi?: { pid?: string } }
  return start.osgi?.pid ?? descriptor.name
}

interface Served {
  descriptor: ComponentDescriptor
  port: number
  /** Health as last probed: the bundle is `ready` only once its check passes. */
  healthy: boolean
  detail: string
  /** Taken out of rotation for an in-place update (the drain handshake). */
  draining: boolean
  timer: NodeJS.Timeout | undefined
}

/**
 * HTTP served by bundles (docs/osgi.md, "Serving HTTP"). A bundle cannot be given
 * a port through its environment as a process is, so the runtime picks one per
 * HTTP component (kept across versions: the same port serves after an in-place
 * update), hands it over in the component's configuration (`shoal.http.host`,
 * `shoal.http.port`), probes its health check, and shows the component `ready`
 * with its endpoint only while the check passes. Before an in-place update the
 * component is marked `draining`, so load balancers finish with it first.
 */
export class BundleEndpoints {
  private readonly served = new Map<string, Served>()

  constructor(
    private readonly hosts: { bindHost: string; advertiseHost: string },
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  /**
   * The HTTP components of the bundles about to run: a port for each (the one it
   * had, else a free one); the others are forgotten. Answers the properties to add
   * to each one's configuration, by PID.
   */
  async plan(descriptors: readonly ComponentDescriptor[]): Promise<Map<string, Record<string, unknown>>> {
    const wanted = descriptors.filter((d) => d.http)
    for (const [name, s] of this.served)
      if (!wanted.some((d) => d.name === name)) {
        clearTimeout(s.timer)
        this.served.delete(name)
      }
    const config = new Map<string, Record<string, unknown>>()
    for (const descriptor of wanted) {
      let s = this.served.get(descriptor.name)
      if (s == null) {
        s = {
          descriptor,
          port: await freePort(this.hosts.bindHost),
          healthy: false,
          detail: 'not checked yet',
          draining: false,
          timer: undefined,
        }
        this.served.set(descriptor.name, s)
      }
      s.descriptor = descriptor
      config.set(pidOf(descriptor), {
        [HTTP_HOST_PROPERTY]: this.hosts.bindHost,
        [HTTP_PORT_PROPERTY]: s.port,
      })
    }
    return config
  }

  /** Components among `names` that serve HTTP and are in rotation: what an update must drain first. */
  serving(names: readonly string[]): string[] {
    return names.filter((n) => {
      const s = this.served.get(n)
      return s?.healthy === true && !s.draining
    })
  }

  /** Out of rotation until `settle` is called (an in-place update of its bundle). */
  markDraining(names: readonly string[]): void {
    for (const n of names) {
      const s = this.served.get(n)
      if (s == null) continue
      s.draining = true
      s.healthy = false
    }
    if (names.length > 0) this.onChange()
  }

  /** After an update: drained components go back to `starting` until their check passes again. */
  settle(): void {
    for (const s of this.served.values()) s.draining = false
    this.onChange()
  }

  /** What the runtime shows for a bundle component: its port, endpoint and health on top of the bundle's state. */
  overlay(status: ComponentStatus): ComponentStatus {
    const s = this.served.get(status.name)
    if (s == null) return status
    const active = status.state === 'ready'
    const state = !active ? status.state : s.draining ? 'draining' : s.healthy ? 'ready' : 'starting'
    return {
      ...status,
      state,
      port: s.port,
      endpoint: `http://${hostPart(this.hosts.advertiseHost)}:${s.port}`,
      provides: s.descriptor.provides,
      error: status.error ?? (active && !s.healthy && !s.draining ? s.detail : null),
    }
  }

  /** Probes each HTTP bundle that is active and not draining; stops probing the others. */
  follow(bundles: ReadonlyArray<{ name: string; state: string }>): void {
    for (const name of this.served.keys()) {
      const active = bundles.some((b) => b.name === name && b.state === 'ready')
      const s = this.served.get(name)!
      if (!active && s.healthy) {
        s.healthy = false
        this.onChange()
      }
      this.probe(name, active && !s.draining)
    }
  }

  stop(): void {
    for (const s of this.served.values()) clearTimeout(s.timer)
    this.served.clear()
  }

  /** Keeps probing an active, undrained HTTP bundle at its check's interval; stops otherwise. */
  private probe(name: string, on: boolean): void {
    const s = this.served.get(name)
    if (s == null) return
    if (!on) {
      clearTimeout(s.timer)
      s.timer = undefined
      return
    }
    if (s.timer != null) return
    const check = s.descriptor.health ?? { http: '/', status: 200, intervalMs: 1000, timeoutMs: 2000 }
    const run = async () => {
      const current = this.served.get(name)
      if (current !== s || s.draining) {
        s.timer = undefined
        return
      }
      const result = await checkHealth(check, {
        host: this.hosts.bindHost,
        port: s.port,
        cwd: process.cwd(),
        env: process.env,
      }).catch((err: unknown) => ({ healthy: false, detail: String(err) }))
      if (this.served.get(name) !== s || s.draining) {
        s.timer = undefined
        return
      }
      const changed = result.healthy !== s.healthy
      s.healthy = result.healthy
      s.detail = result.detail
      if (changed) {
        this.log.debug('bundle health', { component: name, healthy: result.healthy, detail: result.detail })
        this.onChange()
      }
      s.timer = setTimeout(() => void run(), check.intervalMs)
      s.timer.unref()
    }
    s.timer = setTimeout(() => void run(), 0)
    s.timer.unref()
  }
}

function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
