// Educa catalog: the list of courses, served as JSON. Runs with the agent's own
// Node.js and nothing else (no npm dependencies), so it only uses node: modules.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'

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

const release = readRelease()
const version = process.env.SHOAL_VERSION ?? release.version
const node = process.env.SHOAL_NODE_ID ?? null

const COURSES = [
  { id: 'p2p-101', title: 'Peer-to-peer networks', level: 'beginner' },
  { id: 'gossip', title: 'Gossip protocols', level: 'intermediate' },
  { id: 'swim', title: 'Failure detection with SWIM', level: 'advanced' },
]
const COURSES_1_1 = [...COURSES, { id: 'rollouts', title: 'Rolling upgrades', level: 'intermediate' }]

// 1.0 has no levels; 1.1 adds them and one more course.
const courses = release.features.includes('course-levels')
  ? COURSES_1_1
  : COURSES.map(({ id, title }) => ({ id, title }))

let stopping = false

function send(res, status, body) {
  const text = JSON.stringify(body)
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }
  // Once stopping, a kept-alive connection would hold server.close() open until it times out.
  if (stopping) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(text)
}

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' })
  if (path === '/healthz') return send(res, 200, { ok: true })
  if (path === '/courses') return send(res, 200, { component: 'catalog', version, node, courses })
  send(res, 404, { error: 'not found' })
})

const host = process.env.HOST ?? '127.0.0.1'
server.listen(Number(process.env.PORT ?? 0), host, () => {
  const { port } = server.address()
  console.log(`catalog ${release.version} listening on http://${host}:${port}`)
})

// Stop accepting, let requests in flight finish, then exit 0. The agent sends
// SIGKILL after the descriptor's stopTimeoutMs if this takes too long.
function shutdown() {
  if (stopping) return
  stopping = true
  server.close(() => process.exit(0))
  server.closeIdleConnections()
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
