/**
 * Per-version traffic figures from HAProxy's own counters: the driver reads
 * `show stat` on every pass and records what each `shoal-*` server did since
 * the previous one under the version of the backend it serves.
 *
 * The first part checks the bookkeeping on hand-made readings. The second runs a
 * real HAProxy (test/helpers/haproxy.ts: retries with redispatch, as an operator
 * would set it up) in front of node:http apps of different versions, sends
 * requests through it, and compares the recorded figures with what the clients
 * saw. Skipped (with the reason printed) where /usr/sbin/haproxy is missing.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, get, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Backend } from '../../src/loadbalancer/backends.js'
import {
  HaproxyDriver,
  HaproxyTrafficMeter,
  serverName,
  trafficBetween,
} from '../../src/loadbalancer/haproxy.js'
import {
  HaproxyRuntime,
  type ServerCounters,
  type ServerStatRow,
  splitCsv,
} from '../../src/loadbalancer/haproxy-runtime.js'
import { figuresOf } from '../../src/loadbalancer/traffic-figures.js'
import { TrafficRecorder } from '../../src/loadbalancer/traffic-window.js'
import { createLogger } from '../../src/shared/logger.js'
import {
  HAPROXY,
  haproxyAvailable,
  type RunningHaproxy,
  runHaproxy,
  stopHaproxy,
} from '../helpers/haproxy.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const counters = (over: Partial<ServerCounters> = {}): ServerCounters => ({
  responses: 0,
  hrsp5xx: 0,
  econ: 0,
  eresp: 0,
  srvAbrt: 0,
  ...over,
})
const row = (name: string, over: Partial<ServerCounters> = {}, latencyMs = 10): ServerStatRow => ({
  name,
  scur: 0,
  status: 'UP',
  counters: counters(over),
  latencyMs,
})

/** Requests and errors per version over everything `recorder` holds. */
function totals(recorder: TrafficRecorder): Record<string, { requests: number; errors: number }> {
  const out: Record<string, { requests: number; errors: number }> = {}
  for (const [version, seconds] of Object.entries(recorder.seconds(0, Math.floor(Date.now() / 1000) + 1))) {
    const f = figuresOf(seconds)
    out[version] = { requests: f.requests, errors: f.errors }
  }
  return out
}

