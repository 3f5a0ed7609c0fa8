import { timingSafeEqual } from 'node:crypto'
import { isLoopback, loadTokens, type TokenTable } from '../api/index.js'
import {
  clusterCredential,
  Observer,
  type ObserverOptions,
  parseHostPort,
  readSecret,
} from '../bootstrap/index.js'
import { type BalanceStrategy, HaproxySink, LoadBalancer } from '../loadbalancer/index.js'
import { MemberRole } from '../membership/index.js'
import { MetricsServer } from '../metrics/index.js'
import {
  ConfigError,
  createLogger,
  type LogLevel,
  PortInUseError,
  portInUse,
  StartList,
  startable,
} from '../shared/index.js'
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
   * HOST:PORT of the admin listener (status, health, metrics); default
   * DEFAULT_ADMIN. Anywhere but loopback it needs `tokensFile` (`--tokens`).
   */
  admin?: string
  /** Tokens (the agent's tokens file format) that may read the admin listener; any role may. */
  tokensFile?: string
  /**
   * HOST:PORT of a listener of its own answering only `GET /metrics`, without a
   * token (the proxy port's paths all belong to the application).
   */
  metrics?: string
  logLevel: LogLevel
}

/** Where the admin listener is when `--admin` is not given: this machine only. */
export const DEFAULT_ADMIN = '127.0.0.1:9180'

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
    throw new ConfigError('--haproxy-socket and --haproxy-backend go together')
  const log = createLogger({ level: options.logLevel })
  const listen = parseHostPort(options.listen)
  const adminAt = parseHostPort(options.admin ?? DEFAULT_ADMIN)
  const metricsAt = options.metrics == null ? null : parseHostPort(options.metrics)
  const { listen: _http, p2pListen, metrics: _metrics, admin: _admin, tokensFile, ...member } = options
  if (tokensFile == null && !isLoopback(adminAt.host))
    throw new ConfigError(
      `the admin listener ${options.admin} is reachable from other machines: pass --tokens FILE (tokens that may read it), or keep it on 127.0.0.1`,
    )
  const tokens =
    tokensFile == null ? null : await loadTokens(tokensFile, { warn: (message) => log.warn(message) })
  const secret = options.secretFile == null ? null : await readSecret(options.secretFile)
  // A port in use is an operator's mistake: say which flag before joining anything.
  await requireFreePort(listen, '--listen')
  await requireFreePort(adminAt, '--admin')
  if (metricsAt != null) await requireFreePort(metricsAt, '--metrics')
  // One start list (src/shared/lifecycle.ts), stopped in reverse: the metrics
  // listener, the load balancer, the HAProxy session, then the observer leaves.
  const list = new StartList<{ leave: boolean }>(log, { leave: false })
  try {
    const observer = await Observer.start({ ...member, listen: p2pListen ?? [], roles: [MemberRole.Lb] }, log)
    await list.start([{ name: 'observer', stop: (how) => observer.stop(how) }])
    let sink: HaproxySink | null = null
    if (options.haproxySocket != null) {
      const at = { socket: options.haproxySocket, backend: options.haproxyBackend! }
      const session = await HaproxySink.start(at, log)
      sink = session
      await list.start([{ name: 'haproxy session', stop: () => session.stop() }])
    }
    const lb = new LoadBalancer(
      {
        service: options.service,
        listen,
        admin: { ...adminAt, authorize: tokens == null ? null : adminTokens(tokens, secret) },
        strategy: options.strategy,
        ejectMs: EJECT_MS,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        maxRetries: MAX_RETRIES,
      },
      {
        membership: observer.membership,
        traffic: { network: observer.node, cluster: options.cluster },
        logger: log,
      },
      sink,
    )
    await list.start([startable('load balancer', lb)])
    const metricsServer =
      metricsAt == null ? null : new MetricsServer({ ...metricsAt, render: () => lb.proxy.prometheus() }, log)
    if (metricsServer != null) await list.start([startable('metrics listener', metricsServer)])
    const address = lb.proxy.address()
    const metricsAddress = metricsServer?.address()
    console.log(
      JSON.stringify({
        id: observer.id,
        cluster: options.cluster,
        url: httpUrl(address),
        admin: httpUrl(lb.admin.address()),
        service: options.service,
        haproxy: options.haproxyBackend ?? null,
        metrics: metricsAddress == null ? null : `${httpUrl(metricsAddress)}/metrics`,
        addrs: observer.membership.self.addrs,
      }),
    )
    // A repeated signal within a few seconds is the same request (cli/stop-signals.ts).
    handleStopSignals({ stop: () => list.stop({ leave: true }) })
  } catch (err) {
    await list.stop({ leave: false })
    throw err
  }
}

async function requireFreePort({ host, port }: { host: string; port: number }, flag: string): Promise<void> {
  if (port !== 0 && (await portInUse(host, port)))
    throw new PortInUseError(
      `cannot listen on ${host}:${port} (${flag}): the port is in use by another process; stop it or choose another port`,
    )
}

/** Tokens of the file, and the cluster's own credential (agents' dashboards) when there is a secret. */
function adminTokens(tokens: TokenTable, secret: Uint8Array | null): (token: string) => boolean {
  const cluster = secret == null ? null : Buffer.from(clusterCredential(secret, 'lb-admin'))
  return (token) => {
    const presented = Buffer.from(token)
    const isCluster =
      cluster != null && presented.length === cluster.length && timingSafeEqual(presented, cluster)
    return tokens.lookup(token) != null || isCluster
  }
}

function httpUrl({ host, port }: { host: string; port: number }): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}
