/**
 * End to end: the HAProxy driver keeps a real HAProxy's backend in step with a
 * backend list through the runtime API, with no reloads.
 *
 * One `haproxy -db` child process runs a generated config: an admin stats socket,
 * a frontend on a free port and `backend app` with no servers but one
 * hand-written, disabled `manual` server the driver must leave alone. Three
 * node:http apps in this process answer their own name, so which app served a
 * request is what the client sees through HAProxy. Skipped (with the reason
 * printed) where /usr/sbin/haproxy is missing; CI installs it with apt.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, get, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Backend } from '../../src/loadbalancer/backends.js'
import { HaproxyDriver, SERVER_PREFIX, serverName } from '../../src/loadbalancer/haproxy.js'
import { HaproxyRuntime, type ServerStateRow } from '../../src/loadbalancer/haproxy-runtime.js'
import { createLogger } from '../../src/shared/logger.js'
import { freePort } from '../../src/shared/ports.js'
import {
  haproxyAvailable as available,
  HAPROXY,
  type RunningHaproxy,
  startHaproxy,
  stopHaproxy,
} from '../helpers/haproxy.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const unavailable = skipReason(
  import.meta.url,
  'HAProxy driver against a real HAProxy',
  available ? null : `${HAPROXY} is missing; install HAProxy ≥ 2.6 (apt-get install haproxy)`,
)

/** Short timers so removals and the restart repair happen within the test's budget. */
const RESYNC_MS = 200
const REMOVE_TIMEOUT_MS = 1_500

/** One node:http app that answers its name; `/slow?ms=N&only=NAME` holds the answer when NAME is it. */
interface App {
  name: string
  port: number
  server: Server
  /** Requests being answered right now. */
  inflight: number
}

async function startApp(name: string): Promise<App> {
  const app: App = { name, port: 0, server: createServer(), inflight: 0 }
  app.server.keepAliveTimeout = 60_000
  app.server.on('request', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const only = url.searchParams.get('only')
    const delay =
      url.pathname === '/slow' && (only == null || only === name) ? Number(url.searchParams.get('ms')) : 0
    app.inflight++
    setTimeout(() => {
      app.inflight--
      res.end(name)
    }, delay)
  })
  await new Promise<void>((done) => app.server.listen(0, '127.0.0.1', done))
  app.port = (app.server.address() as AddressInfo).port
  return app
}

interface Reply {
  status: number
  body: string
}