describe('traffic from HAProxy counters', () => {
  it('counts answered requests and those with no answer; errors are 5xx, no connection and bad responses', () => {
    const before = counters({ responses: 100, hrsp5xx: 5, econ: 1, eresp: 2, srvAbrt: 1 })
    // +20 responses (3 of them 5xx), +2 failed connects, +4 response errors of which 1 was cut short after its head.
    const after = counters({ responses: 120, hrsp5xx: 8, econ: 3, eresp: 6, srvAbrt: 2 })
    expect(trafficBetween(before, after)).toEqual({ requests: 20 + 2 + 3, errors: 3 + 2 + 4 })
    expect(trafficBetween(after, after)).toEqual({ requests: 0, errors: 0 })
    // A 5xx cut short is in hrsp_5xx and eresp: one request, one error.
    expect(trafficBetween(counters(), counters({ responses: 1, hrsp5xx: 1, eresp: 1, srvAbrt: 1 }))).toEqual({
      requests: 1,
      errors: 1,
    })
  })

  it('takes counters that went down as restarted from zero', () => {
    const before = counters({ responses: 500, hrsp5xx: 10 })
    expect(trafficBetween(before, counters({ responses: 7, hrsp5xx: 20 }))).toEqual({
      requests: 7,
      errors: 7,
    })
    expect(trafficBetween(before, counters({ responses: 7, hrsp5xx: 2 }))).toEqual({ requests: 7, errors: 2 })
  })

  it('records each server under the version it served; first sight is a baseline, an added server starts at zero', () => {
    let now = 1_000_000_000
    const recorder = new TrafficRecorder(60, () => now)
    const meter = new HaproxyTrafficMeter(recorder)
    const versions = new Map([
      ['shoal-a', '1.0'],
      ['shoal-b', '1.1'],
    ])
    const versionOf = (name: string) => versions.get(name)

    meter.read([row('shoal-a', { responses: 1000 }), row('shoal-x', { responses: 50 })], versionOf)
    expect(recorder.seconds(0, now / 1000 + 1)).toEqual({}) // baselines only
    meter.added('shoal-b')
    now += 2000
    meter.read(
      [
        row('shoal-a', { responses: 1010, hrsp5xx: 1 }, 4),
        row('shoal-b', { responses: 10, hrsp5xx: 5, econ: 2 }, 40),
        row('shoal-x', { responses: 60 }), // not ours: no version
      ],
      versionOf,
    )
    const seconds = recorder.seconds(0, now / 1000 + 1)
    expect(Object.keys(seconds).sort()).toEqual(['1.0', '1.1'])
    expect(figuresOf(seconds['1.0']!)).toMatchObject({ requests: 10, errors: 1 })
    expect(figuresOf(seconds['1.1']!)).toMatchObject({ requests: 12, errors: 7 })
    expect(figuresOf(seconds['1.1']!).p50Ms).toBeGreaterThan(35)
    expect(figuresOf(seconds['1.1']!).p50Ms).toBeLessThan(45)

    // shoal-a now serves 1.2; it vanished and came back (HAProxy restarted): a baseline again.
    versions.set('shoal-a', '1.2')
    now += 2000
    meter.read([row('shoal-b', { responses: 10, hrsp5xx: 5, econ: 2 })], versionOf)
    now += 2000
    meter.read(
      [row('shoal-a', { responses: 3 }), row('shoal-b', { responses: 10, hrsp5xx: 5, econ: 2 })],
      versionOf,
    )
    now += 2000
    meter.read(
      [row('shoal-a', { responses: 8 }), row('shoal-b', { responses: 10, hrsp5xx: 5, econ: 2 })],
      versionOf,
    )
    const later = recorder.seconds(0, now / 1000 + 1)
    expect(figuresOf(later['1.2']!)).toMatchObject({ requests: 5, errors: 0 })
    expect(figuresOf(later['1.1']!)).toMatchObject({ requests: 12, errors: 7 }) // nothing new
  })

  it("reads HAProxy's CSV with quoted fields", () => {
    expect(splitCsv('a,"b,c",,"say ""hi""",d')).toEqual(['a', 'b,c', '', 'say "hi"', 'd'])
    expect(splitCsv('a,b,')).toEqual(['a', 'b', ''])
  })
})

const unavailable = skipReason(
  import.meta.url,
  'HAProxy traffic figures against a real HAProxy',
  haproxyAvailable ? null : `${HAPROXY} is missing; install HAProxy ≥ 2.6 (apt-get install haproxy)`,
)

const RESYNC_MS = 200

/**
 * A node:http app of one version. `fail` decides, from the app's request count,
 * whether a request is answered 500; `delayMs` holds every answer. The version
 * goes out in a header, so the client knows which version answered.
 */
interface App {
  version: string
  port: number
  server: Server
}

