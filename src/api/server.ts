import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import { Hono } from 'hono'
import type { Logger, Startable } from '../shared/index.js'
import { INTERNAL, messageOf, NotFoundError, ShoalError } from '../shared/index.js'
import { agentRoutes } from './agent-routes.js'
import { type ArtifactsApi, artifactRoutes } from './artifact-routes.js'
import { AuditTrail } from './audit.js'
import { requireToken, type TokenTable } from './auth.js'
import { browserGuard } from './browser-guard.js'
import { dashboardRoutes } from './dashboard-routes.js'
import { ApiAddressInUseError } from './errors.js'
import { httpStatusOf } from './http-status.js'
import { type NodesApi, nodeRoutes } from './node-routes.js'
import { OPENAPI_DOCUMENT } from './openapi.js'
import { type ReleasesApi, releaseRoutes } from './release-routes.js'
import { type RuntimeApi, runtimeRoutes } from './runtime-routes.js'
import { type TrafficApi, trafficRoutes } from './traffic-routes.js'
import type { MemberView, StatusView } from './views.js'
import { type VotersApi, voterRoutes } from './voter-routes.js'

/** What the API serves; the agent implements it. */
export interface ApiBackend {
  status(): StatusView
  members(): MemberView[]
  readonly distributions: ArtifactsApi
  readonly runtimeApi: RuntimeApi
  readonly nodesApi: NodesApi
  /** The manager's voters (`GET /api/voters`, `POST /api/voters/reset`). */
  readonly votersApi: VotersApi
  /** The agent's metrics in Prometheus' text format (`GET /metrics`). */
  metrics?(): Promise<string>
  /** The agent's node operations: they hold the Shoal release launched nodes download (`GET /releases/…`). */
  readonly nodeOps?: ReleasesApi
  /**
   * Brings the members' per-node details up to date before a request reads them
   * (a node that does not watch fetches them from one that does: membership's
   * DetailRelay); absent: nothing to fetch.
   */
  freshDetails?(): Promise<void>
  /** Every load balancer's per-version figures (`GET /api/traffic`); absent: none. */
  loadBalancerTraffic?: TrafficApi
}

export interface ApiInit {
  host: string
  port: number
  /** Tokens and their roles (`--tokens`); null: no authentication (the API must be on loopback). */
  tokens?: TokenTable | null
  /**
   * What the dashboard presents to load balancers' admin listeners (derived from the
   * cluster secret, docs/loadbalancer.md); null in an open cluster.
   */
  lbCredential?: string | null
}

/** The admin HTTP API and the page at `/`, served by every agent. */
export class ApiServer implements Startable {
  private server: Server | undefined
  private readonly log: Logger

  constructor(
    private readonly init: ApiInit,
    private readonly backend: ApiBackend,
    logger: Logger,
  ) {
    this.log = logger.child('api')
  }

  /** Listens and returns the bound address (useful with port 0). */
  async start(): Promise<{ host: string; port: number }> {
    if (this.server != null) return this.address()
    const server = createAdaptorServer({ fetch: this.routes().fetch }) as Server
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const where = `${this.init.host}:${this.init.port}`
        reject(err.code === 'EADDRINUSE' ? new ApiAddressInUseError(where, { cause: err }) : err)
      })
      server.listen(this.init.port, this.init.host, () => resolve())
    })
    this.server = server
    return this.address()
  }

  async stop(): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  address(): { host: string; port: number } {
    const info = this.server?.address() as AddressInfo | null | undefined
    if (info == null) throw new Error('API server is not listening')
    return { host: this.init.host, port: info.port }
  }

  private routes(): Hono {
    return createApiApp(this.backend, this.init.tokens ?? null, this.log, {
      lbCredential: this.init.lbCredential ?? null,
    })
  }
}

/**
 * Every route of the admin API (exported so tests can hold them against the OpenAPI document):
 * each `*-routes.ts` file registers its operations (the route table the document is rendered from).
 */
export function createApiApp(
  backend: ApiBackend,
  tokens: TokenTable | null,
  log: Logger,
  options: { lbCredential?: string | null } = {},
): Hono {
  const app = new Hono()
  const audit = new AuditTrail()
  // First: its signed URL is its credential, for nodes that hold no token and reach us by any host name.
  releaseRoutes(app, () => backend.nodeOps)
  app.use('*', browserGuard(tokens != null))
  app.use('/api/*', audit.middleware())
  if (tokens != null) app.use('/api/*', requireToken(tokens))
  // Reads of the members' details (components, readiness, rollout progress) see them fresh.
  app.use('*', async (_c, next) => {
    await backend.freshDetails?.()
    await next()
  })
  dashboardRoutes(app, backend, audit, options.lbCredential ?? null)
  agentRoutes(app, backend, OPENAPI_DOCUMENT)
  artifactRoutes(app, () => backend.distributions)
  runtimeRoutes(app, () => backend.runtimeApi)
  nodeRoutes(app, () => backend.nodesApi)
  voterRoutes(app, () => backend.votersApi)
  trafficRoutes(app, () => backend.loadBalancerTraffic)
  app.notFound((c) =>
    c.json(
      { error: { code: NotFoundError.code, message: `no such endpoint: ${c.req.method} ${c.req.path}` } },
      404,
    ),
  )
  app.onError((err, c) => {
    const status = httpStatusOf(err)
    const code = err instanceof ShoalError ? err.code : INTERNAL
    if (status >= 500) log.error('request failed', { path: c.req.path, error: messageOf(err) })
    return c.json({ error: { code, message: messageOf(err) } }, status as 500)
  })
  return app
}
