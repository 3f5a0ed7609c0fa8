import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

/** A one-component app that answers its version; `healthy: false` fails every health check. */
function helloApp(dir: string, version: string, healthy = true): Promise<string> {
  const server = `
    import { createServer } from 'node:http'
    createServer((req, res) => {
      if (req.url === '/health') { res.statusCode = ${healthy ? 200 : 500}; return res.end() }
      res.end(JSON.stringify({ version: '${version}', node: process.env.SHOAL_NODE_ID }))
    }).listen(Number(process.env.PORT), process.env.HOST)
  `
  return makeComponentDistribution(join(dir, `hello-${version}`), {
    hello: {
      files: { 'main.mjs': server },
      descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/health', intervalMs: 100 } },
    },
  })
}

describe('the manager drives rollouts', () => {
  const cluster = new TestCluster()
  let agents: Agent[]
  let api: ApiClient
  let keyFile: string
  let dir: string

  const publishHello = async (version: string, healthy = true) => {
    await publish(new ApiClient(agents[version.length % agents.length]!.apiUrl), {
      dir: await helloApp(dir, version, healthy),
      name: 'hello',
      version,
      keyFile,
      progress: false,
    })
    await waitFor(`every agent to hold hello@${version}`, () =>
      agents.every((a) => a.artifacts.distributor.isComplete(`hello@${version}`)),
    )
  }
  /** What each agent runs (active version) with its component ready, by agent index. */
  const versions = () =>
    agents.map((a) => {
      const s = a.runtime.status()
      return s.components.every((c) => c.state === 'ready') && s.components.length > 0 ? s.active : null
    })
  const rollout = (id: string) => api.get<RolloutView>(`/api/rollouts/${id}`)
  const until = (id: string, state: string, timeout = 60_000) =>
    waitFor(
      `rollout ${id} to be ${state}`,
      async () => {
        const view = await rollout(id)
        return view.state === state ? view : null
      },
      { timeout, interval: 100 },
    )
  const everywhere = (version: string) =>
    waitFor(`every node on ${version}`, () => versions().every((v) => v === version), { timeout: 60_000 })

  beforeAll(async () => {
    dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    keyFile = keys.key
    // A component that stays unhealthy is restarted after 1 s and failed after a few tries.
    agents = await cluster.startMany(5, { trust: [keys.pub], runtime: { startTimeoutMs: 1000 } })
    await cluster.waitForConvergence(agents)
    api = new ApiClient(agents[0]!.apiUrl)
    await publishHello('1.0')
    await publishHello('1.1')
    const first = await api.post<RolloutView>('/api/rollouts', { json: { distribution: 'hello@1.0' } })
    await until(first.id, 'done')
    await everywhere('hello@1.0')
  })

  afterAll(() => cluster.cleanup())

  it('every agent follows one manager, which sees a quorum', async () => {
    const views = await Promise.all(
      agents.map((a) =>
        new ApiClient(a.apiUrl).get<{ manager: string; term: number; quorum: boolean }>('/api/manager'),
      ),
    )
    expect(new Set(views.map((v) => v.manager)).size).toBe(1)
    expect(agents.map((a) => a.id)).toContain(views[0]!.manager)
    for (const view of views) expect(view).toMatchObject({ quorum: true, term: views[0]!.term })
  })

  it('canary 20% with manual approval: one node switches and waits; abort sends it back', async () => {
    const started = await api.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'hello@1.1', strategy: 'canary', canaryPercent: 20, approve: 'manual' },
    })
    const waiting = await until(started.id, 'waiting-approval')
    expect(waiting.nodes).toMatchObject({ total: 5, done: 1, pending: 4 })
    await waitFor('the canary to run 1.1', () => versions().filter((v) => v === 'hello@1.1').length === 1)
    // It stays there: no other node moves while the rollout waits.
    await new Promise((r) => setTimeout(r, 1000))
    expect(versions().filter((v) => v === 'hello@1.1')).toHaveLength(1)
    expect((await rollout(started.id)).state).toBe('waiting-approval')

    await api.post(`/api/rollouts/${started.id}/abort`)
    const aborted = await until(started.id, 'aborted')
    expect(aborted.nodes).toMatchObject({ reverted: 1, done: 0 })
    await everywhere('hello@1.0')
  })

  it('canary approved: the rest follow, one at a time', async () => {
    const started = await api.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'hello@1.1', strategy: 'canary', canaryPercent: 20, minReadyMs: 200 },
    })
    await until(started.id, 'waiting-approval')
    // Approval through another agent: it forwards to the manager.
    await new ApiClient(agents[3]!.apiUrl).post(`/api/rollouts/${started.id}/approve`)
    let most = 0
    const done = until(started.id, 'done')
    while ((await Promise.race([done.then(() => true), sleep(50).then(() => false)])) === false) {
      const view = await rollout(started.id)
      most = Math.max(most, view.nodes.updating)
    }
    expect(most).toBeLessThanOrEqual(1)
    await everywhere('hello@1.1')
  })

  it('rollback to the previous version moves no artifact bytes and completes', async () => {
    const fetched = () => agents.map((a) => a.artifacts.distributor.stats().bytesFetched)
    const before = fetched()
    const started = await api.post<RolloutView>('/api/rollbacks', { json: { name: 'hello' } })
    expect(started).toMatchObject({ kind: 'rollback', distribution: 'hello@1.0', from: 'hello@1.1' })
    await until(started.id, 'done')
    await everywhere('hello@1.0')
    expect(fetched()).toEqual(before)
    // The audit trail names who asked, on every node.
    for (const agent of agents) {
      const latest = await waitFor('the rollback in the audit trail', async () => {
        const [first] = await new ApiClient(agent.apiUrl).get<RolloutView[]>('/api/rollouts')
        return first?.id === started.id && first.state === 'done' ? first : null
      })
      expect(latest).toMatchObject({ kind: 'rollback', from: 'hello@1.1', requestedBy: agents[0]!.id })
    }
  })

  it('pause holds the next nodes, resume lets them go', async () => {
    const started = await api.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'hello@1.1', strategy: 'rolling', maxUnavailable: 1, minReadyMs: 1500 },
    })
    await waitFor('one node on 1.1', () => versions().includes('hello@1.1'))
    await api.post(`/api/rollouts/${started.id}/pause`)
    const paused = await until(started.id, 'paused')
    const moved = paused.nodes.done + paused.nodes.updating
    await new Promise((r) => setTimeout(r, 2500))
    const still = await rollout(started.id)
    expect(still.state).toBe('paused')
    expect(still.nodes.done + still.nodes.updating).toBe(moved)
    expect(still.nodes.pending).toBe(5 - moved)
    await api.post(`/api/rollouts/${started.id}/resume`)
    await until(started.id, 'done')
    await everywhere('hello@1.1')
  })

  it('--nodes limits a rollout to the chosen nodes; the others keep their version', async () => {
    const chosen = [agents[1]!.id, agents[4]!.id]
    const started = await api.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'hello@1.0', strategy: 'all-at-once', nodes: chosen },
    })
    const done = await until(started.id, 'done')
    expect(done.nodes.total).toBe(2)
    await waitFor('the chosen nodes on 1.0', () => {
      const v = versions()
      return v[1] === 'hello@1.0' && v[4] === 'hello@1.0'
    })
    expect(versions()).toEqual(['hello@1.1', 'hello@1.0', 'hello@1.1', 'hello@1.1', 'hello@1.0'])
    const all = await api.post<RolloutView>('/api/rollouts', { json: { distribution: 'hello@1.1' } })
    await until(all.id, 'done')
    await everywhere('hello@1.1')
  })

  it('a version that fails its health check stops at the threshold; the node that took it goes back', async () => {
    await publishHello('6.6', false)
    const started = await api.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'hello@6.6', strategy: 'rolling', maxUnavailable: 1, failureThreshold: 1 },
    })
    const ended = await until(started.id, 'rolled-back', 45_000)
    expect(ended.reason).toMatch(/failed/)
    expect(ended.nodes).toMatchObject({ reverted: 1, done: 0, pending: 0, skipped: 4 })
    await everywhere('hello@1.1')
    // No other node ever left 1.1.
    const touched = agents.filter((a) => {
      const last = a.runtime.status().lastSwitch
      return last?.to === 'hello@6.6' || last?.from === 'hello@6.6'
    })
    expect(touched).toHaveLength(1)
  })

  it('refuses commands it cannot carry out, with codes', async () => {
    const fail = (path: string, json: unknown) =>
      api.post(path, { json }).then(
        () => null,
        (err: { code?: string }) => err.code,
      )
    expect(await fail('/api/rollouts', { distribution: 'hello@9.9' })).toBe('ERR_UNKNOWN_DISTRIBUTION')
    expect(await fail('/api/rollouts', { distribution: 'hello@1.0', strategy: 'sideways' })).toBe(
      'ERR_BAD_REQUEST',
    )
    expect(await fail('/api/rollouts/r999/approve', {})).toBe('ERR_NOT_FOUND')
    expect(await fail('/api/rollouts', { distribution: 'hello@1.0', nodes: ['nobody'] })).toBe(
      'ERR_UNKNOWN_NODE',
    )
  })
})

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