async function startApp(
  version: string,
  delayMs: number,
  fail: (n: number) => boolean,
  how: 'status' | 'reset' = 'status',
): Promise<App> {
  let n = 0
  const server = createServer((_req, res) => {
    const failed = fail(n++)
    if (failed && how === 'reset') {
      res.socket?.destroy() // no answer at all: HAProxy answers 502 itself
      return
    }
    setTimeout(() => {
      res.statusCode = failed ? 500 : 200
      res.setHeader('x-version', version)
      res.end(failed ? 'failed' : 'ok')
    }, delayMs)
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  return { version, port: (server.address() as AddressInfo).port, server }
}

/** A GET through HAProxy on a fresh connection: the status and the version that answered ('' for HAProxy's own). */
function request(port: number): Promise<{ status: number; version: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume()
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-version'] ?? '') }),
      )
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** What the clients saw: requests and 5xx per answering version ('' for answers from HAProxy itself). */
type Seen = Record<string, { requests: number; errors: number }>

/** `n` requests, `concurrency` at a time; adds what the clients saw to `seen`. */
async function load(port: number, n: number, seen: Seen, concurrency = 4): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++
      const { status, version } = await request(port)
      const into = seen[version] ?? { requests: 0, errors: 0 }
      seen[version] = into
      into.requests++
      if (status >= 500) into.errors++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

describe.skipIf(unavailable != null)('traffic figures from a real HAProxy 2.6', () => {
  let dir: string
  let haproxy: RunningHaproxy | undefined
  let socket: string
  let port: number
  let driver: HaproxyDriver
  let recorder: TrafficRecorder
  const apps: App[] = []
  const logLines: string[] = []
  const logger = createLogger({ level: 'debug', write: (line) => logLines.push(line) })

  const backend = (app: App, version = app.version): Backend => ({
    key: `12D3KooWTrafficNode${app.port}/web`,
    node: `12D3KooWTrafficNode${app.port}`,
    component: 'web',
    version,
    endpoint: `http://127.0.0.1:${app.port}`,
    host: '127.0.0.1',
    port: app.port,
    state: 'ready',
    weight: 100,
  })

  /** Waits until the recorded totals are `expected` (a pass has read the counters since). */
  const recorded = (expected: Seen) =>
    waitFor(
      `the recorded figures to reach ${JSON.stringify(expected)} (now ${JSON.stringify(totals(recorder))})`,
      () => JSON.stringify(sorted(totals(recorder))) === JSON.stringify(sorted(expected)),
      { timeout: 10 * RESYNC_MS + 5_000 },
    )

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-haproxy-traffic-'))
    ;({ haproxy, socket, port } = await runHaproxy(dir))
    apps.push(await startApp('1.0', 2, () => false))
    // 1.1 answers every fourth request with 500, and every answer 40 ms late.
    apps.push(await startApp('1.1', 40, (n) => n % 4 === 3))
    recorder = new TrafficRecorder()
    driver = new HaproxyDriver(
      { socket, backend: 'app', resyncMs: RESYNC_MS, removeTimeoutMs: 500 },
      logger,
      recorder,
    )
  })

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`driver log:\n${logLines.join('\n')}`)
    logLines.length = 0
  })

  afterAll(async () => {
    await driver?.stop()
    await stopHaproxy(haproxy)
    for (const app of apps) {
      app.server.closeAllConnections()
      await new Promise((done) => app.server.close(done))
    }
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('records requests and errors per version as the clients saw them, and the slower version as slower', async () => {
    const [good, bad] = apps as [App, App]
    await driver.start()
    await driver.sync([backend(good), backend(bad)])

    const seen: Seen = {}
    await load(port, 200, seen)
    expect(seen['1.0']?.requests).toBeGreaterThan(50) // round robin: both versions served
    expect(seen['1.1']?.errors).toBeGreaterThan(10)
    expect(seen['1.0']?.errors).toBe(0)
    await recorded(seen)

    const now = Math.floor(Date.now() / 1000)
    const figures = Object.fromEntries(
      Object.entries(recorder.seconds(0, now + 1)).map(([v, s]) => [v, figuresOf(s)]),
    )
    expect(figures['1.1']!.errorRate).toBeCloseTo(seen['1.1']!.errors / seen['1.1']!.requests, 5)
    // Latency is HAProxy's average per server and pass: 1.1 answers 40 ms late, 1.0 at once.
    expect(figures['1.1']!.p50Ms).toBeGreaterThanOrEqual(35)
    expect(figures['1.1']!.p50Ms).toBeLessThan(400)
    expect(figures['1.0']!.p99Ms).toBeLessThan(figures['1.1']!.p50Ms!)
  })

  it('connection failures HAProxy retried elsewhere are no errors; once none is left they count as errors', async () => {
    const [good] = apps as [App, App]
    const closed = await startApp('1.2', 0, () => false)
    const deadPort = closed.port
    await new Promise((done) => closed.server.close(done))
    const dead = { ...closed, port: deadPort }
    const before = totals(recorder)

    // The dead server is retried on 1.0 (redispatch): clients see only 200s, 1.2 records nothing.
    await driver.sync([backend(good), backend(dead)])
    const seen: Seen = {}
    await load(port, 20, seen)
    expect(seen).toEqual({ '1.0': { requests: 20, errors: 0 } })
    await recorded(add(before, seen))

    // Only the dead server: every request ends on it with a 503 once the retries (1 s apart) are spent.
    await driver.sync([backend(dead)])
    const alone: Seen = {}
    await load(port, 4, alone, 4)
    expect(alone).toEqual({ '': { requests: 4, errors: 4 } })
    await recorded(add(add(before, seen), { '1.2': alone['']! }))
  })

  it('a server that closes the connection instead of answering: the 502 counts as an error of its version', async () => {
    const [good] = apps as [App, App]
    const resetter = await startApp('1.4', 0, (n) => n % 3 === 0, 'reset')
    apps.push(resetter)
    const before = totals(recorder)
    await driver.sync([backend(good), backend(resetter)])
    const seen: Seen = {}
    await load(port, 30, seen)
    // HAProxy's own 502 carries no version header; the figures put it on the server that failed.
    expect(seen['']?.errors).toBeGreaterThan(0)
    const failed = seen['']!
    const answered = seen['1.4'] ?? { requests: 0, errors: 0 }
    await recorded(
      add(before, {
        '1.0': seen['1.0']!,
        '1.4': { requests: answered.requests + failed.requests, errors: failed.errors },
      }),
    )
  })

  it('a server whose backend changes version in place, is removed and comes back, or has its counters cleared', async () => {
    const [good, bad] = apps as [App, App]
    await driver.sync([backend(good), backend(bad)])
    let expected = totals(recorder)

    // The same server (same key) now serves 1.3: what it answers from the next pass on counts for 1.3.
    await driver.sync([backend(good), backend(bad, '1.3')])
    let seen: Seen = {}
    await load(port, 40, seen)
    expected = add(expected, { '1.0': seen['1.0']!, '1.3': seen['1.1']! })
    await recorded(expected)

    // Removed (deleted once idle), then added again: HAProxy's counters start over, nothing is lost or doubled.
    await driver.sync([backend(good)])
    await waitFor('the removed server to be deleted', () => driver.status().servers.length === 1)
    await driver.sync([backend(good), backend(bad)])
    seen = {}
    await load(port, 40, seen)
    expected = add(expected, seen)
    await recorded(expected)

    // `clear counters all` puts every counter back to zero: the next reading counts from there.
    const runtime = new HaproxyRuntime(socket, 1_000)
    expect((await runtime.command('clear counters all')).trim()).toBe('')
    seen = {}
    await load(port, 40, seen)
    expected = add(expected, seen)
    await recorded(expected)
    expect(
      driver
        .status()
        .servers.map((s) => s.name)
        .sort(),
    ).toEqual([serverName(backend(good).key), serverName(backend(bad).key)].sort())
  })

  it('after HAProxy restarts, the re-added servers count from zero', async () => {
    let expected = totals(recorder)
    await stopHaproxy(haproxy, 'SIGKILL')
    ;({ haproxy, port } = await runHaproxy(dir)) // same socket path, a new frontend port
    // driver.status() still lists the servers from before; ask the new HAProxy itself.
    const runtime = new HaproxyRuntime(socket, 1_000)
    await waitFor(
      'the driver to add the servers to the restarted HAProxy',
      async () =>
        (await runtime.serversState('app')).filter((r) => r.name.startsWith('shoal-') && r.adminState === 0)
          .length === 2,
      { timeout: 10 * RESYNC_MS + 5_000 },
    )
    const seen: Seen = {}
    await load(port, 40, seen)
    expected = add(expected, seen)
    await recorded(expected)
    expect(seen['1.0']!.requests + seen['1.1']!.requests).toBe(40)
  })
})

function sorted(s: Seen): Seen {
  return Object.fromEntries(
    Object.entries(s)
      .filter(([, v]) => v.requests > 0)
      .sort(([a], [b]) => a.localeCompare(b)),
  )
}

function add(a: Seen, b: Seen): Seen {
  const out: Seen = structuredClone(a)
  for (const [version, v] of Object.entries(b)) {
    const into = out[version] ?? { requests: 0, errors: 0 }
    out[version] = into
    into.requests += v.requests
    into.errors += v.errors
  }
  return out
}
