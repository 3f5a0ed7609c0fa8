import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import type { Logger, Startable, StreamNetwork, TrafficRecorder, TypedEvents } from '../shared/index.js'
import { AdminServer } from './admin-server.js'
import { fitDrained, type LoadBalancerAnnouncement } from './announcement.js'
import { type Backend, backendsOf } from './backends.js'
import type { BalanceStrategy } from './balancer.js'
import { HttpProxy, type ProxyStatus } from './proxy.js'
import { serveTraffic, trafficProtocol } from './traffic-service.js'

export interface LoadBalancerInit {
  /** The service to serve (components that provide it over HTTP). */
  service: string
  listen: { host: string; port: number }
  /**
   * Its own listener for status, health and metrics (`--admin`, loopback by
   * default); `authorize` checks a bearer token, null when none is asked.
   */
  admin: { host: string; port: number; authorize: ((token: string) => boolean) | null }
  strategy: BalanceStrategy
  ejectMs: number
  connectTimeoutMs: number
  requestTimeoutMs: number
  maxRetries: number
}

export interface LoadBalancerComponents {
  membership: {
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
    updateMetadata(patch: MemberMetadata): Promise<void>
  }
  /** Where it serves its per-version traffic figures to the manager and the agents' APIs (traffic-service.ts). */
  traffic?: { network: StreamNetwork; cluster: string }
  logger: Logger
}

/** Something else that routes traffic and wants the backend list (the HAProxy driver). */
export interface BackendSink {
  sync(backends: Backend[]): Promise<void>
  /** Draining backends it has no session to any more. */
  drained(): string[]
  onDrainedChange?(listener: () => void): () => void
  /** Per-version traffic figures from the external proxy's own counters, when it keeps them. */
  readonly traffic?: TrafficRecorder
}

/**
 * `shoal lb`: turns membership into a backend pool on every membership event
 * (no reload), routes with the built-in proxy (or drives an external one through
 * a sink), and tells draining nodes, through its own member metadata
 * (`drained`), once it has nothing in flight to them.
 */
export class LoadBalancer implements Startable {
  readonly proxy: HttpProxy
  readonly admin: AdminServer
  private readonly log: Logger
  private readonly unsubscribe: Array<() => void> = []
  private backends: Backend[] = []
  private published = ''
  private listening: { host: string; port: number; admin: { host: string; port: number } } | undefined

  constructor(
    private readonly init: LoadBalancerInit,
    private readonly components: LoadBalancerComponents,
    private readonly sink: BackendSink | null = null,
  ) {
    this.log = components.logger.child('lb')
    this.proxy = new HttpProxy({ ...init, ...init.listen }, this.log)
    this.admin = new AdminServer(
      init.admin,
      { status: () => this.status(), prometheus: () => this.proxy.prometheus() },
      this.log,
    )
  }

  /** Listens (proxy, then admin) and joins the pool; answers both bound addresses. */
  async start(): Promise<{ host: string; port: number; admin: { host: string; port: number } }> {
    if (this.listening != null) return this.listening
    const address = await this.proxy.start()
    let admin: { host: string; port: number }
    try {
      admin = await this.admin.start()
    } catch (err) {
      await this.proxy.stop()
      throw err
    }
    const { events } = this.components.membership
    for (const name of [
      'member:join',
      'member:update',
      'member:suspect',
      'member:dead',
      'member:leave',
      'member:reap',
    ] as const)
      this.unsubscribe.push(events.on(name, () => this.refresh()))
    this.unsubscribe.push(this.proxy.events.on('proxy:drained', () => this.publishDrained()))
    if (this.sink?.onDrainedChange != null)
      this.unsubscribe.push(this.sink.onDrainedChange(() => this.publishDrained()))
    // `url`: the application's address; `admin`: where dashboards find this load
    // balancer's status (/_shoal/lb) and metrics.
    const announced: LoadBalancerAnnouncement = {
      service: this.init.service,
      drained: [],
      url: httpUrl(address),
      admin: httpUrl(admin),
    }
    const traffic = this.components.traffic
    if (traffic != null)
      await serveTraffic(
        traffic.network,
        traffic.cluster,
        this.init.service,
        () => this.recorders(),
        this.log,
      )
    await this.components.membership.updateMetadata(announced)
    this.refresh()
    this.log.info('load balancer listening', {
      ...address,
      admin: httpUrl(admin),
      service: this.init.service,
      external: this.sink != null,
    })
    this.listening = { ...address, admin }
    return this.listening
  }

  async stop(): Promise<void> {
    this.listening = undefined
    for (const off of this.unsubscribe.splice(0)) off()
    const traffic = this.components.traffic
    if (traffic != null) await traffic.network.unhandle(trafficProtocol(traffic.cluster)).catch(() => {})
    await this.proxy.stop()
    await this.admin.stop()
  }

  status(): ProxyStatus & { external: boolean } {
    return { ...this.proxy.status(), external: this.sink != null }
  }

  /** Where this load balancer's per-version figures are counted: its proxy, and HAProxy's counters when it drives one. */
  recorders(): TrafficRecorder[] {
    return [this.proxy.traffic, this.sink?.traffic].filter((r): r is TrafficRecorder => r != null)
  }

  private refresh(): void {
    const next = backendsOf(this.components.membership.members(), this.init.service)
    if (JSON.stringify(next) === JSON.stringify(this.backends)) return
    this.backends = next
    this.log.debug('backends', { backends: next.map((b) => `${b.key} ${b.state} ${b.weight}`) })
    this.proxy.setBackends(next)
    this.sink
      ?.sync(next)
      .then(() => this.publishDrained())
      .catch((err: unknown) => this.log.warn('backend sync failed', { error: String(err) }))
    this.publishDrained()
  }

  /** Draining backends neither the built-in proxy nor the sink has a request in flight to. */
  private publishDrained(): void {
    const ours = new Set(this.proxy.drained())
    const theirs = this.sink == null ? null : new Set(this.sink.drained())
    const { drained, left } = fitDrained([...ours].filter((key) => theirs == null || theirs.has(key)))
    const text = drained.join(',')
    if (text === this.published) return
    this.published = text
    if (left > 0)
      this.log.warn(
        `${left} drained backends do not fit the drained list yet; they follow as the listed ones stop`,
      )
    const patch: Partial<LoadBalancerAnnouncement> = { drained }
    this.components.membership
      .updateMetadata(patch)
      .catch((err: unknown) => this.log.warn('could not publish drained backends', { error: String(err) }))
  }
}

function httpUrl({ host, port }: { host: string; port: number }): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}
