import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { MemberView } from '../../src/api/index.js'
import type { RolloutView } from '../../src/manager/index.js'
import type { ComponentStatus } from '../../src/runtime/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { isRunning, oneAgent } from '../helpers/one-agent.js'
import { waitFor } from '../helpers/wait.js'

/** A web server whose /healthz answers 200 once the file named by GATE exists (always, without GATE). */
const SERVER = `
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
const gate = process.env.GATE
createServer((req, res) => {
  if (req.url === '/healthz') {
    res.statusCode = gate == null || existsSync(gate) ? 200 : 503
    return res.end()
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ version: process.env.SHOAL_VERSION }))
}).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => process.exit(0))
if (process.env.CRASH) process.exit(1)
`

describe('a node switches versions make-before-break', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  it('starts the new version beside the old one, which serves until the new one is ready; an exclusive component stops first', async () => {
    cluster = new TestCluster()
    const { dir, agent, client, publishWeb, rollout, webs } = await oneAgent(cluster)
    const release = async (version: string, descriptor: Record<string, unknown>) => {
      await publishWeb(version, SERVER, { health: { http: '/healthz' }, ...descriptor })
      await rollout(version)
    }
    const published = async () =>
      ((await client.get<MemberView[]>('/api/members')).find((m) => m.id === agent.id)?.components ??
        []) as Array<{ name: string; version: string; state: string; instance?: number }>
    const answer = async (web: ComponentStatus) =>
      ((await (await fetch(web.endpoint!)).json()) as { version: string }).version

    await release('1', {})
    await waitFor(
      'app@1 ready',
      () => agent.runtime.status().active === 'app@1' && webs()[0]?.state === 'ready',
    )

    // Version 2 is not healthy until its gate opens: version 1 keeps serving beside it.
    const gate2 = join(dir, 'gate-2')
    await release('2', { env: { GATE: gate2 } })
    const [old, fresh] = await waitFor('version 2 started beside version 1', () => {
      const both = webs()
      return both.length === 2 && both[1]!.state === 'starting' && both[1]!.pid != null ? both : null
    })
    expect(old).toMatchObject({ version: '1', instance: 0, state: 'ready' })
    expect(fresh).toMatchObject({ version: '2', instance: 1 })
    expect(await answer(old!)).toBe('1')
    await waitFor('both instances in the member metadata', async () => (await published()).length === 2)
    expect((await published()).map((c) => `${c.version}:${c.state}:${c.instance ?? 0}`).sort()).toEqual([
      '1:ready:0',
      '2:starting:1',
    ])
    expect(agent.runtime.status()).toMatchObject({ active: 'app@1', phase: 'switching' })

    await writeFile(gate2, '')
    await waitFor(
      'version 2 committed',
      () => agent.runtime.status().active === 'app@2' && webs().length === 1,
    )
    expect(webs()[0]).toMatchObject({ version: '2', instance: 1, state: 'ready' })
    expect(await answer(webs()[0]!)).toBe('2')
    await waitFor('version 1 stopped', () => !isRunning(old!.pid))
    const timing = agent.runtime.status().lastSwitch!
    expect(Date.parse(timing.readyAt!)).toBeLessThanOrEqual(Date.parse(timing.settledAt!))

    // Version 3 may not run twice on a node: version 2 is stopped before it starts.
    const gate3 = join(dir, 'gate-3')
    await release('3', { env: { GATE: gate3 }, exclusive: true })
    const only = await waitFor('version 3 starting alone', () => {
      const now = webs()
      return now.length === 1 && now[0]!.version === '3' && now[0]!.pid != null ? now[0]! : null
    })
    expect(only.instance).toBe(0)
    expect(isRunning(fresh!.pid)).toBe(false)
    await writeFile(gate3, '')
    await waitFor('version 3 committed', () => agent.runtime.status().active === 'app@3')
    expect(await answer(webs()[0]!)).toBe('3')
  })
  it('keeps the previous version of a component serving when its new version fails, until the next switch', async () => {
    cluster = new TestCluster()
    const { agent, publishWeb, rollout, webs } = await oneAgent(cluster)
    const release = async (version: string, env: Record<string, string> = {}) => {
      await publishWeb(version, SERVER, { health: { http: '/healthz' }, env })
      // No automatic rollback: the failed state is what this test looks at.
      await rollout(version, { autoRollback: false })
    }

    await release('1')
    const first = await waitFor('app@1 ready', () =>
      agent.runtime.status().active === 'app@1' && webs()[0]?.state === 'ready' ? webs()[0] : null,
    )
    await release('2', { CRASH: '1' })
    await waitFor('app@2 failed', () => {
      const status = agent.runtime.status()
      return status.active === 'app@2' && status.phase === 'failed'
    })
    // Version 1 still serves; version 2 is reported failed beside it.
    expect(webs().map((c) => `${c.version}:${c.state}:${c.instance}`)).toEqual(['1:ready:0', '2:failed:1'])
    expect(isRunning(first.pid)).toBe(true)
    expect(await (await fetch(first.endpoint!)).json()).toEqual({ version: '1' })

    // Back to version 1: a new instance starts, and the one kept serving retires once it is ready.
    await rollout('1')
    await waitFor('app@1 again', () => {
      const status = agent.runtime.status()
      return status.active === 'app@1' && status.phase === 'done' && webs().length === 1
    })
    expect(webs()[0]).toMatchObject({ version: '1', state: 'ready', instance: 1 })
    await waitFor('the kept instance stopped', () => !isRunning(first.pid))
  })

  it('an abort during a switch gives it up at once: the new version stops, the old one never did', async () => {
    cluster = new TestCluster()
    const { dir, agent, client, publishWeb, rollout, webs } = await oneAgent(cluster)
    await publishWeb('1', SERVER, { health: { http: '/healthz' } })
    // Version 2 never becomes healthy (its gate is never opened), and waits 10 minutes
    // before it counts that as a crash: only an interrupt ends its switch.
    await publishWeb('2', SERVER, {
      health: { http: '/healthz' },
      env: { GATE: join(dir, 'never') },
      startTimeoutMs: 600_000,
    })
    await rollout('1')
    const old = await waitFor('app@1 ready', () =>
      agent.runtime.status().active === 'app@1' && webs()[0]?.state === 'ready' ? webs()[0] : null,
    )
    const bad = await rollout('2')
    const fresh = await waitFor('version 2 starting', () =>
      webs().find((c) => c.version === '2' && c.state === 'starting' && c.pid != null),
    )
    await client.post(`/api/rollouts/${bad.id}/abort`)
    const view = await waitFor('the abort to finish', async () => {
      const v = await client.get<RolloutView>(`/api/rollouts/${bad.id}`)
      return v.state === 'aborted' ? v : null
    })
    expect(view.members[0]).toMatchObject({ status: 'reverted', distribution: 'app@1' })
    // The rollout's record can say `reverted` a moment before the runtime's own status
    // leaves `switching` (seen on a loaded CI machine): wait for it, briefly.
    await waitFor(
      'the runtime back on app@1',
      () => {
        const status = agent.runtime.status()
        return status.active === 'app@1' && status.target === 'app@1' && status.phase === 'done'
      },
      { timeout: 10_000 },
    )
    expect(webs()).toEqual([expect.objectContaining({ version: '1', state: 'ready', pid: old.pid })])
    await waitFor('version 2 stopped', () => !isRunning(fresh.pid))
    expect(view.actions).toEqual([{ op: 'abort', by: agent.id, at: expect.any(String) }])
  })
})
