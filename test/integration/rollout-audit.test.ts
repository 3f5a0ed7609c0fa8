import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { CLI, runCli } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const noCli = skipReason(
  import.meta.url,
  'shoal pause, resume and history through the CLI',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'
/** Longer than any column the history table had: it must come out whole. */
const ADMIN = 'alice-of-the-release-team'
const BY = `${ADMIN} (admin)`

/** A web server whose /healthz answers 200 once the file named by GATE exists (always, without GATE). */
const GATED = `
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
const gate = process.env.GATE
createServer((req, res) => {
  if (req.url === '/healthz') {
    res.statusCode = gate == null || existsSync(gate) ? 200 : 503
    return res.end()
  }
  res.end('ok')
}).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => process.exit(0))
`

const DEADLINE = { timeout: 120_000, interval: 50 }

describe('who paused and resumed a rollout, and when, is in its record and the history (issue 16)', () => {
  const cluster = new TestCluster()
  let agent: Agent
  let admin: ApiClient
  let dir: string
  let keys: { key: string; pub: string }
  let version = 0

  /** Publishes app@N (N counting up) whose web is healthy once GATE exists, and rolls it out as the admin. */
  const gatedRelease = async (gate: string) => {
    const v = String(++version)
    const content = await makeComponentDistribution(join(dir, `v${v}`), {
      web: {
        files: { 'server.mjs': GATED },
        descriptor: {
          start: { node: 'server.mjs' },
          http: true,
          health: { http: '/healthz' },
          env: { GATE: gate },
        },
      },
    })
    await publish(admin, { dir: content, name: 'app', version: v, keyFile: keys.key, progress: false })
    return admin.post<RolloutView>('/api/rollouts', { json: { distribution: `app@${v}` } })
  }
  const rolloutIn = (id: string, state: string) =>
    waitFor(
      `${id} ${state}`,
      async () => {
        const view = await admin.get<RolloutView>(`/api/rollouts/${id}`)
        return view.state === state ? view : null
      },
      DEADLINE,
    )
  /** Waits until the node is switching to `id` (its new component starting beside the old one). */
  const switching = (id: string) =>
    waitFor(
      `the node switching to ${id}`,
      () => {
        const status = agent.runtime.status()
        return status.target === id && status.phase === 'switching'
      },
      DEADLINE,
    )

  beforeAll(async () => {
    dir = await cluster.dataDir()
    keys = await makeKey(dir)
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin', name: ADMIN }] }),
      {
        mode: 0o600,
      },
    )
    agent = await cluster.start({ tokensFile, trust: [keys.pub] })
    admin = new ApiClient(agent.apiUrl, ADMIN_TOKEN)
    // A first version to switch away from.
    const first = await gatedRelease(join(dir, 'open'))
    await writeFile(join(dir, 'open'), '')
    await rolloutIn(first.id, 'done')
  })

  afterAll(() => cluster.cleanup())

  it('POST .../pause and .../resume are recorded in the rollout with the token holder and the time', async () => {
    const gate = join(dir, 'gate-api')
    const started = await gatedRelease(gate)
    expect(started.requestedBy).toBe(BY)
    await switching(`app@${version}`)

    const before = new Date().toISOString()
    const paused = await admin.post<RolloutView>(`/api/rollouts/${started.id}/pause`)
    const between = new Date().toISOString()
    expect(paused.state).toBe('paused')
    const resumed = await admin.post<RolloutView>(`/api/rollouts/${started.id}/resume`)
    const after = new Date().toISOString()
    expect(resumed.state).toBe('running')
    await writeFile(gate, '')
    const done = await rolloutIn(started.id, 'done')

    expect(done.actions).toEqual([
      { op: 'pause', by: BY, at: expect.any(String) },
      { op: 'resume', by: BY, at: expect.any(String) },
    ])
    const [pause, resume] = done.actions!
    // When: inside the request that did it (same clock: the agent runs in this process).
    expect(pause!.at >= before && pause!.at <= between).toBe(true)
    expect(resume!.at >= between && resume!.at <= after).toBe(true)
  })

  it.skipIf(noCli != null)(
    'shoal pause and shoal resume record the token holder; shoal history prints the whole name in BY',
    async () => {
      const gate = join(dir, 'gate-cli')
      const started = await gatedRelease(gate)
      await switching(`app@${version}`)
      const env = { SHOAL_TOKEN: ADMIN_TOKEN }
      const pause = await runCli(['pause', started.id, '--api', agent.apiUrl], env)
      expect(pause, pause.stderr).toMatchObject({ code: 0 })
      expect(pause.stdout).toContain('paused')
      const resume = await runCli(['rollout', 'resume', started.id, '--api', agent.apiUrl], env)
      expect(resume, resume.stderr).toMatchObject({ code: 0 })
      await writeFile(gate, '')
      await rolloutIn(started.id, 'done')

      const history = await runCli(['history', 'app', '--api', agent.apiUrl], env)
      expect(history, history.stderr).toMatchObject({ code: 0 })
      const trail = history.stdout.split('\n')
      const header = trail.find((line) => line.startsWith('ROLLOUT'))!
      const by = header.indexOf('BY')
      const at = header.indexOf('AT', by + 2)
      const byOf = (line: string) => line.slice(by, at).trim()
      const rows = trail.filter((line) => line.startsWith(`${started.id} `))
      // The rollout's own row, then its pause and resume, each with who whole.
      expect(rows.map((line) => line.split(/\s+/)[1])).toEqual(['rollout', 'pause', 'resume'])
      expect(rows.map(byOf)).toEqual([BY, BY, BY])
    },
  )
})
