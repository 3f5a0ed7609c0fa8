// Educa web: the front page. It finds the catalog through the agent's service
// API and degrades (still 200) when no catalog answers. Runs with the agent's
// own Node.js and nothing else (no npm dependencies): node: modules and fetch.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'

/** Each call to a catalog endpoint, and the one-off service lookup, gives up after this. */
const CATALOG_TIMEOUT_MS = 1000
/** The events stream reconnects after this, doubling up to RECONNECT_MAX_MS while it keeps failing. */
const RECONNECT_MIN_MS = 250
const RECONNECT_MAX_MS = 5000

/**
 * What this package is: written by examples/educa/build.mjs next to this file.
 * It decides the behaviour; SHOAL_VERSION (set by the agent) is only reported.
 */
function readRelease() {
  try {
    const release = JSON.parse(readFileSync(new URL('./release.json', import.meta.url), 'utf8'))
    return {
      version: typeof release.version === 'string' ? release.version : '1.0',
      features: Array.isArray(release.features) ? release.features : [],
    }
  } catch {
    return { version: '1.0', features: [] }
  }
}

/** Parses JSON that may be missing or broken; a sample app should start anyway. */
function parseObject(text, what) {
  if (text == null || text === '') return {}
  try {
    const value = JSON.parse(text)
    return value != null && typeof value === 'object' && !Array.isArray(value) ? value : {}
  } catch (err) {
    console.error(`ignoring ${what}: ${err.message}`)
    return {}
  }
}

function readConfigFile(name) {
  const dir = process.env.SHOAL_CONFIG_DIR
  if (dir == null || dir === '') return {}
  try {
    return parseObject(readFileSync(join(dir, name), 'utf8'), name)
  } catch {
    return {}
  }
}

const release = readRelease()
const theme = release.features.includes('ocean-theme') ? 'ocean' : null
const listTitles = release.features.includes('course-titles')
const version = process.env.SHOAL_VERSION ?? release.version
const node = process.env.SHOAL_NODE_ID ?? null
const config = parseObject(process.env.SHOAL_CONFIG, 'SHOAL_CONFIG')
const greeting = typeof config.greeting === 'string' ? config.greeting : 'Welcome to Educa'
const site = readConfigFile('conf/educa.json')
const title = typeof site.title === 'string' ? site.title : 'Educa'

const api = process.env.SHOAL_API?.replace(/\/+$/, '')
// The agent gives its components a token when its API requires one.
const auth = process.env.SHOAL_TOKEN ? { authorization: `Bearer ${process.env.SHOAL_TOKEN}` } : {}
/** Ready catalog endpoints, local ones first, as the agent last told us; null until it has. */
let endpoints = null
/** Aborts the events stream when the process stops. */
const stopped = new AbortController()

function setEndpoints(body) {
  if (body == null || !Array.isArray(body.endpoints)) return
  endpoints = body.endpoints.filter((e) => e != null && typeof e.endpoint === 'string')
}

/**
 * Follows `GET /api/services/catalog/events` (Server-Sent Events): the agent sends
 * `event: endpoints` once at connect and on every change. Reconnects with a
 * backoff when the stream drops; the last list is kept meanwhile, since the
 * catalogs may still answer while the agent's API restarts.
 */
async function followCatalog() {
  let delay = RECONNECT_MIN_MS
  while (!stopped.signal.aborted) {
    try {
      const res = await fetch(`${api}/api/services/catalog/events`, {
        headers: { accept: 'text/event-stream', ...auth },
        signal: stopped.signal,
      })
      if (!res.ok || res.body == null) throw new Error(`HTTP ${res.status}`)
      const decoder = new TextDecoder()
      let buffer = ''
      for await (const chunk of res.body) {
        delay = RECONNECT_MIN_MS
        // Events end with a blank line; CRLF line ends are allowed, so drop the CRs.
        buffer += decoder.decode(chunk, { stream: true }).replaceAll('\r', '')
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          onEvent(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
        }
      }
    } catch (err) {
      if (stopped.signal.aborted) return
      console.error(`catalog events: ${err.cause?.message ?? err.message}; retrying in ${delay} ms`)
    }
    await new Promise((resolve) => setTimeout(resolve, delay))
    delay = Math.min(delay * 2, RECONNECT_MAX_MS)
  }
}

