import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildOsgiGreeting } from '../../examples/osgi-greeting/build.mjs'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { ManagementClient } from '../../src/runtime/osgi/management-client.js'
import { osgiUnavailableReason } from '../../src/runtime/osgi/osgi-host.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeKey } from '../helpers/distribution.js'
import { roll as rollTo } from '../helpers/roll.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const unavailable = skipReason(import.meta.url, 'OSGi components on a cluster', osgiUnavailableReason())

/** What a node's framework holds, asked of its management agent (not of Shoal's own view). */
async function framework(agent: Agent) {
  const port = Number(await readFile(join(agent.config.dataDir, 'osgi', 'agent.port'), 'utf8'))
  const client = await ManagementClient.connect(port)
  try {
    const bundles = await client.bundles()
    const services = await client.services()
    const ours = (name: string) => bundles.find((b) => b.location === `shoal:${name}`)
    return {
      greeter: ours('greeter'),
      client: ours('client'),
      greeting: services.find((s) => s.properties.greeting != null)?.properties.greeting,
    }
  } finally {
    client.close()
  }
}

async function setup(nodes: number) {
  const cluster = new TestCluster()
  const dir = await cluster.dataDir()
  const keys = await makeKey(dir)
  const releases = buildOsgiGreeting(join(dir, 'releases'))
  const agents = await cluster.startMany(nodes, { trust: [keys.pub] })
  await cluster.waitForConvergence(agents)
  const api = new ApiClient(agents[0]!.apiUrl)
  const publishAs = (folder: string, version: string) =>
    publish(api, { dir: folder, name: 'greeting', version, keyFile: keys.key, progress: false })
  const roll = (path: '/api/rollouts' | '/api/rollbacks', body: Record<string, unknown>) =>
    rollTo(api, path, body)
  return { cluster, agents, releases, publishAs, roll }
}

describe.skipIf(unavailable != null)('OSGi components on a cluster (Apache Felix)', () => {
  let ctx: Awaited<ReturnType<typeof setup>>
  beforeAll(async () => {
    ctx = await setup(3)
    await ctx.publishAs(ctx.releases['1.0'], '1.0')
    await ctx.publishAs(ctx.releases['1.1'], '1.1')
  })
  afterAll(async () => {
    await ctx?.cluster.cleanup()
  })

  it('rolls out 1.0: every node runs both bundles, active, the client using the greeter', async () => {
    expect((await ctx.roll('/api/rollouts', { distribution: 'greeting@1.0' })).state).toBe('done')
    for (const agent of ctx.agents) {
      const f = await framework(agent)
      expect(f.greeter).toMatchObject({ version: '1.0.0', state: 'ACTIVE' })
      expect(f.client).toMatchObject({ state: 'ACTIVE' })
      expect(f.greeting).toBe('Hello, Shoal 1.0 (greeter 1.0.0)')
      // The cluster sees them as components, with their bundles in member metadata (runtime keys
      // reach the watchers; any other node fetches them, as its API does).
      // The push to the watchers can trail the switch by a moment on a loaded machine.
      const member = await waitFor(
        'the node’s details to show greeting@1.0',
        async () => {
          await ctx.agents[0]!.membership.refreshDetails()
          const m = ctx.agents[0]!.membership.get(agent.id)!
          return m.meta.distribution === 'greeting@1.0' ? m : null
        },
        { timeout: 15_000, interval: 250 },
      )
      expect(member.meta.distribution).toBe('greeting@1.0')
      expect(
        (member.meta.components as Array<{ name: string; state: string }>).map((c) => [c.name, c.state]),
      ).toEqual([
        ['client', 'ready'],
        ['greeter', 'ready'],
      ])
      expect(member.meta.osgi).toMatchObject({
        bundles: expect.arrayContaining([expect.objectContaining({ component: 'greeter', state: 'ACTIVE' })]),
      })
    }
  })

  it('rolls 1.0 to 1.1 one node at a time, updating only the greeter bundle, then rolls back', async () => {
    const before = new Map(
      await Promise.all(ctx.agents.map(async (a) => [a.id, await framework(a)] as const)),
    )
    const rolled = await ctx.roll('/api/rollouts', {
      distribution: 'greeting@1.1',
      strategy: 'rolling',
      maxUnavailable: 1,
    })
    expect(rolled.state).toBe('done')
    for (const agent of ctx.agents) {
      const f = await framework(agent)
      expect(f.greeter).toMatchObject({
        version: '1.1.0',
        state: 'ACTIVE',
        id: before.get(agent.id)!.greeter!.id,
      })
      // The client jar is the same in both versions: not reinstalled, same bundle.
      expect(f.client).toMatchObject({ state: 'ACTIVE', id: before.get(agent.id)!.client!.id })
      expect(f.greeting).toBe('Hi, Shoal 1.1 (greeter 1.1.0)')
    }
    expect((await ctx.roll('/api/rollbacks', { name: 'greeting' })).state).toBe('done')
    for (const agent of ctx.agents) {
      const f = await framework(agent)
      expect(f.greeter).toMatchObject({ version: '1.0.0', state: 'ACTIVE' })
      expect(f.client).toMatchObject({ state: 'ACTIVE' })
      expect(f.greeting).toBe('Hello, Shoal 1.0 (greeter 1.0.0)')
      expect(agent.runtime.status().active).toBe('greeting@1.0')
    }
  }, 300_000)
})

describe.skipIf(unavailable != null)('an OSGi version whose bundle cannot resolve', () => {
  let ctx: Awaited<ReturnType<typeof setup>>
  beforeAll(async () => {
    ctx = await setup(1)
    await ctx.publishAs(ctx.releases['1.0'], '1.0')
    await ctx.publishAs(ctx.releases.broken, '1.1')
  })
  afterAll(async () => {
    await ctx?.cluster.cleanup()
  })

  it('leaves the node on 1.0 with every 1.0 bundle active', async () => {
    expect((await ctx.roll('/api/rollouts', { distribution: 'greeting@1.0' })).state).toBe('done')
    const [agent] = ctx.agents
    const errors: string[] = []
    agent!.runtime.events.on('runtime:changed', (status) => {
      if (status.error != null) errors.push(status.error)
    })
    const rolled = await ctx.roll('/api/rollouts', { distribution: 'greeting@1.1' })
    expect(['failed', 'rolled-back']).toContain(rolled.state)
    // The node said why: the framework's own reason.
    expect(errors.some((e) => /ERR_OSGI_BUNDLE.*io\.shoal\.example\.missing/.test(e))).toBe(true)
    expect(agent!.runtime.status().active).toBe('greeting@1.0')
    const f = await framework(agent!)
    expect(f.greeter).toMatchObject({ version: '1.0.0', state: 'ACTIVE' })
    expect(f.client).toMatchObject({ state: 'ACTIVE' })
    expect(f.greeting).toBe('Hello, Shoal 1.0 (greeter 1.0.0)')
  })
})
