import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { type Dispatcher, Pool } from 'undici'
import type { ErrorCode, Logger } from '../shared/index.js'
import { TrafficRecorder, TypedEvents } from '../shared/index.js'
import type { Backend } from './backends.js'
import { Balancer, type BalanceStrategy, type Slot } from './balancer.js'
import { type BackendCounters, emptyCounters, ProxyMetrics } from './metrics.js'

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

/** Status classes as the counters name them, by `status / 100`. */
const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx']

/**
 * The built-in HTTP proxy: keep-alive pools per backend (undici), smooth
 * weighted round-robin or least-outstanding, passive ejection of backends that
 * refuse connections, retries only where safe, X-Forwarded-* headers, streamed
 * bodies, WebSocket pass-through, JSON errors when nothing can answer, and
 * per-version traffic figures (`traffic`).
 *
 * The request path is built for throughput: the request's raw headers are read
 * once into the flat list undici sends, the response's into the flat list Node
 * writes; undici's dispatch API is driven directly by one small handler object
 * per attempt (no promise, stream adapter or AbortController per request).
 */
export class HttpProxy {
  readonly events: TypedEvents<ProxyEvents>
  readonly metrics: ProxyMetrics
  /**
   * Every request attempt by the version of the backend that served it: latency to
   * the response head, failed when it answered 5xx or not at all (refused, reset,
   * timed out; a failed attempt counts even when a retry elsewhere succeeds). Requests
   * whose client went away first, and upgrades, are not counted.
   */
  readonly traffic = new TrafficRecorder()
  private readonly entries = new Map<string, Entry>()
  /** The entries as an array, for the balancer to scan without an iterator per request. */
  private slots: Entry[] = []
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
    this.metrics = new ProxyMetrics(init.service, () =>
      this.slots.map((e) => ({
        key: e.backend.key,
        state: e.ejectedUntil > Date.now() ? 'ejected' : e.removed ? 'removed' : e.backend.state,
        inflight: e.inflight,
        counters: e.counters,
      })),
    )
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res))
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
    this.slots = []
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
    this.slots = [...this.entries.values()]
    for (const entry of this.slots) if (!keep.has(entry.backend.key)) this.retire(entry)
    this.reportDrained()
  }

  /** Draining backends with no request in flight: what this proxy tells the draining nodes. */
  drained(): string[] {
    return this.slots
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
      backends: this.slots
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

  // --- requests --------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.metrics.requests++
    const exchange = new Exchange(req, res)
    res.on('close', exchange.onClose)
    // A small body with a known length is read first, so it can be sent again to another
    // backend when the first refused the connection; a large one streams through, once.
    if (exchange.hasBody && exchange.head.length <= REPLAY_BODY_MAX) {
      readBody(req, exchange.head.length).then(
        (body) => {
          exchange.body = body
          exchange.buffered = true
          if (!exchange.gone) this.forward(exchange)
        },
        () => {}, // the client went away while sending it
      )
    } else {
      exchange.body = exchange.hasBody ? req : null
      this.forward(exchange)
    }
  }

  /** @internal Sends the exchange's request to the next backend (retries come back here). */
  forward(x: Exchange): void {
    if (x.attempt != null) {
      x.tried ??= new Set()
      x.tried.add(x.attempt.entry.backend.key)
    }
    const entry = this.balancer.pick(this.slots, x.tried) as Entry | null
    if (entry == null) {
      if (x.attempts === 0) {
        this.metrics.noBackend++
        sendError(x.res, 503, 'ERR_NO_BACKEND', `no ready backend for service "${this.init.service}"`)
        return
      }
      this.metrics.failed++
      sendError(
        x.res,
        502,
        'ERR_BAD_GATEWAY',
        `every backend tried for service "${this.init.service}" failed`,
      )
      return
    }
    if (x.attempts > 0) this.metrics.retries++ // counted only when there is another backend to try
    x.attempts++
    entry.inflight++
    entry.counters.requests++
    const attempt = new Attempt(this, x, entry)
    x.attempt = attempt
    entry.pool.dispatch(
      { method: x.method, path: x.req.url ?? '/', headers: x.head.headers, body: x.body },
      attempt,
    )
  }

  /** @internal The backend's response head: counted, then written to the client as it came, hop-by-hop headers out. */
  answered(attempt: Attempt, status: number, headers: IncomingHttpHeaders): void {
    const { entry, exchange: x } = attempt
    attempt.status = status
    attempt.latencyMs = performance.now() - x.started
    this.metrics.observe(entry.backend.key, attempt.latencyMs / 1000)
    const klass = STATUS_CLASS[Math.floor(status / 100)] ?? `${Math.floor(status / 100)}xx`
    entry.counters.responses[klass] = (entry.counters.responses[klass] ?? 0) + 1
    x.res.writeHead(status, responseHeaders(headers))
  }

  /** @internal An attempt is over: answered (`err` null) or failed; the exchange ends, or goes to another backend. */
  settle(attempt: Attempt, err: Error | null): void {
    const { entry, exchange: x } = attempt
    this.release(entry)
    if (err == null) {
      if (!x.gone) this.traffic.record(attempt.version, attempt.status >= 500, attempt.latencyMs)
      return
    }
    if (x.gone) return // the client went away: neither the backend's failure nor the proxy's
    const code = errorCode(err)
    const neverReached = NEVER_REACHED.has(code) || NEVER_REACHED.has(errorCode(err.cause))
    entry.counters.failures++
    this.traffic.record(
      attempt.version,
      true,
      attempt.latencyMs >= 0 ? attempt.latencyMs : performance.now() - x.started,
    )
    if (neverReached) this.eject(entry, code)
    const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
    // A streamed body went into the failed attempt (and is gone with it); a timeout
    // means the backend has the request and is slow: neither is replayed.
    const safe = (!x.hasBody || x.buffered) && !timeout && (neverReached || x.replayable)
    if (!x.res.headersSent && safe && x.attempts <= this.init.maxRetries) {
      this.forward(x)
      return
    }
    this.metrics.failed++
    if (x.res.headersSent) {
      x.res.destroy()
      return
    }
    sendError(
      x.res,
      timeout ? 504 : 502,
      timeout ? 'ERR_GATEWAY_TIMEOUT' : 'ERR_BAD_GATEWAY',
      `backend ${entry.backend.endpoint} failed: ${code || String(err)}`,
    )
  }

  private release(entry: Entry): void {
    entry.inflight--
    if (entry.inflight === 0 && (entry.backend.state === 'draining' || entry.removed)) {
      if (entry.removed) this.closeIfIdle(entry)
      this.reportDrained()
    }
  }

  /** WebSocket and other upgrades: a raw TCP tunnel to one backend, request head rewritten. */
  private upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const entry = this.balancer.pick(this.slots, null) as Entry | null
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
      const { headers, upgrade } = requestHead(req)
      headers.push('connection', 'Upgrade', 'upgrade', upgrade ?? '')
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`
      for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`
      upstream.write(`${text}\r\n`)
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
    this.slots = this.slots.filter((e) => e !== entry)
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