function onEvent(block) {
  let event = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  if (event !== 'endpoints' || data.length === 0) return
  try {
    setEndpoints(JSON.parse(data.join('\n')))
  } catch (err) {
    console.error(`catalog events: bad data: ${err.message}`)
  }
}

/** Before the stream has said anything (just started, or the agent is slow), ask once. */
async function lookUpCatalog() {
  try {
    const res = await fetch(`${api}/api/services/catalog`, {
      headers: auth,
      signal: AbortSignal.timeout(CATALOG_TIMEOUT_MS),
    })
    if (res.ok) setEndpoints(await res.json())
  } catch {
    // The answer below says "unavailable"; the stream will catch up.
  }
}

/** The catalog's answer from the first endpoint that gives one, local ones first. */
async function askCatalog() {
  if (api == null) return { error: 'unavailable' }
  if (endpoints == null) await lookUpCatalog()
  for (const { endpoint } of endpoints ?? []) {
    try {
      const res = await fetch(`${endpoint.replace(/\/+$/, '')}/courses`, {
        signal: AbortSignal.timeout(CATALOG_TIMEOUT_MS),
      })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const body = await res.json()
      const courses = Array.isArray(body.courses) ? body.courses : []
      return {
        node: body.node ?? null,
        version: body.version ?? null,
        courses: listTitles ? courses.map((c) => c.title) : courses.length,
        endpoint,
      }
    } catch (err) {
      console.error(`catalog at ${endpoint}: ${err.cause?.message ?? err.message}; trying the next one`)
    }
  }
  return { error: 'unavailable' }
}

let stopping = false

function send(res, status, body) {
  const text = JSON.stringify(body)
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }
  // Once stopping, a kept-alive connection would hold server.close() open until it times out.
  if (stopping) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(text)
}

/** Operators (and tests) can make the health check fail, to see the node leave rotation. */
let healthy = true

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const path = url.pathname
  if (req.method === 'POST' && path === '/admin/health') {
    healthy = url.searchParams.get('ok') !== 'false'
    return send(res, 200, { healthy })
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' })
  if (path === '/healthz') return healthy ? send(res, 200, { ok: true }) : send(res, 503, { ok: false })
  if (path === '/slow') {
    // A request that takes a while: what a drain must let finish.
    const ms = Math.min(10_000, Number(url.searchParams.get('ms') ?? 500) || 0)
    await new Promise((resolve) => setTimeout(resolve, ms))
    return send(res, 200, { app: 'educa', version, node, sleptMs: ms })
  }
  if (path !== '/') return send(res, 404, { error: 'not found' })
  const catalog = await askCatalog()
  const page = { app: 'educa', version, node, title, greeting }
  if (theme != null) page.theme = theme
  send(res, 200, { ...page, catalog })
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err)
    if (!res.headersSent) send(res, 500, { error: 'internal error' })
  })
})

const host = process.env.HOST ?? '127.0.0.1'
server.listen(Number(process.env.PORT ?? 0), host, () => {
  const { port } = server.address()
  console.log(`web ${release.version} listening on http://${host}:${port}`)
})

if (api == null) console.error('SHOAL_API is not set: running without a catalog')
else void followCatalog()

// Stop accepting, let requests in flight finish, then exit 0. The agent sends
// SIGKILL after the descriptor's stopTimeoutMs if this takes too long.
function shutdown() {
  if (stopping) return
  stopping = true
  stopped.abort()
  server.close(() => process.exit(0))
  server.closeIdleConnections()
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
