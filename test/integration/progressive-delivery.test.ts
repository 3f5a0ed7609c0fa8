import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeKey } from '../helpers/distribution.js'
import { steadyLoad } from '../helpers/load.js'
import { startLoadBalancer } from '../helpers/load-balancer.js'
import { waitFor } from '../helpers/wait.js'

/** Short windows, so a step is judged in seconds; at 60 requests/s a third of the nodes sees ~60 in one. */
const ANALYSIS = {
  analysis: ['error-rate<1%', 'p99<+50ms'],
  intervalMs: 3000,
  minRequests: 20,
}
const RATE = 60

/**
 * Progressive delivery through the API, as a user drives it: real agents running
 * educa, a `shoal lb` (observer + built-in proxy) in front of their `web`, a
 * steady load through it, and canary rollouts judged by what the load balancer
 * counted per version (docs/manager.md, "Progressive delivery").
 */
describe('progressive delivery', () => {
  let cluster: TestCluster
  const stops: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {})
    await cluster.cleanup()
  })

  async function setup(nodes: number) {
    cluster = new TestCluster()
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const agents = await cluster.startMany(nodes, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    // 1.2-slow 400 ms late: far above any p99 a loaded machine gives the old version, so the verdict cannot flip.
    const built = await buildEduca(join(dir, 'build'), { delayMs: 400 })
    const client = new ApiClient(agents[0]!.apiUrl)
    for (const version of ['1.0', '1.1', '1.2', '1.2-slow'] as const)
      await publish(client, {
        dir: built[version],
        name: 'educa',
        version,
        keyFile: keys.key,
        progress: false,
      })
    await client.post('/api/rollouts', { json: { distribution: 'educa@1.0' } })
    const { url, stop } = await startLoadBalancer(cluster, agents)
    stops.push(stop)
    await waitFor('every node serving 1.0 behind the load balancer', () => runsEverywhere(agents, '1.0'), {
      timeout: 60_000,
    })
    return { agents, client, url }
  }

  /** Every agent's web is ready on `version` and its runtime settled (what the LB routes to). */
  function runsEverywhere(agents: Agent[], version: string): boolean {
    return agents.every((a) => {
      const s = a.runtime.status()
      return (
        s.active === `educa@${version}` &&
        s.phase === 'done' &&
        s.components.filter((c) => c.name === 'web').every((c) => c.state === 'ready')
      )
    })
  }

  async function until(client: ApiClient, id: string, states: string[], timeout = 120_000) {
    let last: RolloutView | null = null
    await waitFor(
      `rollout ${id} to be ${states.join(' or ')}`,
      async () => {
        last = await client.get<RolloutView>(`/api/rollouts/${id}`)
        return states.includes(last.state)
      },
      { timeout, interval: 200 },
    )
    return last! as RolloutView
  }

  it('passes a good canary step by step, sends a failing or slower one back at its first step, and never judges without traffic', async () => {
    const { agents, client, url } = await setup(3)
    const stopLoad = steadyLoad(url, RATE)
    try {
      // A good version: every step passes and the rollout ends done.
      const good = await client.post<RolloutView>('/api/rollouts', {
        json: { distribution: 'educa@1.1', strategy: 'canary', steps: [30, 60, 100], ...ANALYSIS },
      })
      expect(good.steps).toEqual([30, 60, 100])
      const passed = await until(client, good.id, ['done', 'failed', 'rolled-back', 'aborted'])
      expect(passed.state, passed.reason ?? '').toBe('done')
      expect(passed.verdicts?.map((v) => [v.step, v.verdict, v.decision])).toEqual([
        [0, 'pass', 'next step'],
        [1, 'pass', 'next step'],
      ])
      expect(passed.verdicts![0]!.canary.requests).toBeGreaterThanOrEqual(ANALYSIS.minRequests)
      expect(passed.verdicts![0]!.baseline.requests).toBeGreaterThanOrEqual(ANALYSIS.minRequests)
      await waitFor('every node on 1.1', () => runsEverywhere(agents, '1.1'), { timeout: 60_000 })

      // 1.2 answers a tenth of real requests with 500: sent back at its first step.
      const bad = await client.post<RolloutView>('/api/rollouts', {
        json: { distribution: 'educa@1.2', strategy: 'canary', steps: [30, 60, 100], ...ANALYSIS },
      })
      const failed = await until(client, bad.id, ['done', 'failed', 'rolled-back', 'aborted'])
      expect(failed.state).toBe('failed')
      expect(failed.verdicts).toHaveLength(1)
      const verdict = failed.verdicts![0]!
      expect(verdict).toMatchObject({ step: 0, verdict: 'fail', decision: 'rolled back' })
      expect(verdict.canary.errorRate).toBeGreaterThan(0.05)
      expect(verdict.baseline.errorRate).toBeLessThan(0.01)
      expect(verdict.checks[0]).toMatchObject({ condition: 'error-rate<1%', ok: false })
      expect(failed.reason).toMatch(/^analysis failed at step 1/)
      await waitFor('every node back on 1.1', () => runsEverywhere(agents, '1.1'), { timeout: 60_000 })

      // 1.2-slow answers right but 150 ms later: fails on the p99 condition alone.
      const slow = await client.post<RolloutView>('/api/rollouts', {
        json: { distribution: 'educa@1.2-slow', strategy: 'canary', steps: [30, 100], ...ANALYSIS },
      })
      const slowEnd = await until(client, slow.id, ['done', 'failed', 'rolled-back', 'aborted'])
      expect(slowEnd.state).toBe('failed')
      const slowVerdict = slowEnd.verdicts![0]!
      expect(slowVerdict.verdict).toBe('fail')
      expect(slowVerdict.checks.map((c) => c.ok)).toEqual([true, false])
      expect(slowVerdict.canary.p99Ms!).toBeGreaterThan(slowVerdict.baseline.p99Ms! + 50)
      await waitFor('every node back on 1.1 after the slow one', () => runsEverywhere(agents, '1.1'), {
        timeout: 60_000,
      })
    } finally {
      const load = await stopLoad()
      expect(load.ok).toBeGreaterThan(0)
    }

    // No traffic: inconclusive, which fails by default ...
    const quiet = await client.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'educa@1.2', strategy: 'canary', steps: [30, 100], ...ANALYSIS },
    })
    const quietEnd = await until(client, quiet.id, ['done', 'failed', 'rolled-back', 'aborted'])
    expect(quietEnd.state).toBe('failed')
    expect(quietEnd.verdicts![0]).toMatchObject({ verdict: 'inconclusive', decision: 'rolled back' })
    await waitFor('every node back on 1.1 after the quiet one', () => runsEverywhere(agents, '1.1'), {
      timeout: 60_000,
    })
    // ... or pauses for a person, who can abort.
    const paused = await client.post<RolloutView>('/api/rollouts', {
      json: {
        distribution: 'educa@1.2',
        strategy: 'canary',
        steps: [30, 100],
        ...ANALYSIS,
        onMissing: 'pause',
      },
    })
    const held = await until(client, paused.id, ['paused', 'done', 'failed'])
    expect(held.state).toBe('paused')
    expect(held.verdicts![0]).toMatchObject({ verdict: 'inconclusive', decision: 'paused' })
    await client.post(`/api/rollouts/${paused.id}/abort`)
    expect((await until(client, paused.id, ['aborted'])).state).toBe('aborted')
    await waitFor('every node back on 1.1 after the abort', () => runsEverywhere(agents, '1.1'), {
      timeout: 60_000,
    })
  }, 600_000)

  it('a manager killed during a window: the new one judges the same step and the rollout goes on', async () => {
    const { agents, client, url } = await setup(4)
    const stopLoad = steadyLoad(url, RATE)
    try {
      const leaderId = agents[0]!.manager.status().manager
      const leader = agents.find((a) => a.id === leaderId)!
      // The leader takes no part, so killing it takes no canary away.
      const others = agents.filter((a) => a !== leader).map((a) => a.id)
      const started = await client.post<RolloutView>('/api/rollouts', {
        json: {
          distribution: 'educa@1.1',
          strategy: 'canary',
          steps: [34, 100],
          nodes: others,
          ...ANALYSIS,
          intervalMs: 6000,
        },
      })
      const api = new ApiClient(agents.find((a) => a !== leader)!.apiUrl)
      let window: RolloutView['window'] = null
      await waitFor(
        'the first window to open',
        async () => {
          window = (await api.get<RolloutView>(`/api/rollouts/${started.id}`)).window ?? null
          return window != null
        },
        { timeout: 60_000, interval: 100 },
      )
      await leader.stop({ leave: false })
      const end = await until(api, started.id, ['done', 'failed', 'rolled-back', 'aborted'])
      expect(end.state, end.reason ?? '').toBe('done')
      expect(end.verdicts![0]).toMatchObject({ step: 0, verdict: 'pass', from: window!.from, to: window!.to })
    } finally {
      await stopLoad()
    }
  }, 300_000)
})