/** A GET through HAProxy on a fresh connection, so every request is balanced on its own. */
function request(port: number, path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** Sends `n` requests one after another and counts the answers by body (`503` for HAProxy's refusals). */
async function spread(port: number, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const reply = await request(port)
    const who = reply.status === 200 ? reply.body : String(reply.status)
    counts.set(who, (counts.get(who) ?? 0) + 1)
  }
  return counts
}

describe('serverName', () => {
  it('is deterministic, prefixed, short and made of HAProxy name characters', () => {
    const key = '12D3KooWQwertyuiopAsdfghjklZxcvbnm/web'
    expect(serverName(key)).toBe(serverName(key))
    expect(serverName(key)).toMatch(/^shoal-jklZxcvbnm-web-[0-9a-f]{6}$/)
    const odd = serverName('node/we b;rm -rf/é')
    expect(odd).toMatch(/^shoal-[A-Za-z0-9_.:-]+$/)
    expect(odd.length).toBeLessThanOrEqual(50)
    expect(serverName('n/a b')).not.toBe(serverName('n/a_b'))
  })
})

describe.skipIf(unavailable != null)('HAProxy driver against a real HAProxy 2.6', () => {
  let dir: string
  let config: string
  let socket: string
  let port: number
  let haproxy: RunningHaproxy | undefined
  let runtime: HaproxyRuntime
  let driver: HaproxyDriver
  const apps: App[] = []
  const logLines: string[] = []
  const logger = createLogger({ level: 'debug', write: (line) => logLines.push(line) })

  const app = (name: string): App => apps.find((a) => a.name === name)!
  const backend = (name: string, over: Partial<Backend> = {}): Backend => {
    const a = app(name)
    return {
      key: `12D3KooWTestNode${name.toUpperCase()}/web`,
      node: `12D3KooWTestNode${name.toUpperCase()}`,
      component: 'web',
      version: '1.0.0',
      endpoint: `http://127.0.0.1:${a.port}`,
      host: '127.0.0.1',
      port: a.port,
      state: 'ready',
      weight: 100,
      ...over,
    }
  }
  const nameOf = (appName: string): string => serverName(backend(appName).key)
  const servers = async (): Promise<Map<string, ServerStateRow>> =>
    new Map((await runtime.serversState('app')).map((row) => [row.name, row]))

  /**
   * Fires slow requests until one is held by app `name` (the others answer at
   * once) and returns its pending reply, wrapped: an async function returning the
   * bare promise would wait for it.
   */
  const holdRequestOn = async (name: string, ms: number): Promise<{ reply: Promise<Reply> }> => {
    const target = app(name)
    const before = target.inflight
    for (let i = 0; i < 10; i++) {
      const reply = request(port, `/slow?ms=${ms}&only=${name}`)
      let answered = false
      reply.then(
        () => {
          answered = true
        },
        () => {
          answered = true
        },
      )
      await waitFor('the slow request to be held or answered', () => target.inflight > before || answered)
      if (target.inflight > before) return { reply }
    }
    throw new Error(`no request reached ${name}`)
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-haproxy-'))
    socket = join(dir, 'admin.sock')
    config = join(dir, 'haproxy.cfg')
    port = await freePort()
    await writeFile(
      config,
      [
        'global',
        `  stats socket ${socket} mode 600 level admin`,
        'defaults',
        '  mode http',
        '  timeout connect 1s',
        '  timeout client 10s',
        '  timeout server 10s',
        'frontend fe',
        `  bind 127.0.0.1:${port}`,
        '  default_backend app',
        'backend app',
        '  balance roundrobin',
        '  server manual 127.0.0.1:9 disabled',
        '',
      ].join('\n'),
    )
    haproxy = startHaproxy(config, join(dir, 'haproxy.log'))
    runtime = new HaproxyRuntime(socket, 1_000)
    await waitFor('HAProxy to answer on its stats socket', () => runtime.cliLevel(), { timeout: 30_000 })
    for (const name of ['a', 'b', 'c']) apps.push(await startApp(name))
    driver = new HaproxyDriver(
      { socket, backend: 'app', resyncMs: RESYNC_MS, removeTimeoutMs: REMOVE_TIMEOUT_MS },
      logger,
    )
  })

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`driver log:\n${logLines.join('\n')}`)
    logLines.length = 0
  })

  afterAll(async () => {
    await driver?.stop()
    await stopHaproxy(haproxy)
    for (const a of apps) {
      a.server.closeAllConnections()
      await new Promise((done) => a.server.close(done))
    }
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('adds three ready backends and HAProxy balances over all of them', async () => {
    await driver.start()
    await driver.sync([backend('a'), backend('b'), backend('c')])

    const counts = await spread(port, 30)
    expect([...counts.keys()].sort()).toEqual(['a', 'b', 'c'])
    const listed = await servers()
    expect(listed.get('manual')).toBeDefined()
    for (const name of ['a', 'b', 'c']) expect(listed.get(nameOf(name))?.weight).toBe(100)
    const status = driver.status()
    expect(status.connected).toBe(true)
    expect(status.servers.map((s) => s.key).sort()).toEqual(['a', 'b', 'c'].map((n) => backend(n).key))
    expect(status.servers.every((s) => s.name.startsWith(SERVER_PREFIX) && s.state === 'ready')).toBe(true)
  })

  it('a draining backend gets no new requests while its in-flight request completes', async () => {
    const { reply: slow } = await holdRequestOn('b', 1_500)
    await driver.sync([backend('a'), backend('b', { state: 'draining' }), backend('c')])

    const counts = await spread(port, 20)
    expect(counts.get('b')).toBeUndefined()
    expect([...counts.keys()].sort()).toEqual(['a', 'c'])
    expect(driver.status().servers.find((s) => s.name === nameOf('b'))?.state).toBe('drain')
    expect(await slow).toEqual({ status: 200, body: 'b' })
  })

  it('a removed backend finishes its session, stops receiving and is deleted; hand-written servers stay', async () => {
    const { reply: slow } = await holdRequestOn('c', 800)
    await driver.sync([backend('a'), backend('b')])

    // In maintenance while its session runs: listed, no new requests.
    expect((await servers()).has(nameOf('c'))).toBe(true)
    expect(driver.status().servers.find((s) => s.name === nameOf('c'))?.state).toBe('maint')
    const counts = await spread(port, 10)
    expect(counts.get('c')).toBeUndefined()
    expect(await slow).toEqual({ status: 200, body: 'c' })

    await waitFor('the removed server to be deleted', async () => !(await servers()).has(nameOf('c')), {
      timeout: REMOVE_TIMEOUT_MS,
    })
    const manual = (await servers()).get('manual')
    expect(manual?.adminState).toBe(5) // still as the config made it: forced and config maintenance
    expect([...(await spread(port, 10)).keys()].sort()).toEqual(['a', 'b'])
  })

  it('a removed backend whose session outlives removeTimeoutMs has it shut down and is deleted', async () => {
    await driver.sync([backend('a'), backend('b'), backend('c')])
    const { reply: slow } = await holdRequestOn('c', 8_000)
    const removedAt = Date.now()
    await driver.sync([backend('a'), backend('b')])

    const reply = await slow
    expect(reply.status).toBe(502) // HAProxy cut the session it was proxying
    expect(Date.now() - removedAt).toBeGreaterThanOrEqual(REMOVE_TIMEOUT_MS - 100)
    expect(Date.now() - removedAt).toBeLessThan(REMOVE_TIMEOUT_MS + 3 * RESYNC_MS + 1_000)
    await waitFor('the removed server to be deleted', async () => !(await servers()).has(nameOf('c')), {
      timeout: 3 * RESYNC_MS + 1_000,
    })
  })

  it('weight 0 gets no requests; concurrent sync() calls end at the latest list', async () => {
    // The first call runs, the next two queue behind it and share one pass with the last list.
    const calls = [
      driver.sync([backend('a', { weight: 7 })]),
      driver.sync([backend('a'), backend('b', { weight: 9 })]),
      driver.sync([backend('a'), backend('b', { weight: 0 }), backend('c', { weight: 50 })]),
    ]
    await Promise.all(calls)

    const counts = await spread(port, 30)
    expect(counts.get('b')).toBeUndefined()
    expect([...counts.keys()].sort()).toEqual(['a', 'c'])
    const listed = await servers()
    expect(listed.get(nameOf('a'))?.weight).toBe(100)
    expect(listed.get(nameOf('b'))?.weight).toBe(0)
    expect(listed.get(nameOf('c'))?.weight).toBe(50)
  })

  it('re-creates the servers after HAProxy restarts, without a sync() call', async () => {
    const errorsBefore = driver.status().errors
    await stopHaproxy(haproxy, 'SIGKILL')
    await waitFor('the driver to notice HAProxy is gone', () => !driver.status().connected, {
      timeout: 3 * RESYNC_MS + 2_000,
    })
    expect(driver.status().errors).toBeGreaterThan(errorsBefore)

    haproxy = startHaproxy(config, join(dir, 'haproxy.log'))
    await waitFor(
      'the servers to be back in the restarted HAProxy',
      async () => {
        const listed = await servers()
        return ['a', 'b', 'c'].every((n) => listed.get(nameOf(n))?.adminState === 0)
      },
      { timeout: 3 * RESYNC_MS + 2_000 },
    )
    expect(driver.status().connected).toBe(true)
    const counts = await spread(port, 20)
    expect([...counts.keys()].sort()).toEqual(['a', 'c']) // b still has weight 0
    expect((await servers()).get(nameOf('c'))?.weight).toBe(50)
  })

  it('start() fails with ERR_HAPROXY for an unknown backend or a missing socket', async () => {
    const unknown = new HaproxyDriver({ socket, backend: 'nope' }, logger)
    await expect(unknown.start()).rejects.toMatchObject({
      code: 'ERR_HAPROXY',
      message: /no backend named "nope"/,
    })
    expect(unknown.status().lastError).toMatch(/nope/)

    const missing = new HaproxyDriver({ socket: join(dir, 'missing.sock'), backend: 'app' }, logger)
    await expect(missing.start()).rejects.toMatchObject({
      code: 'ERR_HAPROXY',
      message: /cannot reach HAProxy/,
    })
    expect(missing.status().connected).toBe(false)
  })
})
