import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Pool } from 'undici'
import type { ErrorCode, Logger } from '../shared/index.js'
import { TypedEvents } from '../shared/index.js'
import type { Backend } from './backends.js'
import { Balancer, type BalanceStrategy, type Slot } from './balancer.js'
import { type BackendCounters, type BackendSample, emptyCounters, ProxyMetrics } from './metrics.js'

export interface ProxyInit {
  host: string
  port: number
  /** The service whose backends this proxy serves (for status and errors). */
  service: string
  strategy: BalanceStrategy
  /** A backend that refuses connections is left out this long. */
  ejectMs: number
  connectTimeoutMs: number
  /** Waiting for response headers, and for each piece of the body. */
  requestTimeoutMs: number
  /** Further backends tried for one request, when that is safe. */
  maxRetries: number
}

export interface ProxyEvents {
  /** The set of draining backends with nothing in flight changed. */
  'proxy:drained': string[]
}

interface Entry extends Slot {
  pool: Pool
  counters: BackendCounters
  /** No longer in the membership: closed once its last request is done. */
  removed: boolean
}

export interface ProxyStatus {
  service: string
  strategy: BalanceStrategy
  listen: string
  backends: Array<Backend & { inflight: number; ejected: boolean; counters: BackendCounters }>
  counters: { requests: number; retries: number; noBackend: number; failed: number; upgrades: number }
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** Methods a retry cannot do twice what the client meant once (RFC 9110 §9.2.2), when they carry no body. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/** Errors that prove the request never reached the backend. */
const NEVER_REACHED = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'EADDRNOTAVAIL',
])

/**
 * The built-in HTTP proxy: keep-alive pools per backend (undici), smooth
 * weighted round-robin or least-outstanding, passive ejection of backends that
 * refuse connections, retries only where safe, X-Forwarded-* headers, streamed
 * bodies, WebSocket pass-through, and JSON errors when nothing can answer.
 */
export class HttpProxy {
  readonly events: TypedEvents<ProxyEvents>
  readonly metrics: ProxyMetrics
  private readonly entries = new Map<string, Entry>()
  private readonly balancer: Balancer
  private server: Server | undefined
  private drainedKeys = ''
  private readonly sockets = new Set<Duplex>()

