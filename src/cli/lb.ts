import { Observer, type ObserverOptions, parseHostPort } from '../bootstrap/index.js'
import { type BackendSink, type BalanceStrategy, LoadBalancer } from '../loadbalancer/index.js'
import { MetricsServer } from '../metrics/index.js'
import { PortInUseError, ShoalError } from '../shared/errors.js'
import { createLogger, type LogLevel } from '../shared/logger.js'
import { portInUse } from '../shared/ports.js'
import { handleStopSignals } from './stop-signals.js'

export interface LbOptions extends Omit<ObserverOptions, 'roles' | 'listen'> {
  /** HTTP address the proxy listens on. */
  listen: string
  /** libp2p listen multiaddrs. */
  p2pListen?: string[]
  service: string
  strategy: BalanceStrategy
  haproxySocket?: string
  haproxyBackend?: string
  /**
   * HOST:PORT of a listener of its own answering `GET /metrics` (the proxy port's
   * `/metrics` belongs to the application; `/_shoal/metrics` is there too).
   */
  metrics?: string
  logLevel: LogLevel
}

/** Default proxy timings (docs/loadbalancer.md). */
const EJECT_MS = 5000
const CONNECT_TIMEOUT_MS = 2000
const REQUEST_TIMEOUT_MS = 60_000
const MAX_RETRIES = 2

/**
 * `shoal lb`: an observer member with role `lb` and the load balancer on top;
 * prints one JSON line once it listens, runs until SIGTERM/SIGINT, then stops
 * routing and leaves the cluster.
 */
export async function runLoadBalancer(options: LbOptions): Promise<void> {
  if ((options.haproxySocket == null) !== (options.haproxyBackend == null))
    throw new ShoalError('ERR_CONFIG', '--haproxy-socket and --haproxy-backend go together', 400)
  const log = createLogger({ level: options.logLevel })
  const listen = parseHostPort(options.listen)
  const metricsAt = options.metrics == null ? null : parseHostPort(options.metrics)
  const { listen: _http, p2pListen, metrics: _metrics, ...member } = options
  // A port in use is an operator's mistake: say which flag before joining anything.
  await requireFreePort(listen, '--listen')
  if (metricsAt != null) await requireFreePort(metricsAt, '--metrics')
  const observer = await Observer.start({ ...member, listen: p2pListen ?? [], roles: ['lb'] }, log)
  let sink: (BackendSink & { stop(): Promise<void> }) | null = null
  let metricsServer: MetricsServer | null = null
  try {
    if (options.haproxySocket != null) {
      const { HaproxySink } = await import('../loadbalancer/haproxy-sink.js')
      sink = await HaproxySink.start({ socket: options.haproxySocket, backend: options.haproxyBackend! }, log)
    }
    const lb = new LoadBalancer(
      {
        service: options.service,
        listen,
        strategy: options.strategy,
        ejectMs: EJECT_MS,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        maxRetries: MAX_RETRIES,
      },
      { membership: observer.membership, logger: log },
      sink,
    )
    const address = await lb.start()
    if (metricsAt != null) {
      metricsServer = new MetricsServer({ ...metricsAt, render: () => lb.proxy.prometheus() }, log)
      await metricsServer.start()
    }
    const metricsAddress = metricsServer?.address()
    console.log(
      JSON.stringify({
        id: observer.id,
        cluster: options.cluster,
        url: httpUrl(address),
        service: options.service,
        haproxy: options.haproxyBackend ?? null,
        metrics: metricsAddress == null ? null : `${httpUrl(metricsAddress)}/metrics`,
        addrs: observer.membership.self.addrs,
      }),
    )
    // A repeated signal within a few seconds is the same request (cli/stop-signals.ts).
    handleStopSignals({
      stop: async () => {
        await metricsServer?.stop()
        await lb.stop()
        await sink?.stop()
        await observer.stop({ leave: true })
      },
    })
  } catch (err) {
    await metricsServer?.stop().catch(() => {})
    await sink?.stop().catch(() => {})
    await observer.stop({ leave: false })
    throw err
  }
}

async function requireFreePort({ host, port }: { host: string; port: number }, flag: string): Promise<void> {
  if (port !== 0 && (await portInUse(host, port)))
    throw new PortInUseError(
      `cannot listen on ${host}:${port} (${flag}): the port is in use by another process; stop it or choose another port`,
    )
}

function httpUrl({ host, port }: { host: string; port: number }): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}
