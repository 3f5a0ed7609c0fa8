import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEducaOsgi } from '../../examples/educa-osgi/build.mjs'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { ProxyStatus } from '../../src/loadbalancer/index.js'
import { osgiUnavailableReason } from '../../src/runtime/osgi/osgi-host.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeKey } from '../helpers/distribution.js'
import { steadyLoad } from '../helpers/load.js'
import { startLoadBalancer } from '../helpers/load-balancer.js'
import { roll as rollTo } from '../helpers/roll.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const unavailable = skipReason(
  import.meta.url,
  'educa-osgi behind shoal lb',
  osgiUnavailableReason() ??
    (['/usr/share/java/osgi.core.jar', '/usr/share/java/osgi.cmpn.jar'].every((jar) => existsSync(jar))
      ? null
      : 'the OSGi API jars are missing (apt-get install libosgi-core-java libosgi-compendium-java)'),
)

/**
 * The OSGi sample as users run it (issue 22): examples/educa-osgi's bundles (a DS
 * catalog, a DS web component serving HTTP on the port the runtime hands it through
 * Configuration Admin) on three agents behind `shoal lb`, rolled 1.0 → 1.1 and back
 * under a steady load with no failed request.
 */
describe.skipIf(unavailable != null)('educa-osgi behind shoal lb', () => {
  let cluster: TestCluster
  let url = ''
  let admin = ''
  let api: ApiClient
  const stops: Array<() => Promise<void>> = []

  beforeAll(async () => {
    cluster = new TestCluster()
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const built = await buildEducaOsgi(join(dir, 'build'))
    const agents = await cluster.startMany(3, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    api = new ApiClient(agents[0]!.apiUrl)
    for (const version of ['1.0', '1.1'] as const)
      await publish(api, {
        dir: built[version],
        name: 'educa-osgi',
        version,
        keyFile: keys.key,
        progress: false,
      })
    const lb = await startLoadBalancer(cluster, agents)
    stops.push(lb.stop)
    url = lb.url
    admin = lb.admin
    const done = await roll({ distribution: 'educa-osgi@1.0' })
    expect(done.state, done.reason ?? '').toBe('done')
    await serving('1.0')
  }, 300_000)

  afterAll(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {})
    await cluster?.cleanup()
  })

  const roll = (body: Record<string, unknown>, path: '/api/rollouts' | '/api/rollbacks' = '/api/rollouts') =>
    rollTo(api, path, body, 180_000)

  /** Every node's web bundle ready on `version` behind the load balancer, answering with it. */
  async function serving(version: string): Promise<void> {
    await waitFor(
      `three ready web bundles on ${version}`,
      async () => {
        const status = (await (await fetch(`${admin}/_shoal/lb`)).json()) as ProxyStatus
        const ready = status.backends.filter((b) => b.state === 'ready')
        return ready.length === 3 && ready.every((b) => b.version === version)
      },
      { timeout: 120_000, interval: 250 },
    )
    const page = (await (await fetch(url)).json()) as { app: string; version: string; greeting: string }
    expect(page).toMatchObject({ app: 'educa-osgi', version })
    expect(page.greeting).toContain(version)
  }

  it('serves the DS web component through the load balancer, with its configuration from Configuration Admin', async () => {
    const page = (await (await fetch(url)).json()) as { catalog: unknown[] }
    expect(page.catalog.length).toBeGreaterThan(0)
    const components = await api.get<{ dsComponents: Array<{ name: string; state: string }> }>(
      '/api/components',
    )
    expect(components.dsComponents.map((c) => c.name).sort()).toEqual(['educa.catalog', 'educa.web'])
    expect(components.dsComponents.find((c) => c.name === 'educa.web')?.state).toBe('active')
  })

  it('a rolling update 1.0 → 1.1 and a rollback under steady load lose no request', async () => {
    const counters = async () => ((await (await fetch(`${admin}/_shoal/lb`)).json()) as ProxyStatus).counters
    const before = await counters()
    const stopLoad = steadyLoad(url, 40)
    try {
      const up = await roll({ distribution: 'educa-osgi@1.1', strategy: 'rolling' })
      expect(up.state, up.reason ?? '').toBe('done')
      await serving('1.1')
      const back = await roll({ name: 'educa-osgi', strategy: 'rolling' }, '/api/rollbacks')
      expect(back.state, back.reason ?? '').toBe('done')
      await serving('1.0')
    } finally {
      const load = await stopLoad()
      expect(load.failures).toEqual({})
      expect(load.ok).toBe(load.sent)
      expect(load.sent).toBeGreaterThan(100)
    }
    // Not saved by retries: no attempt reached a bundle being updated (each was drained first).
    const after = await counters()
    expect(after.retries - before.retries).toBe(0)
    expect(after.failed - before.failed).toBe(0)
  }, 400_000)
})