  constructor(
    private readonly init: ProxyInit,
    private readonly log: Logger,
  ) {
    this.events = new TypedEvents(log)
    this.balancer = new Balancer(init.strategy)
    this.metrics = new ProxyMetrics(init.service, () => this.backendSamples())
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => void this.handle(req, res))
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    )
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port, this.init.host, () => resolve())
    })
    this.server = server
    return this.address()
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server != null) {
      server.closeIdleConnections()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      setTimeout(() => {
        for (const socket of this.sockets) socket.destroy()
      }, 1000).unref()
      await closed
    }
    await Promise.all([...this.entries.values()].map((e) => e.pool.close().catch(() => {})))
    this.entries.clear()
  }

  address(): { host: string; port: number } {
    const info = this.server?.address() as AddressInfo | null | undefined
    if (info == null) throw new Error('the proxy is not listening')
    return { host: this.init.host, port: info.port }
  }

  /** Replaces the backend list (from membership); vanished backends close once idle. */
  setBackends(backends: Backend[]): void {
    const keep = new Set<string>()
    for (const backend of backends) {
      keep.add(backend.key)
      const entry = this.entries.get(backend.key)
      if (entry != null && entry.backend.endpoint === backend.endpoint) {
        entry.backend = backend
        entry.removed = false
        continue
      }
      if (entry != null) this.retire(entry)
      this.entries.set(backend.key, {
        backend,
        inflight: 0,
        ejectedUntil: 0,
        current: 0,
        removed: false,
        counters: emptyCounters(),
        pool: new Pool(backend.endpoint, {
          connect: { timeout: this.init.connectTimeoutMs },
          headersTimeout: this.init.requestTimeoutMs,
          bodyTimeout: this.init.requestTimeoutMs,
          keepAliveTimeout: 4000,
        }),
      })
    }
    for (const entry of this.entries.values()) if (!keep.has(entry.backend.key)) this.retire(entry)
    this.reportDrained()
  }

  /** Draining backends with no request in flight: what this proxy tells the draining nodes. */
  drained(): string[] {
    return [...this.entries.values()]
      .filter((e) => (e.backend.state === 'draining' || e.removed) && e.inflight === 0)
      .map((e) => e.backend.key)
      .sort()
  }

  status(): ProxyStatus {
    const now = Date.now()
    return {
      service: this.init.service,
      strategy: this.init.strategy,
      listen: `${this.init.host}:${this.server == null ? this.init.port : this.address().port}`,
      backends: [...this.entries.values()]
        .filter((e) => !e.removed)
        .map((e) => ({
          ...e.backend,
          inflight: e.inflight,
          ejected: e.ejectedUntil > now,
          counters: e.counters,
        })),
      counters: {
        requests: this.metrics.requests,
        retries: this.metrics.retries,
        noBackend: this.metrics.noBackend,
        failed: this.metrics.failed,
        upgrades: this.metrics.upgrades,
      },
    }
  }

  /** The proxy's metrics in Prometheus' text format (the admin listener's `/_shoal/metrics`, `shoal lb --metrics`). */
  prometheus(): Promise<string> {
    return this.metrics.render()
  }

  private backendSamples(): BackendSample[] {
    const now = Date.now()
    return [...this.entries.values()].map((e) => ({
      key: e.backend.key,
      state: e.ejectedUntil > now ? 'ejected' : e.removed ? 'removed' : e.backend.state,
      inflight: e.inflight,
      counters: e.counters,
    }))
  }

  // --- requests --------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.metrics.requests++
    const started = performance.now()
    const method = req.method ?? 'GET'
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] != null
    const replayable = IDEMPOTENT.has(method) && !hasBody
    // A small body with a known length is read first, so it can be sent again to another
    // backend when the first refused the connection; a large one streams through, once.
    const length = Number(req.headers['content-length'] ?? Number.NaN)
    const buffered = hasBody && length <= REPLAY_BODY_MAX ? await readBody(req, length) : null
    const tried = new Set<string>()
    const headers = forwardHeaders(req)
    for (let attempt = 0; ; attempt++) {
      const entry = this.balancer.pick(this.entries.values(), tried) as Entry | null
      if (entry == null) {
        if (tried.size === 0) {
          this.metrics.noBackend++
          return sendError(res, 503, 'ERR_NO_BACKEND', `no ready backend for service "${this.init.service}"`)
        }
        this.metrics.failed++
        return sendError(
          res,
          502,
          'ERR_BAD_GATEWAY',
          `every backend tried for service "${this.init.service}" failed`,
        )
      }
      if (attempt > 0) this.metrics.retries++ // counted only when there is another backend to try
      tried.add(entry.backend.key)
      entry.inflight++
      entry.counters.requests++
      const abort = new AbortController()
      const onClose = () => {
        if (!res.writableFinished) abort.abort()
      }
      res.once('close', onClose)
      try {
        // undici's stream(): the body goes straight into the client's response, no Readable between.
        await entry.pool.stream(
          {
            method: method as 'GET',
            path: req.url ?? '/',
            headers,
            body: buffered ?? (hasBody ? req : null),
            signal: abort.signal,
          },
          ({ statusCode, headers: answer }) => {
            this.metrics.observe(entry.backend.key, (performance.now() - started) / 1000)
            const klass = `${Math.floor(statusCode / 100)}xx`
            entry.counters.responses[klass] = (entry.counters.responses[klass] ?? 0) + 1
            res.writeHead(statusCode, withVia(backHeaders(answer)))
            return res
          },
        )
        return
      } catch (err) {
        const code = (err as { code?: string }).code ?? ''
        const neverReached =
          NEVER_REACHED.has(code) ||
          NEVER_REACHED.has((err as { cause?: { code?: string } }).cause?.code ?? '')
        if (abort.signal.aborted && res.destroyed) return // the client went away
        entry.counters.failures++
        if (neverReached) this.eject(entry, code)
        const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
        // A streamed body went into the failed attempt (and is gone with it); a timeout
        // means the backend has the request and is slow: neither is replayed.
        const safe = (!hasBody || buffered != null) && !timeout && (neverReached || replayable)
        if (!res.headersSent && safe && attempt < this.init.maxRetries) continue
        this.metrics.failed++
        if (res.headersSent) {
          res.destroy()
          return
        }
        return sendError(
          res,
          timeout ? 504 : 502,
          timeout ? 'ERR_GATEWAY_TIMEOUT' : 'ERR_BAD_GATEWAY',
          `backend ${entry.backend.endpoint} failed: ${code || String(err)}`,
        )
      } finally {
        res.off('close', onClose)
        entry.inflight--
        if (entry.inflight === 0 && (entry.backend.state === 'draining' || entry.removed)) {
          if (entry.removed) this.closeIfIdle(entry)
          this.reportDrained()
        }
      }
    }
  }

  /** WebSocket and other upgrades: a raw TCP tunnel to one backend, request head rewritten. */
  private upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const entry = this.balancer.pick(this.entries.values(), new Set()) as Entry | null
    if (entry == null) {
      client.end(
        `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nVia: ${VIA}\r\nConnection: close\r\n\r\n{"error":{"code":"ERR_NO_BACKEND","message":"no ready backend"}}`,
      )
      return
    }
    this.metrics.upgrades++
    entry.inflight++
    entry.counters.requests++
    const upstream = connect(entry.backend.port, entry.backend.host)
    const done = () => {
      upstream.destroy()
      client.destroy()
    }
    let released = false
    const release = () => {
      if (released) return
      released = true
      entry.inflight--
      if (entry.inflight === 0 && (entry.backend.state === 'draining' || entry.removed)) this.reportDrained()
    }
    upstream.once('connect', () => {
      const headers = {
        ...forwardHeaders(req),
        connection: 'Upgrade',
        upgrade: String(req.headers.upgrade ?? ''),
      }
      const lines = Object.entries(headers).flatMap(([k, v]) =>
        Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${v}`],
      )
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`)
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      entry.counters.failures++
      if (NEVER_REACHED.has(err.code ?? '')) this.eject(entry, err.code ?? '')
      done()
    })
    client.once('error', done)
    upstream.once('close', () => {
      release()
      client.destroy()
    })
    client.once('close', () => {
      release()
      upstream.destroy()
    })
  }

  // --- backends ----------------------------------------------------------------------

  private eject(entry: Entry, reason: string): void {
    if (entry.ejectedUntil > Date.now()) return
    entry.ejectedUntil = Date.now() + this.init.ejectMs
    entry.counters.ejections++
    this.log.warn('backend ejected', {
      backend: entry.backend.key,
      endpoint: entry.backend.endpoint,
      reason,
      forMs: this.init.ejectMs,
    })
  }

  private retire(entry: Entry): void {
    entry.removed = true
    this.closeIfIdle(entry)
  }

  private closeIfIdle(entry: Entry): void {
    if (entry.inflight > 0 || this.entries.get(entry.backend.key) !== entry) return
    this.entries.delete(entry.backend.key)
    this.metrics.forget(entry.backend.key)
    entry.pool.close().catch(() => {})
  }

  private reportDrained(): void {
    const drained = this.drained()
    const key = drained.join(',')
    if (key === this.drainedKeys) return
    this.drainedKeys = key
    this.events.emit('proxy:drained', drained)
  }
}

function forwardHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {}
  const connectionTokens = String(req.headers.connection ?? '')
    .toLowerCase()
    .split(',')
    .map((t) => t.trim())
  for (const [name, value] of Object.entries(req.headers)) {
    if (value == null || HOP_BY_HOP.has(name) || connectionTokens.includes(name)) continue
    headers[name] = value
  }
  const client = req.socket.remoteAddress ?? ''
  const prior = req.headers['x-forwarded-for']
  headers['x-forwarded-for'] = prior == null ? client : `${String(prior)}, ${client}`
  headers['x-forwarded-proto'] = String(req.headers['x-forwarded-proto'] ?? 'http')
  if (req.headers.host != null)
    headers['x-forwarded-host'] = String(req.headers['x-forwarded-host'] ?? req.headers.host)
  return headers
}

function backHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers))
    if (value != null && !HOP_BY_HOP.has(name)) out[name] = value
  return out
}

/**
 * This proxy in a response's `Via` (RFC 9110 §7.6.3): how `shoal` tells that an
 * address is a load balancer's public listener, without sending it a token.
 */
export const VIA = '1.1 shoal-lb'

function withVia(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const prior = headers.via
  headers.via = prior == null ? VIA : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${VIA}`
  return headers
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    via: VIA,
  })
  res.end(text)
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, { error: { code, message } })
}

/** Bodies up to this size are read before proxying so a refused attempt can be replayed. */
const REPLAY_BODY_MAX = 256 * 1024

async function readBody(req: IncomingMessage, length: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > length) break // more than announced: send what was announced
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
