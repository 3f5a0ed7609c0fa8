import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentOptions } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { formatRollout } from '../../src/cli/rollout.js'
import type { RolloutView } from '../../src/manager/index.js'
import type { ComponentStatus, RuntimeStatus } from '../../src/runtime/index.js'
import { presetTimers } from '../../src/shared/presets.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { isRunning, oneAgent } from '../helpers/one-agent.js'
import { waitFor } from '../helpers/wait.js'

/** Generous: these wait on conditions, never measure how long they took. */
const DEADLINE = { timeout: 120_000, interval: 50 }

/** A web server whose /healthz answers 200 once the file named by GATE exists (always, without GATE). */
const GATED = `
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
const gate = process.env.GATE
createServer((req, res) => {
  if (req.url === '/healthz') {
    const open = gate == null || existsSync(gate)
    res.statusCode = open ? 200 : 503
    return res.end(open ? 'ok' : 'warming up')
  }
  res.end(JSON.stringify({ version: process.env.SHOAL_VERSION }))
}).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => process.exit(0))
`

/**
 * Healthy until the file SICK exists. Its SIGTERM handler writes its pid to TERMS
 * and heals it (removes SICK); it then exits with code 7, or with IGNORE_TERM set
 * keeps running (only a SIGKILL ends it).
 */
const SICKLY = `
import { appendFileSync, existsSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
const { SICK, TERMS } = process.env
createServer((req, res) => {
  const sick = existsSync(SICK)
  res.statusCode = sick ? 503 : 200
  res.end(sick ? 'sick' : 'ok')
}).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => {
  appendFileSync(TERMS, process.pid + '\\n')
  rmSync(SICK, { force: true })
  if (!process.env.IGNORE_TERM) process.exit(7)
})
`

/** Writes a line to RUNS each time it starts, then exits 1 at once. */
const CRASHER = `
import { appendFileSync } from 'node:fs'
appendFileSync(process.env.RUNS, process.pid + '\\n')
console.error('cannot start: config missing')
process.exit(1)
`

