import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import { type Agent, Observer } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { HaproxySink, LoadBalancer, type ProxyStatus } from '../../src/loadbalancer/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { HAPROXY, haproxyAvailable, runHaproxy, stopHaproxy } from '../helpers/haproxy.js'
import { runLoad } from '../helpers/load.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const noHaproxy = skipReason(
  import.meta.url,
  'load balancer with HAProxy',
  haproxyAvailable ? null : `${HAPROXY} is missing (apt-get install haproxy)`,
)

/** A web component with no graceful shutdown: SIGTERM ends it at once, requests in flight die with it. */
const ABRUPT = `
  import { createServer } from 'node:http'
  const node = process.env.SHOAL_NODE_ID
  createServer((req, res) => {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 0)
    setTimeout(() => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ node })) }, ms)
  }).listen(Number(process.env.PORT), process.env.HOST)
  process.on('SIGTERM', () => process.exit(0))
`

describe('the load balancer follows the membership', () => {
  let cluster: TestCluster
  const stops: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {})
    await cluster.cleanup()
  })

  /**
   * N agents running educa 1.0 (or the abrupt app) and a load balancer (an
   * observer member) in front of their `web`: the built-in proxy, or a real
   * HAProxy the load balancer drives through its runtime API.
   */
  async function setup(
    nodes: number,
    service = 'web',
    app: 'educa' | 'abrupt' = 'educa',
    front: 'builtin' | 'haproxy' = 'builtin',
  ) {
    cluster = new TestCluster()
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const agents = await cluster.startMany(nodes, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    const content =
      app === 'educa'
        ? (await buildEduca(join(dir, 'build')))['1.0']
        : await makeComponentDistribution(join(dir, 'abrupt'), {
            web: {
              files: { 'main.mjs': ABRUPT },
              descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/', intervalMs: 200 } },
            },
          })
    const client = new ApiClient(agents[0]!.apiUrl)
    await publish(client, {
      dir: content,
      name: 'educa',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    await client.post('/api/rollouts', { json: { distribution: 'educa@1.0' } })
    const observer = await Observer.start(
      {
        cluster: cluster.cluster,
        roles: ['lb'],
        dataDir: await cluster.dataDir(),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap: [agents[0]!.membership.self.addrs[0]!],
        mdns: false,
        preset: 'test',
      },
      silentLogger,
    )
    stops.push(() => observer.stop())
    let sink: HaproxySink | null = null
    let haproxyPort = 0
    if (front === 'haproxy') {
      const running = await runHaproxy(await cluster.dataDir())
      stops.push(() => stopHaproxy(running.haproxy))
      haproxyPort = running.port
      sink = await HaproxySink.start({ socket: running.socket, backend: 'app' }, silentLogger)
      stops.push(() => sink!.stop())
    }
    const lb = new LoadBalancer(
      {
        service,
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0, authorize: null },
        strategy: 'round-robin',
        ejectMs: 2000,
        connectTimeoutMs: 1000,
        requestTimeoutMs: 10_000,
        maxRetries: 2,
      },
      { membership: observer.membership, logger: silentLogger },
      sink,
    )
    const { port, admin } = await lb.start()
    stops.push(() => lb.stop())
    const url = `http://127.0.0.1:${sink == null ? port : haproxyPort}`
    const adminUrl = `http://127.0.0.1:${admin.port}`
    const status = async () => (await (await fetch(`${adminUrl}/_shoal/lb`)).json()) as ProxyStatus
    const ready = (n: number) =>
      waitFor(
        `${n} ready backends`,
        async () =>
          sink == null
            ? (await status()).backends.filter((b) => b.state === 'ready').length === n
            : sink.status().servers.filter((b) => b.state === 'ready').length === n,
        { timeout: 30_000 },
      )
    return { agents, keys, url, adminUrl, status, ready, observer, sink }
  }

  const nodesOf = async (url: string, n: number) => {
    const seen: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const answer = (await (await fetch(url)).json()) as { node: string }
      seen[answer.node] = (seen[answer.node] ?? 0) + 1
    }
    return seen
  }

  it('spreads requests over every ready node, drops an unhealthy one and adds a new one once ready', async () => {
    const { agents, keys, url, adminUrl, status, ready } = await setup(3)
    await ready(3)
    const spread = await nodesOf(url, 30)
    expect(Object.keys(spread).sort()).toEqual(agents.map((a) => a.id).sort())
    for (const count of Object.values(spread)) expect(count).toBe(10)
    expect((await status()).backends.every((b) => b.version === '1.0' && b.weight === 100)).toBe(true)

    // web on agent 0 fails its health check: out of rotation, then back.
    const sick = agents[0]!
    const web = sick.runtime.status().components.find((c) => c.name === 'web')!.endpoint!
    await fetch(`${web}/admin/health?ok=false`, { method: 'POST' })
    await ready(2)
    expect(Object.keys(await nodesOf(url, 20))).not.toContain(sick.id)
    await fetch(`${web}/admin/health?ok=true`, { method: 'POST' })
    await ready(3)

    // Weight 0 (a canary's counterpart): the node keeps running but gets no new requests.
    await new ApiClient(agents[1]!.apiUrl).post('/api/components/web/weight', { json: { weight: 0 } })
    await waitFor('weight 0 to reach the load balancer', async () =>
      (await status()).backends.some((b) => b.node === agents[1]!.id && b.weight === 0),
    )
    expect(Object.keys(await nodesOf(url, 20))).not.toContain(agents[1]!.id)
    await new ApiClient(agents[1]!.apiUrl).post('/api/components/web/weight', { json: { weight: 100 } })

    const late = await cluster.start({ trust: [keys.pub] })
    await ready(4)
    expect(Object.keys(await nodesOf(url, 40))).toContain(late.id)

    const metrics = await (await fetch(`${adminUrl}/_shoal/metrics`)).text()
    expect(metrics).toMatch(/shoal_lb_requests_total\{service="web"\} \d+/)
    expect(metrics).toContain(`shoal_lb_backend_up{backend="${late.id}/web",state="ready"} 1`)
  })

  it('answers 503 with a JSON error when no backend is ready', async () => {
    const { url } = await setup(1, 'nosuch')
    const res = await fetch(`${url}/anything`)
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ error: { code: 'ERR_NO_BACKEND' } })
  })

  it('loses no request while a node drains and stops under steady load, though its app dies at once on SIGTERM', async () => {
    const { agents, url, ready, status } = await setup(3, 'web', 'abrupt')
    await ready(3)
    const leaving = agents[2]! as Agent
    // POSTs cannot be retried elsewhere: only the drain can save the ones in flight to the leaving node.
    const load = runLoad(url, { rate: 80, durationMs: 6000, paths: ['/', 'POST /?ms=400', '/?ms=100'] })
    await new Promise((r) => setTimeout(r, 1500))
    await leaving.stop({ leave: true })
    const result = await load
    expect(result.failures).toEqual({})
    expect(result.failed).toBe(0)
    expect(result.ok).toBe(result.sent)
    expect(result.nodes[leaving.id]).toBeGreaterThan(0)
    const after = await status()
    expect(after.backends.map((b) => b.node)).not.toContain(leaving.id)
    // The drain kept every request away from the stopping node: none had to be retried elsewhere.
    expect(after.counters).toMatchObject({ retries: 0, failed: 0 })
  })

  describe.skipIf(noHaproxy != null)('with HAProxy driven through its runtime API', () => {
    it('loses no request while a node drains and stops under steady load', async () => {
      const { agents, url, ready, sink } = await setup(3, 'web', 'abrupt', 'haproxy')
      await ready(3)
      const leaving = agents[2]! as Agent
      const load = runLoad(url, { rate: 80, durationMs: 6000, paths: ['/', 'POST /?ms=400', '/?ms=100'] })
      await new Promise((r) => setTimeout(r, 1500))
      await leaving.stop({ leave: true })
      const result = await load
      expect(result.failures).toEqual({})
      expect(result.ok).toBe(result.sent)
      expect(result.nodes[leaving.id]).toBeGreaterThan(0)
      await waitFor(
        'HAProxy to drop the node',
        () => !sink!.status().servers.some((s) => s.key.startsWith(leaving.id)),
      )
    })

    it('a node that dies fails at most the requests in flight to it, and leaves the pool', async () => {
      const { agents, url, ready, sink } = await setup(3, 'web', 'educa', 'haproxy')
      await ready(3)
      const dying = agents[1]!
      const load = runLoad(url, { rate: 80, durationMs: 5000, paths: ['/', '/slow?ms=200'] })
      await new Promise((r) => setTimeout(r, 1500))
      // A crash: the components die with SIGKILL, the agent vanishes without leaving.
      for (const c of dying.runtime.status().components) if (c.pid != null) process.kill(c.pid, 'SIGKILL')
      await dying.stop({ leave: false })
      const result = await load
      expect(result.failed).toBeLessThanOrEqual(5)
      await waitFor(
        'HAProxy to drop the dead node',
        () => !sink!.status().servers.some((s) => s.key.startsWith(dying.id)),
        {
          timeout: 10_000,
        },
      )
    })
  })
})
