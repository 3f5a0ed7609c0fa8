// Educa web, bad versions: the entry point of 1.2 and 1.2-slow (their descriptor
// starts faults.mjs, not server.mjs). It wraps the request handler of the ordinary
// web server (./server.mjs, unchanged, packed beside it) so that the health check
// and the admin route stay right while real requests go wrong:
//   feature `fail-share` (1.2): a share of real requests answers 500 at once,
//     config.failureRate (0 to 1, default 0.1);
//   feature `slow` (1.2-slow): every real request answers correctly but later,
//     config.delayMs (0 to 60000, default 150).
// Faults are deterministic: with a share of 0.1, real requests 10, 20, 30, … fail,
// counted in arrival order, so tests and benchmarks are reproducible.
// Keeping this out of server.mjs keeps the 1.0 and 1.1 packages byte-identical.

import { readFileSync } from 'node:fs'
import http from 'node:http'
import { syncBuiltinESMExports } from 'node:module'

const DEFAULT_FAILURE_RATE = 0.1
const DEFAULT_DELAY_MS = 150
const MAX_DELAY_MS = 60_000
/** Paths that are not traffic: the agent's and the load balancers' health check, and the operators' switch. */
const UNTOUCHED = new Set(['/healthz', '/admin/health'])

function readFeatures() {
  try {
    const release = JSON.parse(readFileSync(new URL('./release.json', import.meta.url), 'utf8'))
    return Array.isArray(release.features) ? release.features : []
  } catch {
    return []
  }
}

function readConfig() {
  try {
    const value = JSON.parse(process.env.SHOAL_CONFIG ?? '{}')
    return value != null && typeof value === 'object' && !Array.isArray(value) ? value : {}
  } catch {
    return {} // server.mjs says so on stderr
  }
}

/** config[name] when it is a number within [min, max]; otherwise `fallback`, with a note when it was set. */
function configNumber(config, name, min, max, fallback) {
  const value = config[name]
  if (value == null) return fallback
  if (typeof value === 'number' && value >= min && value <= max) return value
  console.error(`ignoring config.${name}=${JSON.stringify(value)}: not a number from ${min} to ${max}`)
  return fallback
}

const features = readFeatures()
const config = readConfig()
/** The share of real requests to fail, in millionths: integer sums keep the pattern exact. */
const failurePpm = features.includes('fail-share')
  ? Math.round(configNumber(config, 'failureRate', 0, 1, DEFAULT_FAILURE_RATE) * 1e6)
  : 0
const delayMs = features.includes('slow')
  ? Math.round(configNumber(config, 'delayMs', 0, MAX_DELAY_MS, DEFAULT_DELAY_MS))
  : 0

/** Real requests received so far, in arrival order. */
let realRequests = 0
let stopping = false
process.once('SIGTERM', () => {
  stopping = true
})
process.once('SIGINT', () => {
  stopping = true
})

/** Request n fails when floor(n × share) steps up: with 0.1, requests 10, 20, …; with 0.25, 4, 8, … */
function nextFails() {
  const n = ++realRequests
  return Math.floor((n * failurePpm) / 1e6) > Math.floor(((n - 1) * failurePpm) / 1e6)
}

function fail(res) {
  const text = JSON.stringify({ error: 'injected failure', version: process.env.SHOAL_VERSION ?? null })
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }
  if (stopping) headers.connection = 'close'
  res.writeHead(500, headers)
  res.end(text)
}

function withFaults(handler) {
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    if (UNTOUCHED.has(path)) return handler(req, res)
    if (failurePpm > 0 && nextFails()) return fail(res)
    if (delayMs > 0) setTimeout(() => handler(req, res), delayMs)
    else handler(req, res)
  }
}

// server.mjs imports createServer from node:http: hand it one that wraps its handler.
const createServer = http.createServer
http.createServer = (...args) => {
  const last = args.length - 1
  if (typeof args[last] === 'function') args[last] = withFaults(args[last])
  return createServer(...args)
}
syncBuiltinESMExports()

const bad = [
  failurePpm > 0 ? `fails ${failurePpm / 1e4} % of real requests` : null,
  delayMs > 0 ? `answers real requests ${delayMs} ms late` : null,
].filter((note) => note != null)
if (bad.length > 0) console.log(`web: bad version on purpose: ${bad.join(', ')}`)

await import('./server.mjs')
