/**
 * The built-in HTTP proxy (src/loadbalancer/proxy.ts) on its own, over a fixed
 * set of plain node:http backends started here: forwarded headers, WebSocket
 * pass-through, streamed bodies, timeouts, JSON errors, passive health and
 * retries, all as a client (and the backend) sees them.
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { type Backend, HttpProxy, type ProxyInit, type ProxyStatus } from '../../src/loadbalancer/index.js'
import { figuresOf, type TrafficFigures } from '../../src/shared/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { waitFor } from '../helpers/wait.js'

interface TestBackend {
  name: string
  port: number
  server: Server
  /** Requests whose head reached this backend (method, url, headers). */
  seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>
  backend(weight?: number, state?: Backend['state'], version?: string): Backend
  close(): Promise<void>
}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  json<T = ErrorBody>(): T
}

interface ErrorBody {
  error: { code: string; message: string }
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
})

function backendFor(
  name: string,
  port: number,
  weight = 100,
  state: Backend['state'] = 'ready',
  version = '1',
): Backend {
  return {
    key: `${name}/web`,
    node: name,
    component: 'web',
    version,
    endpoint: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    state,
    weight,
  }
}

/** A plain HTTP backend on 127.0.0.1:0; the default handler answers `{"backend": name}`. */
async function startBackend(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
  onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): Promise<TestBackend> {
  const seen: TestBackend['seen'] = []
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    if (handler != null) return handler(req, res)
    req.resume()
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ backend: name }))
    })
  })
  // Upgraded sockets leave the HTTP server's bookkeeping: closeAllConnections() misses them.
  const upgraded = new Set<Duplex>()
  if (onUpgrade != null)
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
      upgraded.add(socket)
      socket.once('close', () => upgraded.delete(socket))
      onUpgrade(req, socket, head)
    })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    for (const socket of upgraded) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  cleanups.push(close)
  return { name, port, server, seen, backend: (w, s, v) => backendFor(name, port, w, s, v), close }
}

/** A port nothing listens on: connections to it are refused. */
async function refusingPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

async function startProxy(backends: Backend[], init: Partial<ProxyInit> = {}) {
  const proxy = new HttpProxy(
    {
      host: '127.0.0.1',
      port: 0,
      service: 'web',
      strategy: 'round-robin',
      ejectMs: 5000,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 10_000,
      maxRetries: 2,
      ...init,
    },
    silentLogger,
  )
  const { port } = await proxy.start()
  cleanups.push(() => proxy.stop())
  proxy.setBackends(backends)
  // Read in-process: the public listener serves only the application (admin-server.ts serves these).
  const status = async (): Promise<ProxyStatus> => proxy.status()
  const metrics = () => proxy.prometheus()
  return { proxy, port, status, metrics }
}

/** One request on a fresh connection; `body` may be a Buffer or a writer that streams it. */
function call(
  port: number,
  opts: {
    method?: string
    path?: string
    headers?: Record<string, string | number>
    body?: Buffer | ((req: ReturnType<typeof request>) => Promise<void>)
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const body = Buffer.concat(chunks)
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: <T>() => JSON.parse(body.toString()) as T,
          })
        })
      },
    )
    req.on('error', reject)
    if (typeof opts.body === 'function') opts.body(req).catch(reject)
    else req.end(opts.body)
  })
}

const backendOf = (answer: Answer) => answer.json<{ backend: string }>().backend

/** The proxy's per-version figures over the last minute. */
function figures(proxy: HttpProxy): Record<string, TrafficFigures> {
  const now = Math.floor(Date.now() / 1000)
  const seconds = proxy.traffic.seconds(now - 60, now + 1)
  return Object.fromEntries(Object.entries(seconds).map(([version, list]) => [version, figuresOf(list)]))
}
const counter = (text: string, name: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line == null ? undefined : Number(line.split(' ').pop())
}