/** The client raced the backend and left: what the attempt in flight is aborted with. */
class ClientGone extends Error {
  constructor() {
    super('the client went away')
  }
}

/** One client request on its way through the proxy, over one or more attempts. */
class Exchange {
  readonly started = performance.now()
  readonly method: string
  readonly head: RequestHead
  readonly hasBody: boolean
  readonly replayable: boolean
  body: Buffer | IncomingMessage | null = null
  /** The body was read whole (and can be sent again). */
  buffered = false
  /** Backends already tried, from the first retry on. */
  tried: Set<string> | null = null
  attempts = 0
  attempt: Attempt | null = null
  /** The client closed the connection before the response was complete. */
  gone = false

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    this.method = req.method ?? 'GET'
    this.head = requestHead(req)
    this.hasBody = this.head.length > 0 || this.head.chunked
    this.replayable = IDEMPOTENT.has(this.method) && !this.hasBody
  }

  readonly onClose = (): void => {
    if (this.res.writableFinished) return
    this.gone = true
    this.attempt?.controller?.abort(new ClientGone())
  }
}

/**
 * One attempt of an exchange at one backend: undici's dispatch handler. undici
 * calls onRequestStart when the request goes on a connection, then the response
 * callbacks, or onResponseError (refused, reset, timed out, aborted).
 */
class Attempt implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | null = null
  /** The version that served it, as it was when the attempt began. */
  readonly version: string
  status = 0
  /** From the request's arrival to this backend's response head; -1 until then. */
  latencyMs = -1
  private settled = false

  constructor(
    readonly proxy: HttpProxy,
    readonly exchange: Exchange,
    readonly entry: Entry,
  ) {
    this.version = entry.backend.version
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.exchange.gone) controller.abort(new ClientGone())
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (status < 200) return // informational: not passed on (the proxy's own server answers Expect)
    this.proxy.answered(this, status, headers)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const res = this.exchange.res
    if (!res.write(chunk)) {
      controller.pause()
      res.once('drain', () => controller.resume())
    }
  }

  onResponseEnd(): void {
    this.exchange.res.end()
    this.settle(null)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.settle(err)
  }

  private settle(err: Error | null): void {
    if (this.settled) return
    this.settled = true
    this.proxy.settle(this, err)
  }
}

