import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { MemberView } from '../../src/api/index.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { rawTar } from '../helpers/tarballs.js'
import { waitFor } from '../helpers/wait.js'

interface WebAnswer {
  app: string
  version: string
  node: string
  theme?: string
  catalog: { node?: string; version?: string; error?: string }
}

describe('components run on every node', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  async function setup(nodes: number) {
    cluster = new TestCluster()
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const agents = await cluster.startMany(nodes, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    const publishTo = (agent: Agent, content: string, name: string, version: string) =>
      publish(new ApiClient(agent.apiUrl), {
        dir: content,
        name,
        version,
        keyFile: keys.key,
        progress: false,
      })
    return { dir, agents, publishTo }
  }

  const rollout = (agent: Agent, distribution: string) =>
    new ApiClient(agent.apiUrl).post<RolloutView>('/api/rollouts', { json: { distribution } })

  /** Every agent sees every agent run `id` with all components ready, through the API. */
  const runningEverywhere = (agents: Agent[], id: string, components = ['catalog', 'web']) =>
    waitFor(
      `${id} ready on ${agents.length} nodes`,
      async () => {
        for (const agent of agents) {
          const members = await new ApiClient(agent.apiUrl).get<MemberView[]>('/api/members')
          for (const m of members) {
            if (m.distribution !== id) return false
            const ready = m.components
              .filter((c) => c.state === 'ready' && c.endpoint != null)
              .map((c) => c.name)
            if (JSON.stringify(ready.sort()) !== JSON.stringify(components)) return false
          }
        }
        return true
      },
      { timeout: 90_000, interval: 100 },
    )

  const webOf = (agent: Agent) => {
    const web = agent.runtime.status().components.find((c) => c.name === 'web')
    if (web?.endpoint == null) throw new Error('web has no endpoint')
    return web.endpoint
  }
  const ask = async (agent: Agent): Promise<WebAnswer> =>
    (await fetch(webOf(agent))).json() as Promise<WebAnswer>

  it('rolls out educa 1.0 to 3 nodes, switches to 1.1 and back reusing the installed folders', async () => {
    const { dir, agents, publishTo } = await setup(3)
    const builds = await buildEduca(join(dir, 'build'))
    await publishTo(agents[0]!, builds['1.0'], 'educa', '1.0')
    // Any node can start the rollout once it has heard of the version.
    await waitFor(
      'agent 1 to learn educa@1.0',
      () => agents[1]!.artifacts.catalogue.get('educa@1.0') != null,
      { timeout: 60_000 },
    )
    const started = await rollout(agents[1]!, 'educa@1.0')
    expect(started).toMatchObject({ distribution: 'educa@1.0', strategy: 'all-at-once', state: 'running' })
    await runningEverywhere(agents, 'educa@1.0')

    for (const agent of agents) {
      const answer = await ask(agent)
      expect(answer).toMatchObject({ app: 'educa', version: '1.0', node: agent.id })
      expect(answer.catalog.version).toBe('1.0')
    }
    // Every node running it is what the manager waits for before it writes the rollout done,
    // and agent 2 then fetches that state: the record can lag the members' views a little.
    const r1 = await waitFor('agent 2 to hold r1 done', async () => {
      const [latest] = await new ApiClient(agents[2]!.apiUrl).get<RolloutView[]>('/api/rollouts')
      return latest?.id === 'r1' && latest.state === 'done' ? latest : null
    })
    expect(r1).toMatchObject({ id: 'r1', state: 'done', nodes: { total: 3, done: 3, failed: 0 } })

    const installed = join(agents[0]!.config.dataDir, 'components', 'web')
    const [v10] = await readdir(installed)
    const inode = (await stat(join(installed, v10!))).ino

    await publishTo(agents[2]!, builds['1.1'], 'educa', '1.1')
    await rollout(agents[0]!, 'educa@1.1')
    await runningEverywhere(agents, 'educa@1.1')
    for (const agent of agents) expect(await ask(agent)).toMatchObject({ version: '1.1', theme: 'ocean' })

    await rollout(agents[0]!, 'educa@1.0')
    await runningEverywhere(agents, 'educa@1.0')
    for (const agent of agents) {
      const answer = await ask(agent)
      expect(answer.version).toBe('1.0')
      expect(answer.theme).toBeUndefined()
    }
    // Going back reused the 1.0 folder: same folder, not unpacked again.
    const folders = await readdir(installed)
    expect(folders).toHaveLength(2)
    expect((await stat(join(installed, v10!))).ino).toBe(inode)

    // A node that joins later converges to the desired version by itself.
    const late = await cluster.start({ trust: agents[0]!.config.trust })
    await runningEverywhere([...agents, late], 'educa@1.0')
  })

  it('refuses a package that escapes its folder with a code, and leaves the running version untouched', async () => {
    const { dir, agents, publishTo } = await setup(1)
    const agent = agents[0]!
    const builds = await buildEduca(join(dir, 'build'))
    await publishTo(agent, builds['1.0'], 'educa', '1.0')
    await rollout(agent, 'educa@1.0')
    await runningEverywhere(agents, 'educa@1.0')
    const before = agent.runtime
      .status()
      .components.map((c) => ({ name: c.name, pid: c.pid, state: c.state }))
    const installedBefore = await readdir(join(agent.config.dataDir, 'components'))

    const bad = join(dir, 'evil')
    await mkdir(bad, { recursive: true })
    await writeFile(join(bad, 'web.tgz'), rawTar([{ path: '../../escaped.txt', body: 'gotcha' }]))
    await writeFile(
      join(bad, 'distribution.json'),
      JSON.stringify({
        artifacts: {
          'web.tgz': { kind: 'component', descriptor: { name: 'web', start: { node: 'x.mjs' } } },
        },
      }),
    )
    await publishTo(agent, bad, 'educa', '6.6')
    // The manager sends the node back to 1.0 as soon as it reports the failure, which on one node
    // can be quicker than a poll: catch the failed status as the runtime announces it.
    let refused: RuntimeStatus | null = null
    const seeRefusal = (s: RuntimeStatus) => {
      if (refused == null && s.target === 'educa@6.6' && s.phase === 'failed') refused = s
    }
    agent.runtime.events.on('runtime:changed', seeRefusal)
    await rollout(agent, 'educa@6.6')
    const status = await waitFor('the install to be refused', () => refused, { timeout: 60_000 })
    agent.runtime.events.off('runtime:changed', seeRefusal)
    expect(status.error).toMatch(/^ERR_PACKAGE_UNSAFE: .*\.\.\/\.\.\/escaped\.txt/)
    expect(status.active).toBe('educa@1.0')
    expect(status.components.map((c) => ({ name: c.name, pid: c.pid, state: c.state }))).toEqual(before)
    expect(await readdir(join(agent.config.dataDir, 'components'))).toEqual(installedBefore)
    expect(await stat(join(agent.config.dataDir, '..', 'escaped.txt')).catch(() => null)).toBeNull()
    expect((await ask(agent)).version).toBe('1.0')
    // The manager saw the node fail and sent it back to what it ran before: 1.0.
    const latest = await waitFor(
      'the rollout to be rolled back',
      async () => {
        const [r] = await new ApiClient(agent.apiUrl).get<RolloutView[]>('/api/rollouts')
        return r?.state === 'rolled-back' ? r : null
      },
      { timeout: 60_000 },
    )
    expect(latest).toMatchObject({ distribution: 'educa@6.6', nodes: { reverted: 1 } })
    expect(latest.reason).toMatch(/1 node\(s\) failed/)
    expect(agent.runtime.status()).toMatchObject({ active: 'educa@1.0', target: 'educa@1.0', phase: 'done' })
  })

  it('web finds a catalog on another node when its own is stopped, and its own again when it is back', async () => {
    const { dir, agents, publishTo } = await setup(2)
    const builds = await buildEduca(join(dir, 'build'))
    await publishTo(agents[0]!, builds['1.0'], 'educa', '1.0')
    await rollout(agents[0]!, 'educa@1.0')
    await runningEverywhere(agents, 'educa@1.0')
    const [a, b] = agents as [Agent, Agent]
    expect((await ask(a)).catalog.node).toBe(a.id)

    const client = new ApiClient(a.apiUrl)
    const services = await client.get<{ endpoints: Array<{ node: string; local: boolean }> }>(
      '/api/services/catalog',
    )
    expect(services.endpoints.map((e) => e.node)).toEqual([a.id, b.id])
    expect(services.endpoints[0]!.local).toBe(true)

    await client.post('/api/components/catalog/stop')
    await waitFor('web on a to use the catalog on b', async () => (await ask(a)).catalog.node === b.id, {
      timeout: 60_000,
    })
    await client.post('/api/components/catalog/start')
    await waitFor('web on a to use its own catalog again', async () => (await ask(a)).catalog.node === a.id, {
      timeout: 60_000,
    })
  })

  it('restarts a crashing component, marks a crash loop failed with its last log lines', async () => {
    const { dir, agents, publishTo } = await setup(1)
    const agent = agents[0]!
    const flaky = `
      import { existsSync, writeFileSync } from 'node:fs'
      import { createServer } from 'node:http'
      const marker = process.env.MARKER
      if (!existsSync(marker)) { writeFileSync(marker, 'x'); console.log('first run: crashing'); process.exit(3) }
      createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), process.env.HOST)
    `
    const content = await makeComponentDistribution(join(dir, 'crashy'), {
      flaky: {
        files: { 'main.mjs': flaky },
        descriptor: {
          start: { node: 'main.mjs' },
          http: true,
          health: { http: '/', intervalMs: 100 },
          env: { MARKER: join(dir, 'flaky-ran') },
        },
      },
      crasher: {
        files: { 'main.mjs': "console.log('boom: the database is on fire'); process.exit(1)" },
        descriptor: { start: { node: 'main.mjs' } },
      },
    })
    await publishTo(agent, content, 'crashy', '1.0')
    await rollout(agent, 'crashy@1.0')
    const client = new ApiClient(agent.apiUrl)
    const status = await waitFor(
      'the crash loop to be detected',
      async () => {
        const s = await client.get<RuntimeStatus>('/api/components')
        return s.phase === 'failed' ? s : null
      },
      { timeout: 60_000 },
    )
    const byName = Object.fromEntries(status.components.map((c) => [c.name, c]))
    expect(byName.flaky).toMatchObject({ state: 'ready', restarts: 1, lastExit: { code: 3 } })
    expect(byName.crasher).toMatchObject({ state: 'failed', lastExit: { code: 1 } })
    expect(byName.crasher!.error).toMatch(/crash loop/)
    expect(status.error).toMatch(/crasher failed/)
    const logs = await (await fetch(`${agent.apiUrl}/api/components/crasher/logs?lines=20`)).text()
    expect(logs).toContain('boom: the database is on fire')
    expect(logs).toContain('giving up')
    // A first rollout has nothing to go back to: it ends failed.
    const failed = await waitFor(
      'the rollout to fail',
      async () => {
        const [r] = await client.get<RolloutView[]>('/api/rollouts')
        return r?.state === 'failed' ? r : null
      },
      { timeout: 60_000 },
    )
    expect(failed).toMatchObject({ nodes: { failed: 1 } })
    expect(() => new URL(byName.flaky!.endpoint!)).not.toThrow()
  })
})