describe('the built-in proxy', () => {
  it('serves every path to the application, /_shoal/ included, and names itself in Via', async () => {
    const a = await startBackend('a', (req, res) => {
      res.setHeader('via', '1.0 app-cache')
      res.end(`app ${req.method} ${req.url}`)
    })
    const { port } = await startProxy([a.backend()])
    for (const [method, path] of [
      ['GET', '/_shoal/lb'],
      ['POST', '/_shoal/lb'],
      ['GET', '/_shoal/metrics'],
      ['GET', '/_shoal/health'],
    ] as const) {
      const answer = await call(port, { method, path })
      expect(answer.status).toBe(200)
      expect(answer.body.toString()).toBe(`app ${method} ${path}`)
      // RFC 9110 §7.6.3: the proxy appends itself to what the application sent.
      expect(answer.headers.via).toBe('1.0 app-cache, 1.1 shoal-lb')
    }
    expect(a.seen.map((r) => r.url)).toEqual([
      '/_shoal/lb',
      '/_shoal/lb',
      '/_shoal/metrics',
      '/_shoal/health',
    ])
    const { port: empty } = await startProxy([])
    const none = await call(empty, { path: '/' })
    expect(none.status).toBe(503)
    expect(none.headers.via).toBe('1.1 shoal-lb')
  })

  it('adds X-Forwarded-For (appended), -Proto and -Host, keeps Host, drops hop-by-hop headers', async () => {
    const a = await startBackend('a')
    const { port } = await startProxy([a.backend()])

    const first = await call(port, {
      path: '/some/path?q=1',
      headers: { host: 'app.example:8443', 'x-custom': 'kept' },
    })
    expect(first.status).toBe(200)
    expect(backendOf(first)).toBe('a')
    const h1 = a.seen[0]!.headers
    expect(a.seen[0]!.url).toBe('/some/path?q=1')
    expect(h1['x-forwarded-for']).toBe('127.0.0.1')
    expect(h1['x-forwarded-proto']).toBe('http')
    expect(h1['x-forwarded-host']).toBe('app.example:8443')
    expect(h1.host).toBe('app.example:8443')
    expect(h1['x-custom']).toBe('kept')

    // Behind another proxy: the chain is appended to, the outer proto/host kept.
    await call(port, {
      headers: {
        host: 'inner.example',
        'x-forwarded-for': '203.0.113.7',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'outer.example',
        // Hop-by-hop: Connection itself, what it names, and the fixed list.
        connection: 'close, x-hop',
        'x-hop': 'secret',
        'keep-alive': 'timeout=5',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
      },
    })
    const h2 = a.seen[1]!.headers
    expect(h2['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1')
    expect(h2['x-forwarded-proto']).toBe('https')
    expect(h2['x-forwarded-host']).toBe('outer.example')
    expect(h2.host).toBe('inner.example')
    expect(h2['x-hop']).toBeUndefined()
    expect(h2['keep-alive']).toBeUndefined()
    expect(h2['proxy-authorization']).toBeUndefined()
  })

  it('passes a WebSocket upgrade through as a tunnel: 101, headers forwarded, bytes echoed both ways', async () => {
    const ws = await startBackend('ws', undefined, (_req, socket, head) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: ws\r\n\r\n',
      )
      if (head.length > 0) socket.write(head)
      socket.on('data', (d: Buffer) => socket.write(d))
      socket.on('end', () => socket.end())
      socket.on('error', () => {})
    })
    const { port, status, metrics } = await startProxy([ws.backend()])

    const { res, socket, head } = await new Promise<{
      res: IncomingMessage
      socket: Duplex
      head: Buffer
    }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: '/chat?room=1',
        agent: false,
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'sec-websocket-version': '13',
        },
      })
      req.on('upgrade', (r, s, h) => resolve({ res: r, socket: s, head: h }))
      req.on('response', (r) => reject(new Error(`no upgrade: ${r.statusCode}`)))
      req.on('error', reject)
      req.end()
    })
    expect(res.statusCode).toBe(101)
    expect(res.headers['x-backend']).toBe('ws')
    const up = ws.seen[0]!
    expect(up.url).toBe('/chat?room=1')
    expect(up.headers.upgrade).toBe('websocket')
    expect(up.headers.connection).toMatch(/upgrade/i)
    expect(up.headers['sec-websocket-key']).toBe('dGhlIHNhbXBsZSBub25jZQ==')
    expect(up.headers['x-forwarded-for']).toBe('127.0.0.1')

    // Raw bytes (any value, not just text) come back unchanged, in several rounds.
    const payload = randomBytes(256 * 1024)
    const received: Buffer[] = [head]
    socket.on('data', (d: Buffer) => received.push(d))
    for (let i = 0; i < 4; i++) socket.write(payload.subarray(i * 65536, (i + 1) * 65536))
    await waitFor('the echo', () => Buffer.concat(received).length >= payload.length, { timeout: 30_000 })
    expect(Buffer.concat(received).equals(payload)).toBe(true)

    expect((await status()).counters.upgrades).toBe(1)
    expect((await status()).backends[0]!.inflight).toBe(1)
    expect(counter(await metrics(), 'shoal_lb_upgrades_total')).toBe(1)
    socket.destroy()
    // Closing the client closes the tunnel and releases the backend.
    await waitFor('the tunnel released', async () => (await status()).backends[0]!.inflight === 0, {
      timeout: 3000,
    })
  })

  it('streams a large request body to the backend before the client has finished sending it, intact', async () => {
    const size = 16 * 1024 * 1024
    const data = randomBytes(size)
    let firstByteAt: (() => void) | undefined
    const firstByte = new Promise<void>((resolve) => {
      firstByteAt = resolve
    })
    const sink = await startBackend('sink', (req, res) => {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (c: Buffer) => {
        if (bytes === 0) firstByteAt!()
        bytes += c.length
        hash.update(c)
      })
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }))
      })
    })
    const { port } = await startProxy([sink.backend()])

    const answer = await call(port, {
      method: 'POST',
      path: '/upload',
      headers: { 'content-type': 'application/octet-stream', 'content-length': size },
      body: async (req) => {
        req.write(data.subarray(0, 64 * 1024))
        // A proxy that buffered the whole body would never let this resolve.
        await Promise.race([
          firstByte,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error('the backend got nothing before the body ended')), 3000),
          ),
        ])
        for (let off = 64 * 1024; off < size; off += 1024 * 1024) {
          const chunk = data.subarray(off, Math.min(size, off + 1024 * 1024))
          if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve))
        }
        req.end()
      },
    })
    expect(answer.status).toBe(200)
    expect(answer.json()).toEqual({ bytes: size, sha256: createHash('sha256').update(data).digest('hex') })
    expect(sink.seen[0]!.headers['content-length']).toBe(String(size))
  })

  it('echoes a chunked (no Content-Length) body of several MB back byte for byte', async () => {
    const echo = await startBackend('echo', (req, res) => {
      res.setHeader('content-type', 'application/octet-stream')
      req.pipe(res)
    })
    const { port } = await startProxy([echo.backend()])
    const data = randomBytes(4 * 1024 * 1024 + 17)
    const answer = await call(port, {
      method: 'PUT',
      headers: { 'transfer-encoding': 'chunked' },
      body: async (req) => {
        for (let off = 0; off < data.length; off += 256 * 1024) {
          if (!req.write(data.subarray(off, off + 256 * 1024)))
            await new Promise((resolve) => req.once('drain', resolve))
        }
        req.end()
      },
    })
    expect(answer.status).toBe(200)
    expect(answer.body.length).toBe(data.length)
    expect(answer.body.equals(data)).toBe(true)
    expect(echo.seen[0]!.headers['transfer-encoding']).toBe('chunked')
  })

  it('answers 504 ERR_GATEWAY_TIMEOUT when the backend never answers a POST', async () => {
    const hang = await startBackend('hang', (req) => req.resume())
    const { port, status } = await startProxy([hang.backend()], { requestTimeoutMs: 400 })
    const started = Date.now()
    const answer = await call(port, { method: 'POST', body: Buffer.from('{"x":1}') })
    const took = Date.now() - started
    expect(answer.status).toBe(504)
    expect(answer.headers['content-type']).toBe('application/json')
    expect(answer.json().error.code).toBe('ERR_GATEWAY_TIMEOUT')
    expect(took).toBeGreaterThanOrEqual(350)
    expect(took).toBeLessThan(3000)
    const s = await status()
    expect(s.counters.failed).toBe(1)
    expect(s.backends[0]!.counters.failures).toBe(1)
    // A timeout is not a refused connection: the backend stays in.
    expect(s.backends[0]!.ejected).toBe(false)
  })

  // A timeout means the backend has the request and is slow: it is not replayed elsewhere.
  it('answers 504 ERR_GATEWAY_TIMEOUT when the backend never answers a GET', async () => {
    const hang = await startBackend('hang', (req) => req.resume())
    const { port } = await startProxy([hang.backend()], { requestTimeoutMs: 400 })
    const answer = await call(port)
    expect(answer.json().error.code).toBe('ERR_GATEWAY_TIMEOUT')
    expect(answer.status).toBe(504)
  })

  it('answers 503 ERR_NO_BACKEND in JSON at once when no backend is ready, for requests and upgrades', async () => {
    const a = await startBackend('a')
    const { proxy, port, status, metrics } = await startProxy([])

    const none = await call(port, { path: '/x' })
    expect(none.status).toBe(503)
    expect(none.headers['content-type']).toBe('application/json')
    expect(none.json().error.code).toBe('ERR_NO_BACKEND')
    expect(none.json().error.message).toContain('web')

    // Draining and zero-weight backends take no new requests either.
    proxy.setBackends([a.backend(100, 'draining'), backendFor('b', a.port, 0)])
    const post = await call(port, { method: 'POST', body: Buffer.from('payload') })
    expect(post.status).toBe(503)
    expect(post.json().error.code).toBe('ERR_NO_BACKEND')
    expect(a.seen).toHaveLength(0)

    const upgrade = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        agent: false,
        headers: { connection: 'Upgrade', upgrade: 'websocket' },
      })
      req.on('upgrade', () => reject(new Error('upgraded with no backend')))
      req.on('response', (res) => {
        let body = ''
        res.on('data', (c: Buffer) => {
          body += c.toString()
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      req.end()
    })
    expect(upgrade.status).toBe(503)
    expect(JSON.parse(upgrade.body).error.code).toBe('ERR_NO_BACKEND')

    expect((await status()).counters.noBackend).toBe(2)
    expect(counter(await metrics(), 'shoal_lb_no_backend_total')).toBe(2)

    // Once one is ready, it is served.
    proxy.setBackends([a.backend()])
    expect((await call(port)).status).toBe(200)
  })

  it('answers 502 ERR_BAD_GATEWAY when every backend refuses, then 503 while they are ejected', async () => {
    const dead1 = await refusingPort()
    const dead2 = await refusingPort()
    const { port, status } = await startProxy([backendFor('d1', dead1), backendFor('d2', dead2)])
    const first = await call(port)
    expect(first.status).toBe(502)
    expect(first.json().error.code).toBe('ERR_BAD_GATEWAY')
    const s = await status()
    expect(s.backends.every((b) => b.ejected)).toBe(true)
    expect(s.backends.map((b) => b.counters.requests)).toEqual([1, 1])
    expect(s.counters.failed).toBe(1)
    const second = await call(port)
    expect(second.status).toBe(503)
    expect(second.json().error.code).toBe('ERR_NO_BACKEND')
  })

  it('ejects a backend that refuses connections for ejectMs, then tries it again', async () => {
    const live = await startBackend('live')
    const deadPort = await refusingPort()
    const { port, status, metrics } = await startProxy([backendFor('dead', deadPort), live.backend()], {
      ejectMs: 800,
    })

    // Round-robin picks `dead` first: refused, retried on `live`, `dead` ejected.
    const first = await call(port)
    expect(first.status).toBe(200)
    expect(backendOf(first)).toBe('live')
    let s = await status()
    const dead = () => s.backends.find((b) => b.key === 'dead/web')!
    expect(dead().ejected).toBe(true)
    expect(dead().counters.ejections).toBe(1)
    expect(dead().counters.failures).toBe(1)
    expect(s.counters.retries).toBe(1)
    expect(s.counters.failed).toBe(0)

    // While ejected, nothing is sent to it: every request goes straight to `live`.
    for (let i = 0; i < 6; i++) expect(backendOf(await call(port))).toBe('live')
    s = await status()
    expect(dead().counters.requests).toBe(1)
    expect(s.counters.retries).toBe(1)
    expect(live.seen).toHaveLength(7)
    const text = await metrics()
    expect(text).toContain('shoal_lb_backend_up{backend="dead/web",state="ejected"} 0')
    expect(counter(text, 'shoal_lb_retries_total')).toBe(1)

    // After ejectMs it is tried again (and, still refusing, ejected again).
    await new Promise((resolve) => setTimeout(resolve, 900))
    s = await status()
    expect(dead().ejected).toBe(false)
    for (let i = 0; i < 2; i++) expect((await call(port)).status).toBe(200)
    s = await status()
    expect(dead().counters.requests).toBe(2)
    expect(dead().counters.ejections).toBe(2)
    expect(dead().ejected).toBe(true)
  })

  // Bodies up to 256 KiB are read first so they can be replayed; larger ones stream through once.
  it('retries a POST whose connection was refused (the body was never sent) on another backend', async () => {
    const live = await startBackend('live', (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.end(Buffer.concat(chunks)))
    })
    const deadPort = await refusingPort()
    const { port, status } = await startProxy([backendFor('dead', deadPort), live.backend()])
    const body = randomBytes(100_000)
    const answer = await call(port, { method: 'POST', body })
    const s = await status()
    // The healthy backend must not pay for the dead one's refusal.
    expect(s.backends.find((b) => b.key === 'live/web')!.ejected).toBe(false)
    expect(answer.status).toBe(200)
    expect(answer.body.equals(body)).toBe(true)
    expect(live.seen).toHaveLength(1)
    expect(s.counters.retries).toBe(1)
  })

  it('retries a POST without a body whose connection was refused on another backend', async () => {
    const live = await startBackend('live')
    const deadPort = await refusingPort()
    const { port, status } = await startProxy([backendFor('dead', deadPort), live.backend()])
    const answer = await call(port, { method: 'POST', path: '/ping' })
    expect(answer.status).toBe(200)
    expect(backendOf(answer)).toBe('live')
    expect(live.seen[0]!.method).toBe('POST')
    const s = await status()
    expect(s.counters.retries).toBe(1)
    expect(s.backends.find((b) => b.key === 'dead/web')!.ejected).toBe(true)
    expect(s.backends.find((b) => b.key === 'live/web')!.ejected).toBe(false)
  })

  it('counts only retries that were actually sent to another backend', async () => {
    const { port, status } = await startProxy([
      backendFor('d1', await refusingPort()),
      backendFor('d2', await refusingPort()),
    ])
    expect((await call(port)).status).toBe(502)
    expect((await status()).counters.retries).toBe(1)
  })

  it('retries a GET on another backend when the first one drops the connection', async () => {
    const flaky = await startBackend('flaky', (req) => req.socket.destroy())
    const good = await startBackend('good')
    // Weights make the first pick `flaky`, deterministically.
    const { port, status } = await startProxy([flaky.backend(256), good.backend(1)])
    const answer = await call(port, { path: '/idempotent' })
    expect(answer.status).toBe(200)
    expect(backendOf(answer)).toBe('good')
    expect(flaky.seen).toHaveLength(1)
    expect(good.seen).toHaveLength(1)
    const s = await status()
    expect(s.counters.retries).toBe(1)
    // It answered the connection: no ejection for a reset after the request was sent.
    expect(s.backends.find((b) => b.key === 'flaky/web')!.ejected).toBe(false)
  })

  it('does not retry a POST that reached a backend: 502, and the other backend never sees it', async () => {
    const reached = await startBackend('reached', (req) => {
      req.resume()
      req.on('end', () => req.socket.destroy())
    })
    const other = await startBackend('other')
    const { port, status, metrics } = await startProxy([reached.backend(256), other.backend(1)])
    const answer = await call(port, { method: 'POST', path: '/orders', body: Buffer.from('{"buy":1}') })
    expect(answer.status).toBe(502)
    expect(answer.headers['content-type']).toBe('application/json')
    expect(answer.json().error.code).toBe('ERR_BAD_GATEWAY')
    expect(reached.seen).toHaveLength(1)
    expect(other.seen).toHaveLength(0)
    const s = await status()
    expect(s.counters.retries).toBe(0)
    expect(s.counters.failed).toBe(1)
    expect(s.backends.find((b) => b.key === 'reached/web')!.counters.failures).toBe(1)
    const text = await metrics()
    expect(counter(text, 'shoal_lb_retries_total')).toBe(0)
    expect(counter(text, 'shoal_lb_failed_total')).toBe(1)
  })
})