/** What the proxy reads from a request's head, in one pass over its raw headers. */
interface RequestHead {
  /** For the backend, as a flat `[name, value, …]` list: hop-by-hop headers out, X-Forwarded-* in. */
  headers: string[]
  /** Content-Length as announced; NaN without one. */
  length: number
  chunked: boolean
  upgrade: string | undefined
}

/**
 * The request's headers for the backend, read once from `rawHeaders` (Node builds
 * `req.headers` only when asked): names lowercased, duplicates kept as sent
 * (Host and Content-Length: the first, as Node reads them), hop-by-hop headers
 * and the ones `Connection` names dropped, `Expect` dropped (Node's server has
 * already answered `100 Continue`), X-Forwarded-For appended to, X-Forwarded-Proto
 * and -Host added unless a proxy in front set them.
 */
function requestHead(req: IncomingMessage): RequestHead {
  const raw = req.rawHeaders
  const headers: string[] = []
  let length = Number.NaN
  let chunked = false
  let upgrade: string | undefined
  let connection: string | undefined
  let host: string | undefined
  let forwardedFor: string | undefined
  let forwardedProto: string | undefined
  let forwardedHost: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    switch (name) {
      case 'host':
        if (host !== undefined) continue
        host = value
        break
      case 'content-length':
        if (!Number.isNaN(length)) continue
        length = Number(value)
        break
      case 'transfer-encoding':
        chunked = true
        continue
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`
        continue
      case 'upgrade':
        upgrade ??= value
        continue
      case 'expect':
        continue
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
        continue
      case 'x-forwarded-proto':
        forwardedProto = forwardedProto === undefined ? value : `${forwardedProto}, ${value}`
        continue
      case 'x-forwarded-host':
        forwardedHost = forwardedHost === undefined ? value : `${forwardedHost}, ${value}`
        continue
      default:
        if (HOP_BY_HOP.has(name)) continue
    }
    headers.push(name, value)
  }
  if (connection !== undefined) {
    const named = connectionNames(connection)
    if (named != null) {
      dropNamed(headers, named)
      if (named.has('x-forwarded-for')) forwardedFor = undefined
      if (named.has('x-forwarded-proto')) forwardedProto = undefined
      if (named.has('x-forwarded-host')) forwardedHost = undefined
    }
  }
  const client = req.socket.remoteAddress ?? ''
  headers.push(
    'x-forwarded-for',
    forwardedFor === undefined ? client : `${forwardedFor}, ${client}`,
    'x-forwarded-proto',
    forwardedProto ?? 'http',
  )
  if (host !== undefined) headers.push('x-forwarded-host', forwardedHost ?? host)
  return { headers, length, chunked, upgrade }
}

/**
 * The response's headers for the client, from the ones undici parsed (names
 * lowercased, values Latin-1 as received, repeated ones in arrays): hop-by-hop
 * headers and the ones `Connection` names dropped, this proxy added to `Via`.
 */
function responseHeaders(parsed: IncomingHttpHeaders): string[] {
  const headers: string[] = []
  let via: string | undefined
  let connection: string | undefined
  for (const name in parsed) {
    const value = parsed[name]
    if (value === undefined) continue
    if (name === 'via') via = typeof value === 'string' ? value : value.join(', ')
    else if (name === 'connection') connection = typeof value === 'string' ? value : value.join(', ')
    else if (HOP_BY_HOP.has(name)) continue
    else if (typeof value === 'string') headers.push(name, value)
    else for (const one of value) headers.push(name, one)
  }
  if (connection !== undefined) {
    const named = connectionNames(connection)
    if (named != null) dropNamed(headers, named)
  }
  headers.push('via', via === undefined ? VIA : `${via}, ${VIA}`)
  return headers
}

/** The header names a `Connection` value lists beyond the hop-by-hop ones; null for none (the usual case). */
function connectionNames(value: string): Set<string> | null {
  const lower = value.toLowerCase()
  if (lower === 'keep-alive' || lower === 'close') return null
  let named: Set<string> | null = null
  for (const token of lower.split(',')) {
    const name = token.trim()
    if (name === '' || name === 'close' || HOP_BY_HOP.has(name)) continue
    named ??= new Set()
    named.add(name)
  }
  return named
}

function dropNamed(headers: string[], named: ReadonlySet<string>): void {
  let kept = 0
  for (let i = 0; i < headers.length; i += 2) {
    if (named.has(headers[i]!)) continue
    headers[kept++] = headers[i]!
    headers[kept++] = headers[i + 1]!
  }
  headers.length = kept
}

function errorCode(err: unknown): string {
  return (err as { code?: unknown } | undefined)?.code?.toString() ?? ''
}

/**
 * This proxy in a response's `Via` (RFC 9110 §7.6.3): how `shoal` tells that an
 * address is a load balancer's public listener, without sending it a token.
 */
export const VIA = '1.1 shoal-lb'

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