const lines = async (file: string) =>
  (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((line) => line !== '')

/** Spelled-out small numbers, as the docs write them. */
const NUMBER_WORDS: Record<string, number> = {
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
}

type Components = Parameters<typeof makeComponentDistribution>[1]

/** One agent (test preset, `runtime` overrides) trusting a fresh key; publishes and reads components through the API. */
async function agentWith(cluster: TestCluster, runtime: AgentOptions['runtime'] = {}) {
  const dir = await cluster.dataDir()
  const keys = await makeKey(dir)
  const agent = await cluster.start({ trust: [keys.pub], runtime })
  const client = new ApiClient(agent.apiUrl)
  const release = async (name: string, version: string, components: Components) => {
    const content = await makeComponentDistribution(join(dir, `${name}-${version}`), components)
    await publish(client, { dir: content, name, version, keyFile: keys.key, progress: false })
    return client.post<RolloutView>('/api/rollouts', { json: { distribution: `${name}@${version}` } })
  }
  const components = async () =>
    Object.fromEntries(
      (await client.get<RuntimeStatus>('/api/components')).components.map((c) => [c.name, c]),
    ) as Record<string, ComponentStatus>
  const rolloutIn = (id: string, state: string) =>
    waitFor(
      `${id} ${state}`,
      async () => {
        const view = await client.get<RolloutView>(`/api/rollouts/${id}`)
        return view.state === state ? view : null
      },
      DEADLINE,
    )
  const logs = async (component: string) =>
    (await fetch(`${agent.apiUrl}/api/components/${component}/logs?lines=200`)).text()
  return { dir, agent, client, release, components, rolloutIn, logs }
}

describe('a bad release is stopped, restarted and explained as documented (issue 16)', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  it('the liveness restart stops a component with SIGTERM first; SIGKILL only for one still there after the stop timeout', async () => {
    cluster = new TestCluster()
    const { dir, release, components, logs } = await agentWith(cluster)
    const file = (name: string) => join(dir, name)
    const sickly = (env: Record<string, string>, stopTimeoutMs: number) => ({
      files: { 'main.mjs': SICKLY },
      descriptor: {
        start: { node: 'main.mjs' },
        http: true,
        health: { http: '/healthz', intervalMs: 100 },
        // Unhealthy this long after leaving rotation means a restart; long enough for a
        // slow start on a loaded machine to get healthy in time.
        startTimeoutMs: 10_000,
        stopTimeoutMs,
        env,
      },
    })
    await release('sickly', '1', {
      // Exits on SIGTERM, and would wait 10 minutes for it: a SIGKILL sent at once would leave TERMS empty.
      graceful: sickly({ SICK: file('graceful-sick'), TERMS: file('graceful-terms') }, 600_000),
      // Stays after SIGTERM: only the SIGKILL that follows the stop timeout ends it.
      stubborn: sickly(
        { SICK: file('stubborn-sick'), TERMS: file('stubborn-terms'), IGNORE_TERM: '1' },
        1000,
      ),
    })
    const first = await waitFor(
      'both components ready',
      async () => {
        const now = await components()
        return now.graceful?.state === 'ready' && now.stubborn?.state === 'ready' ? now : null
      },
      DEADLINE,
    )

    // A start slowed by a loaded machine may have been restarted already: only what follows counts.
    const termsBefore = {
      graceful: await lines(file('graceful-terms')),
      stubborn: await lines(file('stubborn-terms')),
    }

    // Both turn unhealthy: out of rotation, then restarted once unhealthy for the start timeout.
    await writeFile(file('graceful-sick'), '')
    await writeFile(file('stubborn-sick'), '')
    const after = await waitFor(
      'both restarted',
      async () => {
        const now = await components()
        return now.graceful!.restarts > first.graceful!.restarts &&
          now.stubborn!.restarts > first.stubborn!.restarts
          ? now
          : null
      },
      DEADLINE,
    )
    // Each one's SIGTERM handler ran in the run that was restarted.
    expect(await lines(file('graceful-terms'))).toEqual([
      ...termsBefore.graceful,
      String(first.graceful!.pid),
    ])
    expect(await lines(file('stubborn-terms'))).toEqual([
      ...termsBefore.stubborn,
      String(first.stubborn!.pid),
    ])
    // The graceful one ended through its handler (its exit code), not by a signal.
    expect(after.graceful!.lastExit).toMatchObject({ code: 7, signal: null })
    // The stubborn one outlived SIGTERM and was then killed.
    expect(after.stubborn!.lastExit).toMatchObject({ code: null, signal: 'SIGKILL' })
    // Healed by their handlers, the new runs are ready: one restart each.
    const healed = await waitFor(
      'both ready again',
      async () => {
        const now = await components()
        return now.graceful!.state === 'ready' && now.stubborn!.state === 'ready' ? now : null
      },
      DEADLINE,
    )
    expect(healed.graceful!.restarts).toBe(first.graceful!.restarts + 1)
    expect(healed.stubborn!.restarts).toBe(first.stubborn!.restarts + 1)
    expect(isRunning(first.graceful!.pid)).toBe(false)
    expect(isRunning(first.stubborn!.pid)).toBe(false)
    const log = await logs('graceful')
    expect(log).toMatch(/\d+ health checks failed in a row; last: \/healthz answered HTTP 503: sick/)
    expect(log).toMatch(
      /not healthy within 10000 ms; last check: \/healthz answered HTTP 503: sick; restarting/,
    )
  })

  it('a rollback interrupts a switch in progress at once: the new version stops, the old one never did', async () => {
    cluster = new TestCluster()
    const { dir, agent, client, publishWeb, rollout, webs } = await oneAgent(cluster)
    await publishWeb('1', GATED, { health: { http: '/healthz' } })
    // Version 2 never becomes healthy, and waits 10 minutes before it counts that as
    // a crash: only an interrupt ends its switch within the deadlines below.
    await publishWeb('2', GATED, {
      health: { http: '/healthz' },
      env: { GATE: join(dir, 'never') },
      startTimeoutMs: 600_000,
    })
    await rollout('1')
    const old = await waitFor(
      'app@1 ready',
      () => (agent.runtime.status().active === 'app@1' && webs()[0]?.state === 'ready' ? webs()[0] : null),
      DEADLINE,
    )
    const bad = await rollout('2')
    const fresh = await waitFor(
      'version 2 starting',
      () => webs().find((c) => c.version === '2' && c.state === 'starting' && c.pid != null),
      DEADLINE,
    )

    // As `shoal rollback app --to 1` sends it.
    const back = await client.post<RolloutView>('/api/rollbacks', { json: { name: 'app', to: '1' } })
    expect(back).toMatchObject({ kind: 'rollback', distribution: 'app@1' })
    const done = await waitFor(
      'the rollback to finish',
      async () => {
        const view = await client.get<RolloutView>(`/api/rollouts/${back.id}`)
        return view.state === 'done' ? view : null
      },
      DEADLINE,
    )
    expect(done.members).toEqual([
      expect.objectContaining({ status: 'done', distribution: 'app@1', error: null }),
    ])
    expect((await client.get<RolloutView>(`/api/rollouts/${bad.id}`)).state).toBe('superseded')
    // The rollback can be done on the node's announcement from before its switch to 2 was
    // published (a loaded machine delays it): the runtime then gives that switch up just after.
    await waitFor(
      'the runtime settled back on app@1',
      () => {
        const s = agent.runtime.status()
        return s.active === 'app@1' && s.target === 'app@1' && s.phase === 'done'
      },
      DEADLINE,
    )
    // The version 1 process kept serving throughout; version 2 was stopped, not left to time out.
    expect(webs()).toEqual([expect.objectContaining({ version: '1', state: 'ready', pid: old.pid })])
    await waitFor('version 2 stopped', () => !isRunning(fresh.pid), DEADLINE)
    expect(isRunning(old.pid)).toBe(true)
  })

  it('a crash loop ends after as many runs in a row as docs/components.md says', async () => {
    // The docs' number of runs (lan and cloud presets), and the test preset's.
    const docs = await readFile(join(import.meta.dirname, '../../docs/components.md'), 'utf8')
    const said = /(\w+) failed runs in a row without a/i.exec(docs)?.[1]?.toLowerCase()
    const documented = NUMBER_WORDS[said ?? ''] ?? Number(said)
    expect(documented).toBe(presetTimers('lan').runtime.crashLoopLimit)
    expect(presetTimers('cloud').runtime.crashLoopLimit).toBe(documented)
    const testPreset = /the `test` preset shortens them \([^)]*?(\d+) crashes\)/.exec(docs)?.[1]
    expect(Number(testPreset)).toBe(presetTimers('test').runtime.crashLoopLimit)

    // The test preset's quick back-off, with the documented limit.
    cluster = new TestCluster()
    const { dir, release, components, rolloutIn, logs } = await agentWith(cluster, {
      crashLoopLimit: documented,
    })
    const runs = join(dir, 'runs')
    const started = await release('crashy', '1', {
      crasher: {
        files: { 'main.mjs': CRASHER },
        // A health check that cannot pass: the crash count never resets on a "ready" run.
        descriptor: {
          start: { node: 'main.mjs' },
          http: true,
          health: { http: '/healthz' },
          env: { RUNS: runs },
        },
      },
    })
    const crasher = await waitFor(
      'the crash loop',
      async () => {
        const c = (await components()).crasher
        return c?.state === 'failed' ? c : null
      },
      DEADLINE,
    )
    expect(await lines(runs)).toHaveLength(documented)
    expect(crasher).toMatchObject({ restarts: documented - 1, lastExit: { code: 1 } })
    expect(crasher.error).toBe(
      `crash loop: ${documented} failed runs in a row; last run: exit code 1: cannot start: config missing`,
    )
    const log = await logs('crasher')
    expect(log.match(/ crasher started pid /g)).toHaveLength(documented)
    expect(log).toContain(`giving up: crash loop: ${documented} failed runs in a row`)
    // A first rollout has nothing to go back to: it fails, with the same reason.
    const failed = await rolloutIn(started.id, 'failed')
    expect(failed.members[0]!.error).toContain(`crash loop: ${documented} failed runs in a row`)
  })

  it("a descriptor's startTimeoutMs is honoured over the preset's, and the rollout status table shows the error", async () => {
    const presetDefault = presetTimers('test').runtime.startTimeoutMs
    expect(presetDefault).toBeGreaterThanOrEqual(10 * 1500)
    cluster = new TestCluster()
    const { release, rolloutIn } = await agentWith(cluster)
    const web = (descriptor: Record<string, unknown>) => ({
      files: { 'server.mjs': GATED },
      descriptor: { start: { node: 'server.mjs' }, http: true, health: { http: '/healthz' }, ...descriptor },
    })
    const first = await release('app', '1', { web: web({}) })
    await rolloutIn(first.id, 'done')
    // Never healthy (its gate never opens), with a start timeout a tenth of the preset's.
    const bad = await release('app', '2', {
      web: web({ env: { GATE: '/nonexistent/gate' }, startTimeoutMs: 1500 }),
    })
    const back = await rolloutIn(bad.id, 'rolled-back')
    expect(back.nodes).toMatchObject({ total: 1, failed: 1, reverted: 1 })
    const node = back.members[0]!
    expect(node.error).toMatch(
      /web failed: crash loop: \d+ failed runs in a row; last run: not healthy within 1500 ms; last check: \/healthz answered HTTP 503: warming up/,
    )
    expect(node.error).not.toContain(`${presetDefault} ms`)

    // `shoal rollout status ID` prints that error whole in the node's ERROR column.
    const table = formatRollout(back).split('\n')
    const header = table.find((line) => line.startsWith('NODE'))!
    expect(header).toMatch(/ERROR$/)
    const row = table.find((line) => line.includes('reverted'))!
    expect(row.slice(header.indexOf('ERROR'))).toBe(node.error)
  })
})
