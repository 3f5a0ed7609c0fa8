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
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Backend } from '../../src/loadbalancer/backends.js'
import { HaproxyDriver, HaproxyTrafficMeter, serverName, trafficOf } from '../../src/loadbalancer/haproxy.js'
import {
  HaproxyRuntime,
  type ServerCounters,
  type ServerStatRow,
  splitCsv,
} from '../../src/loadbalancer/haproxy-runtime.js'
import { figuresOf, TrafficRecorder } from '../../src/shared/index.js'
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
  stot: 0,
  wretr: 0,
  wredis: 0,
  ok: 0,
  hrsp5xx: 0,
  econ: 0,
  eresp: 0,
  srvAbrt: 0,
  otherEnds: 0,
  ...over,
})
const row = (name: string, over: Partial<ServerCounters> = {}, scur = 0, latencyMs = 10): ServerStatRow => ({
  name,
  scur,
  status: 'UP',
  counters: counters(over),
  latencyMs,
})
/** One server's counters after `n` plain answers, `failed` of them 5xx. */
const answered = (n: number, failed = 0): Partial<ServerCounters> => ({
  stot: n,
  ok: n - failed,
  hrsp5xx: failed,
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
  it('counts each request once, where it ended, and what the client saw fail', () => {
    const of = (over: Partial<ServerCounters>, scur = 0) => trafficOf(counters(over), scur)
    expect(of(answered(10, 3))).toEqual({ requests: 10, errors: 3 })
    // Two requests, three attempts each on a dead server: 503 once retries ran out.
    expect(of({ stot: 6, wretr: 4, econ: 2 })).toEqual({ requests: 2, errors: 2 })
    // Ten attempts sent on to another server (redispatch): none ended here.
    expect(of({ stot: 10, wredis: 10 })).toEqual({ requests: 0, errors: 0 })
    // Two still running: not ended yet.
    expect(of(answered(5), 2)).toEqual({ requests: 3, errors: 0 })
    // 100 Continue then 200, and a 101 upgrade (hrsp_1xx: 2): one request each, no error.
    expect(of({ stot: 2, ok: 1, otherEnds: 2 })).toEqual({ requests: 2, errors: 0 })
    // A client that gave up (cli_abrt) is no error; a failed attempt waiting to be retried has not ended.
    expect(of({ stot: 1, otherEnds: 1 })).toEqual({ requests: 1, errors: 0 })
    expect(of({ stot: 1 })).toEqual({ requests: 0, errors: 0 })
    // A reset before any answer (502), and a 504: eresp.
    expect(of({ stot: 2, eresp: 2 })).toEqual({ requests: 2, errors: 2 })
    // A 200 cut short: its head is good, srv_abrt and eresp say otherwise.
    expect(of({ stot: 1, ok: 1, eresp: 1, srvAbrt: 1 })).toEqual({ requests: 1, errors: 1 })
    // An upload the server aborted, counted twice in eresp, or once in eresp and srv_abrt.
    expect(of({ stot: 1, eresp: 2 })).toEqual({ requests: 1, errors: 1 })
    expect(of({ stot: 1, eresp: 1, srvAbrt: 1 })).toEqual({ requests: 1, errors: 1 })
    // A 500 cut short: still one error.
    expect(of({ stot: 1, hrsp5xx: 1, eresp: 1, srvAbrt: 1 })).toEqual({ requests: 1, errors: 1 })
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
    const recorded = () =>
      Object.fromEntries(
        Object.entries(recorder.seconds(0, now / 1000 + 1)).map(([v, list]) => {
          const f = figuresOf(list)
          return [v, { requests: f.requests, errors: f.errors }]
        }),
      )

    meter.read([row('shoal-a', answered(1000)), row('shoal-x', answered(50))], versionOf)
    expect(recorded()).toEqual({}) // baselines only
    meter.added('shoal-b')
    now += 2000
    meter.read(
      [
        row('shoal-a', answered(1010, 1), 0, 4),
        row('shoal-b', { ...answered(10, 5), stot: 14, wretr: 2, econ: 2 }, 0, 40),
        row('shoal-x', answered(60)), // not ours: no version
      ],
      versionOf,
    )
    expect(recorded()).toEqual({ '1.0': { requests: 10, errors: 1 }, '1.1': { requests: 12, errors: 7 } })
    const slow = figuresOf(recorder.seconds(0, now / 1000 + 1)['1.1']!)
    expect(slow.p50Ms).toBeGreaterThan(35)
    expect(slow.p50Ms).toBeLessThan(45)

    // A response head counted before its request ended: nothing is recorded twice or below zero.
    now += 2000
    meter.read([row('shoal-b', { ...answered(14, 5), stot: 18, wretr: 2, econ: 2, ok: 9 }, 2)], versionOf)
    now += 2000
    meter.read([row('shoal-b', { ...answered(14, 5), stot: 18, wretr: 2, econ: 2, ok: 9 }, 0)], versionOf)
    expect(recorded()['1.1']).toEqual({ requests: 16, errors: 7 })

    // An error counted before its request ended (a 500 head, beside two finished upgrades) waits for it.
    versions.set('shoal-c', '1.3')
    meter.added('shoal-c')
    meter.read([row('shoal-c', { stot: 2, otherEnds: 2 })], versionOf)
    meter.read([row('shoal-c', { stot: 3, otherEnds: 2, hrsp5xx: 1 }, 1)], versionOf)
    expect(recorded()['1.3']).toEqual({ requests: 2, errors: 0 })
    meter.read([row('shoal-c', { stot: 3, otherEnds: 2, hrsp5xx: 1 })], versionOf)
    expect(recorded()['1.3']).toEqual({ requests: 3, errors: 1 })

    // shoal-a now serves 1.2; it vanished and came back (HAProxy restarted): a baseline again.
    versions.set('shoal-a', '1.2')
    now += 2000
    meter.read([], versionOf)
    now += 2000
    meter.read([row('shoal-a', answered(3))], versionOf)
    now += 2000
    meter.read([row('shoal-a', answered(8, 1))], versionOf)
    expect(recorded()['1.2']).toEqual({ requests: 5, errors: 1 })

    // Counters that went down (`clear counters all`): what they hold now happened since.
    now += 2000
    meter.read([row('shoal-a', answered(4, 2))], versionOf)
    expect(recorded()['1.2']).toEqual({ requests: 9, errors: 3 })
    expect(recorded()['1.0']).toEqual({ requests: 10, errors: 1 }) // nothing new
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

/**
 * A request through HAProxy on a fresh connection (a GET, or a POST of `body`):
 * the status and the version that answered ('' for HAProxy's own answer; status
 * 0 when the connection closed with no answer).
 */
function request(port: number, body?: Buffer): Promise<{ status: number; version: string }> {
  return new Promise((resolve) => {
    const none = (): void => resolve({ status: 0, version: '' })
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/', method: body == null ? 'GET' : 'POST', agent: false },
      (res) => {
        res.resume()
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-version'] ?? '') }),
        )
        res.on('error', none)
      },
    )
    req.on('error', none)
    req.end(body)
  })
}

/** What the clients saw: requests and 5xx per answering version ('' for answers from HAProxy itself). */
type Seen = Record<string, { requests: number; errors: number }>

/** `n` requests, `concurrency` at a time; adds what the clients saw to `seen` (no answer counts as an error). */
async function load(port: number, n: number, seen: Seen, concurrency = 4, body?: Buffer): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++
      const { status, version } = await request(port, body)
      const into = seen[version] ?? { requests: 0, errors: 0 }
      seen[version] = into
      into.requests++
      if (status >= 500 || status === 0) into.errors++
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

  /**
   * Waits until the recorded totals are `expected` (a pass has read the counters
   * since); `slack` allows a version up to that many errors more (aborted uploads).
   */
  const recorded = async (expected: Seen, slack: Record<string, number> = {}): Promise<void> => {
    const matches = (have: Seen): boolean => {
      const versions = new Set([...Object.keys(sorted(have)), ...Object.keys(sorted(expected))])
      return [...versions].every((v) => {
        const h = have[v] ?? { requests: 0, errors: 0 }
        const e = expected[v] ?? { requests: 0, errors: 0 }
        return h.requests === e.requests && h.errors >= e.errors && h.errors <= e.errors + (slack[v] ?? 0)
      })
    }
    try {
      await waitFor('the recorded figures', () => matches(totals(recorder)), {
        timeout: 10 * RESYNC_MS + 5_000,
      })
    } catch (err) {
      const stats = await new HaproxyRuntime(socket, 1_000).serverStats('app').catch(() => [])
      throw new Error(
        `${String(err)}: want ${JSON.stringify(sorted(expected))} (error slack ${JSON.stringify(slack)}), ` +
          `have ${JSON.stringify(sorted(totals(recorder)))}; HAProxy: ${JSON.stringify(stats)}`,
      )
    }
  }

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

  it('a server that closes the connection instead of answering (before or while the body is sent) counts an error', async () => {
    const [good] = apps as [App, App]
    const resetter = await startApp('1.4', 0, (n) => n % 3 === 0, 'reset')
    apps.push(resetter)
    let expected = totals(recorder)
    await driver.sync([backend(good), backend(resetter)])
    const seen: Seen = {}
    await load(port, 30, seen)
    // HAProxy's own 502 carries no version header; the figures put it on the server that failed.
    const failed = seen['']!
    expect(failed.errors).toBeGreaterThan(0)
    expected = add(expected, {
      '1.0': seen['1.0']!,
      '1.4': { requests: (seen['1.4']?.requests ?? 0) + failed.requests, errors: failed.errors },
    })
    await recorded(expected)

    // POSTs of 2 MiB: the reset comes while HAProxy still sends the body, and the client gets no answer.
    // HAProxy counts some of these twice in eresp, some also in srv_abrt: at most one error too many each.
    const posts: Seen = {}
    await load(port, 12, posts, 2, Buffer.alloc(2 * 1024 * 1024, 1))
    const aborted = posts['']!
    expect(aborted.errors).toBeGreaterThan(0)
    expected = add(expected, {
      '1.0': posts['1.0']!,
      '1.4': { requests: (posts['1.4']?.requests ?? 0) + aborted.requests, errors: aborted.errors },
    })
    await recorded(expected, { '1.4': aborted.errors })
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
