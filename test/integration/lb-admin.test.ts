/**
 * The load balancer's admin listener (src/loadbalancer/admin-server.ts): status,
 * health and metrics, read-only, with tokens when it is exposed; and `shoal lb`
 * refusing an exposed admin listener without tokens.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type Agent,
  clusterCredential,
  Observer,
  readSecret,
  writeNewSecret,
} from '../../src/bootstrap/index.js'
import { AdminServer, LoadBalancer } from '../../src/loadbalancer/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { TestCluster } from '../helpers/cluster.js'
import { runCli } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const stops: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => {})
})

async function startAdmin(authorize: ((token: string) => boolean) | null) {
  const status = { service: 'web', strategy: 'round-robin', backends: [{ key: 'n1/web' }] }
  const server = new AdminServer(
    { host: '127.0.0.1', port: 0, authorize },
    { status: () => status, prometheus: async () => 'shoal_lb_requests_total{service="web"} 7\n' },
    silentLogger,
  )
  const { port } = await server.start()
  stops.push(() => server.stop())
  return `http://127.0.0.1:${port}`
}

describe("the load balancer's admin listener", () => {
  it('answers status, health and metrics to GET, refuses other methods and paths', async () => {
    const url = await startAdmin(null)
    expect(await (await fetch(`${url}/_shoal/lb`)).json()).toMatchObject({ service: 'web' })
    expect(await (await fetch(`${url}/_shoal/health`)).json()).toEqual({ ok: true })
    for (const path of ['/_shoal/metrics', '/metrics'])
      expect(await (await fetch(`${url}${path}`)).text()).toContain(
        'shoal_lb_requests_total{service="web"} 7',
      )
    const post = await fetch(`${url}/_shoal/lb`, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')
    expect(await post.json()).toMatchObject({ error: { code: 'ERR_METHOD_NOT_ALLOWED' } })
    const other = await fetch(`${url}/`)
    expect(other.status).toBe(404)
    expect(await other.json()).toMatchObject({ error: { code: 'ERR_NOT_FOUND' } })
  })

  it('with tokens, reads need one (health does not); the cluster credential opens it too', async () => {
    const secret = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}`)
    const credential = clusterCredential(secret, 'lb-admin')
    const url = await startAdmin((token) => token === 'reader-token-0123456789' || token === credential)
    const bare = await fetch(`${url}/_shoal/lb`)
    expect(bare.status).toBe(401)
    expect(await bare.json()).toMatchObject({ error: { code: 'ERR_UNAUTHORIZED' } })
    expect(
      (await fetch(`${url}/_shoal/metrics`, { headers: { authorization: 'Bearer wrong' } })).status,
    ).toBe(401)
    expect((await fetch(`${url}/_shoal/health`)).status).toBe(200)
    for (const token of ['reader-token-0123456789', credential]) {
      const res = await fetch(`${url}/_shoal/lb`, { headers: { authorization: `Bearer ${token}` } })
      expect(res.status).toBe(200)
    }
    // Another secret derives another credential.
    const other = clusterCredential(new TextEncoder().encode('another secret'), 'lb-admin')
    expect(other).not.toBe(credential)
    expect((await fetch(`${url}/_shoal/lb`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(
      401,
    )
  })

  it('shoal lb refuses an admin listener beyond loopback without tokens, in one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-lb-admin-'))
    stops.push(() => rm(dir, { recursive: true, force: true }))
    const result = await runCli([
      'lb',
      '--cluster',
      'c1',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '0.0.0.0:0',
      '--data',
      join(dir, 'lb'),
      '--no-mdns',
    ])
    expect(result.code).not.toBe(0)
    expect(result.stderr.trim()).toBe(
      'error: the admin listener 0.0.0.0:0 is reachable from other machines: pass --tokens FILE (tokens that may read it), or keep it on 127.0.0.1 (ERR_CONFIG)',
    )
    await writeFile(join(dir, 'tokens.json'), '{"tokens": []}', { mode: 0o600 })
    const bad = await runCli([
      'lb',
      '--cluster',
      'c1',
      '--admin',
      '0.0.0.0:0',
      '--tokens',
      join(dir, 'tokens.json'),
    ])
    expect(bad.stderr).toContain('list at least one token')
  })

  it("an agent's dashboard reads an admin listener that asks for tokens with the cluster's credential", async () => {
    const cluster = new TestCluster()
    stops.push(() => cluster.cleanup())
    const secretFile = join(await cluster.dataDir(), 'cluster.secret')
    await writeNewSecret(secretFile)
    const credential = clusterCredential(await readSecret(secretFile), 'lb-admin')
    const agent = await cluster.start({ secretFile })
    const view = async () =>
      (await (await fetch(`${agent.apiUrl}/api/lb`)).json()) as Array<{
        url: string
        status: { service: string } | null
        error?: string
      }>
    const operatorToken = 'operator-token-0123456789'

    const first = await startLb(cluster, agent, secretFile, (t) => t === operatorToken || t === credential)
    await waitFor('the agent to see the load balancer', async () => (await view()).length === 1)
    expect((await view())[0]).toMatchObject({ url: first.admin, status: { service: 'web' } })
    // One that takes only its own tokens: the view says why it shows nothing.
    await first.observer.stop()
    await startLb(cluster, agent, secretFile, (t) => t === operatorToken)
    await waitFor('the second load balancer in the view', async () =>
      (await view()).some((v) => v.error?.includes('needs a token') ?? false),
    )
  })
})

/** An observer member of `cluster` with a load balancer for `web` whose admin listener asks `authorize`. */
async function startLb(
  cluster: TestCluster,
  agent: Agent,
  secretFile: string,
  authorize: (token: string) => boolean,
): Promise<{ observer: Observer; admin: string }> {
  const observer = await Observer.start(
    {
      cluster: cluster.cluster,
      roles: ['lb'],
      dataDir: await cluster.dataDir(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [agent.membership.self.addrs[0]!],
      secretFile,
      mdns: false,
      preset: 'test',
    },
    silentLogger,
  )
  stops.push(() => observer.stop())
  const lb = new LoadBalancer(
    {
      service: 'web',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, authorize },
      strategy: 'round-robin',
      ejectMs: 2000,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 10_000,
      maxRetries: 2,
    },
    { membership: observer.membership, logger: silentLogger },
  )
  const { admin } = await lb.start()
  stops.push(() => lb.stop())
  return { observer, admin: `http://127.0.0.1:${admin.port}` }
}
