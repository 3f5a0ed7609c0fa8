import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { EXPOSITION_CONTENT_TYPE, startProcessMetrics } from '../metrics/index.js'
import type { ErrorCode, Logger } from '../shared/index.js'
import { boundAddress, closeHttpNow, listenHttp, messageOf } from '../shared/index.js'

export interface AdminServerInit {
  host: string
  port: number
  /**
   * Whether `Authorization: Bearer TOKEN` may read the admin paths; null: no token
   * is asked (only allowed on loopback, `shoal lb` checks that).
   */
  authorize: ((token: string) => boolean) | null
}

export interface AdminServerSources {
  /** `GET /_shoal/lb`: service, strategy, backends with their counters. */
  status(): unknown
  /** `GET /_shoal/metrics` and `GET /metrics`: Prometheus' text format. */
  prometheus(): Promise<string>
}

/** The one path a health checker may read without a token. */
const HEALTH_PATH = '/_shoal/health'
const PATHS = new Set(['/_shoal/lb', '/_shoal/metrics', '/metrics', HEALTH_PATH])

/**
 * The load balancer's own listener (`shoal lb --admin`, loopback by default): its
 * status, health and metrics. The proxy's public listener serves only the
 * application, so neither backend addresses nor node ids reach the internet and
 * the application keeps every path, `/_shoal/` included.
 */
export class AdminServer {
  private server: Server | undefined

  constructor(
    private readonly init: AdminServerInit,
    private readonly sources: AdminServerSources,
    private readonly log: Logger,
  ) {}

  async start(): Promise<{ host: string; port: number }> {
    if (this.server != null) return this.address()
    // Sampled from now, so the first scrape already shows the event loop and CPU.
    startProcessMetrics()
    const server = createServer((req, res) => this.handle(req, res))
    await listenHttp(server, this.init.host, this.init.port)
    this.server = server
    return this.address()
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server != null) await closeHttpNow(server)
  }

  address(): { host: string; port: number } {
    return boundAddress(this.server, this.init.host, 'the admin listener')
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? ''
    const refusal = this.refusal(req, path)
    if (refusal != null) {
      for (const [name, value] of Object.entries(refusal.headers ?? {})) res.setHeader(name, value)
      sendError(res, refusal.status, refusal.code, refusal.message)
    } else if (path === HEALTH_PATH) sendJson(res, 200, { ok: true })
    else if (path === '/_shoal/lb') sendJson(res, 200, this.sources.status())
    else
      this.sources
        .prometheus()
        .then((text) => res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE }).end(text))
        .catch((err: unknown) => {
          this.log.warn('rendering metrics failed', { error: messageOf(err) })
          sendError(res, 500, 'ERR_INTERNAL', 'rendering metrics failed')
        })
  }

  /** Why this request gets no answer but an error, or null. */
  private refusal(
    req: IncomingMessage,
    path: string,
  ): { status: number; code: ErrorCode; message: string; headers?: Record<string, string> } | null {
    if (!PATHS.has(path))
      return {
        status: 404,
        code: 'ERR_NOT_FOUND',
        message: `no such endpoint on the load balancer's admin listener: ${path}`,
      }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return {
        status: 405,
        code: 'ERR_METHOD_NOT_ALLOWED',
        message: `${path} is read-only: use GET`,
        headers: { allow: 'GET, HEAD' },
      }
    if (path === HEALTH_PATH || this.authorized(req)) return null
    return {
      status: 401,
      code: 'ERR_UNAUTHORIZED',
      message:
        'this load balancer\'s admin listener needs a token from its --tokens file (header "Authorization: Bearer TOKEN")',
      headers: { 'www-authenticate': 'Bearer' },
    }
  }

  private authorized(req: IncomingMessage): boolean {
    if (this.init.authorize == null) return true
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')
    return match != null && this.init.authorize(match[1]!)
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, { error: { code, message } })
}