describe('the built-in proxy: per-version traffic figures', () => {
  it('counts requests, 5xx answers and the time to the response head by the version that answered', async () => {
    const stable = await startBackend('stable')
    let served = 0
    // Every other request fails, and each waits 120 ms before its head.
    const canary = await startBackend('canary', (req, res) => {
      req.resume()
      const fail = served++ % 2 === 1
      setTimeout(() => {
        res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' }).flushHeaders()
        // The body comes later than the head: the figures time the head.
        setTimeout(() => res.end(JSON.stringify({ backend: 'canary' })), 300)
      }, 120)
    })
    const { proxy, port } = await startProxy([
      stable.backend(100, 'ready', '1.0'),
      canary.backend(100, 'ready', '1.1'),
    ])
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) statuses.push((await call(port)).status)
    expect(statuses.filter((s) => s === 500)).toHaveLength(5)
    const byVersion = figures(proxy)
    expect(Object.keys(byVersion).sort()).toEqual(['1.0', '1.1'])
    expect(byVersion['1.0']).toMatchObject({ requests: 10, errors: 0, errorRate: 0 })
    expect(byVersion['1.1']).toMatchObject({ requests: 10, errors: 5, errorRate: 0.5 })
    // Buckets are 12 % wide: a bucket's middle is within 6 % of what fell in it.
    expect(byVersion['1.1']!.p50Ms).toBeGreaterThanOrEqual(120 * 0.94)
    expect(byVersion['1.1']!.p99Ms).toBeLessThan(300)
    expect(byVersion['1.0']!.p99Ms).toBeLessThan(100)
  })

  it('counts every failed attempt against its version, also when a retry on another backend answers', async () => {
    const good = await startBackend('good')
    const flaky = await startBackend('flaky', (req) => req.socket.destroy())
    const hang = await startBackend('hang', (req) => req.resume())
    const refusing = backendFor('refusing', await refusingPort(), 256, 'ready', '0.8')
    const { proxy, port, status } = await startProxy(
      [refusing, flaky.backend(128, 'ready', '0.9'), good.backend(1, 'ready', '1.0')],
      { requestTimeoutMs: 300 },
    )
    // Refused at `refusing`, reset at `flaky`, answered by `good`: one request, three attempts.
    const answer = await call(port)
    expect(answer.status).toBe(200)
    expect(backendOf(answer)).toBe('good')
    expect((await status()).counters.retries).toBe(2)
    expect(figures(proxy)).toMatchObject({
      '0.8': { requests: 1, errors: 1 },
      '0.9': { requests: 1, errors: 1 },
      '1.0': { requests: 1, errors: 0 },
    })

    // A timeout is a failed request of its version too, timed to when the proxy gave up.
    proxy.setBackends([hang.backend(100, 'ready', '2.0')])
    expect((await call(port)).status).toBe(504)
    const timedOut = figures(proxy)['2.0']!
    expect(timedOut).toMatchObject({ requests: 1, errors: 1 })
    expect(timedOut.p50Ms).toBeGreaterThanOrEqual(300 * 0.94)
  })

  it('counts neither a request whose client went away nor a WebSocket upgrade', async () => {
    const hang = await startBackend('hang', (req) => req.resume())
    const ws = await startBackend('ws', undefined, (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      socket.on('error', () => {})
    })
    const { proxy, port, status } = await startProxy([hang.backend(100, 'ready', '1.0')])

    const req = request({ host: '127.0.0.1', port, path: '/long', agent: false })
    req.on('error', () => {})
    req.end()
    await waitFor('the request at the backend', () => hang.seen.length === 1)
    req.destroy()
    await waitFor('the attempt released', async () => (await status()).backends[0]!.inflight === 0, {
      timeout: 3000,
    })
    expect((await status()).counters.failed).toBe(0)

    proxy.setBackends([ws.backend(100, 'ready', '1.0')])
    const upgraded = await new Promise<Duplex>((resolve, reject) => {
      const up = request({
        host: '127.0.0.1',
        port,
        agent: false,
        headers: { connection: 'Upgrade', upgrade: 'websocket' },
      })
      up.on('upgrade', (_res, socket) => resolve(socket))
      up.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)))
      up.on('error', reject)
      up.end()
    })
    upgraded.destroy()
    expect((await status()).counters.upgrades).toBe(1)
    expect(figures(proxy)).toEqual({})
  })
})

describe('the built-in proxy: Expect', () => {
  // curl sends `Expect: 100-continue` with every body over 1 KiB.
  it('answers 100 Continue itself and forwards the body without the Expect header', async () => {
    const echo = await startBackend('echo', (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.end(Buffer.concat(chunks)))
    })
    const { proxy, port } = await startProxy([echo.backend(100, 'ready', '1.0')])
    const body = randomBytes(4096)
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          agent: false,
          headers: { expect: '100-continue', 'content-length': body.length },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const all = Buffer.concat(chunks)
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: all,
              json: () => JSON.parse(`${all}`),
            })
          })
        },
      )
      req.on('continue', () => req.end(body))
      req.on('error', reject)
      req.flushHeaders()
    })
    expect(answer.status).toBe(200)
    expect(answer.body.equals(body)).toBe(true)
    expect(echo.seen[0]!.headers.expect).toBeUndefined()
    expect(figures(proxy)['1.0']).toMatchObject({ requests: 1, errors: 0 })
  })
})
