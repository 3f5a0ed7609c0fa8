import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { UnpublishedView } from '../../src/api/index.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { NoManagerError, NoQuorumError, type RolloutView } from '../../src/manager/index.js'
import { hasCode, ShoalError } from '../../src/shared/errors.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

/**
 * `DELETE /api/distributions/NAME/VERSION` (`shoal unpublish`) on real agents: a
 * version never rolled out leaves every agent (one stopped at the time included,
 * once it is back) with the blobs only it used, and can never come back; a version
 * in use is refused with ERR_VERSION_IN_USE and stays everywhere.
 */
describe('unpublishing a version', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  const held = (agent: Agent, id: string) => agent.artifacts.catalogue.get(id) != null
  const shasOf = (agent: Agent, id: string) =>
    agent.artifacts.catalogue.get(id)!.signed.manifest.artifacts.map((a) => a.sha256)

  it('removes a version never rolled out from every agent, refuses one in use, and never takes it back', async () => {
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const agents = await cluster.startMany(3, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    const client = (agent: Agent) => new ApiClient(agent.apiUrl)
    const publishTo = (agent: Agent, version: string) =>
      publish(client(agent), {
        dir: join(dir, `app-${version}`),
        name: 'app',
        version,
        keyFile: keys.key,
        progress: false,
      })
    const unpublish = (agent: Agent, id: string) =>
      client(agent).request<UnpublishedView>('DELETE', `/api/distributions/${id.replace('@', '/')}`)
    const refusal = (promise: Promise<unknown>) =>
      promise.then(
        () => null,
        (err: unknown) => (err instanceof ShoalError ? { code: err.code, message: err.message } : err),
      )

    // 1.0 is rolled out; 1.1 (a file of its own, and one it shares with 1.0) never is.
    await makeDistributionDir(join(dir, 'app-1.0'), { 'shared.bin': 5000 })
    await makeDistributionDir(join(dir, 'app-1.1'), { 'own.bin': 7000 })
    await copyFile(join(dir, 'app-1.0', 'shared.bin'), join(dir, 'app-1.1', 'shared.bin'))
    await publishTo(agents[0]!, '1.0')
    await publishTo(agents[1]!, '1.1')
    await waitFor('every agent to hold both versions', () =>
      agents.every(
        (a) => a.artifacts.distributor.isComplete('app@1.0') && a.artifacts.distributor.isComplete('app@1.1'),
      ),
    )
    const started = await waitFor(
      'the rollout of app@1.0 to start',
      () =>
        client(agents[0]!)
          .post<RolloutView>('/api/rollouts', { json: { distribution: 'app@1.0' } })
          .catch((err: unknown) => {
            if (hasCode(err, NoQuorumError, NoManagerError)) return null
            throw err
          }),
      { timeout: 20_000, interval: 250 },
    )
    await waitFor('every agent to run app@1.0', () =>
      agents.every((a) => a.runtime.status().active === 'app@1.0'),
    )
    await waitFor(
      'the rollout to be done',
      async () => (await client(agents[0]!).get<RolloutView>(`/api/rollouts/${started.id}`)).state === 'done',
    )

    // In use: refused, on any agent, and nothing changes.
    expect(await refusal(unpublish(agents[2]!, 'app@1.0'))).toMatchObject({
      code: 'ERR_VERSION_IN_USE',
      message: expect.stringContaining('app@1.0 is the version the cluster runs'),
    })
    expect(agents.every((a) => held(a, 'app@1.0'))).toBe(true)

    // A member stopped now hears of the unpublish only when it is back.
    const manager = agents[0]!.manager.status().manager
    const away = agents.find((a) => a.id !== manager)!
    const awayData = away.config.dataDir
    await away.stop({ leave: false })
    cluster.agents.splice(cluster.agents.indexOf(away), 1)
    const present = agents.filter((a) => a !== away)

    const shared = shasOf(present[0]!, 'app@1.0')
    const own = shasOf(present[0]!, 'app@1.1').filter((sha) => !shared.includes(sha))
    expect([own.length, shared.length]).toEqual([1, 1])
    const unpublished = await waitFor(
      'the unpublish of app@1.1',
      () =>
        unpublish(present[1]!, 'app@1.1').catch((err: unknown) => {
          // The stopped member may have been suspected as a voter for a moment.
          if (hasCode(err, NoQuorumError, NoManagerError)) return null
          throw err
        }),
      { timeout: 20_000, interval: 250 },
    )
    expect(unpublished).toMatchObject({ result: 'unpublished', id: 'app@1.1', name: 'app', version: '1.1' })
    expect(unpublished.by).toBe(present[1]!.id)
    // Read-your-writes: the agent asked has already dropped it.
    expect(held(present[1]!, 'app@1.1')).toBe(false)
    await waitFor('every running agent to drop app@1.1 and its own blob', () =>
      present.every((a) => !held(a, 'app@1.1') && !a.artifacts.store.has(own[0]!)),
    )
    for (const agent of present) {
      expect(agent.api.distributions.history('app').map((v) => v.version)).toEqual(['1.0'])
      expect(agent.artifacts.store.has(shared[0]!)).toBe(true)
      expect(agent.artifacts.distributor.isComplete('app@1.0')).toBe(true)
      expect(agent.clusterState.current().unpublished).toMatchObject([{ id: 'app@1.1', by: present[1]!.id }])
    }

    // Asked again: the same record, nothing changed.
    expect(await unpublish(present[0]!, 'app@1.1')).toMatchObject({
      result: 'already-unpublished',
      by: unpublished.by,
      at: unpublished.at,
    })

    // The member that was away drops it once it is back (it learns the state from its peers).
    const back = await cluster.start({ trust: [keys.pub], dataDir: awayData })
    expect(back.id).toBe(away.id)
    await waitFor('the member that was away to drop app@1.1', () => !held(back, 'app@1.1'))
    expect(back.artifacts.store.has(own[0]!)).toBe(false)
    expect(back.artifacts.distributor.isComplete('app@1.0')).toBe(true)

    // It can never come back: not by publishing it again (with the same content), not by a rollout.
    expect(
      await refusal(
        publish(client(present[0]!), {
          dir: join(dir, 'app-1.1'),
          name: 'app',
          version: '1.1',
          keyFile: keys.key,
          progress: false,
        }),
      ),
    ).toMatchObject({ code: 'ERR_VERSION_UNPUBLISHED' })
    expect(
      await refusal(client(back).post('/api/rollouts', { json: { distribution: 'app@1.1' } })),
    ).toMatchObject({
      code: expect.stringMatching(/^ERR_(VERSION_UNPUBLISHED|UNKNOWN_DISTRIBUTION)$/),
    })
    const all = [...present, back]
    expect(all.map((a) => held(a, 'app@1.1'))).toEqual([false, false, false])
    expect(all.map((a) => a.artifacts.store.has(own[0]!))).toEqual([false, false, false])

    // Unknown versions and malformed ids.
    expect(await refusal(unpublish(back, 'app@9.9'))).toMatchObject({ code: 'ERR_UNKNOWN_DISTRIBUTION' })
    expect(
      await refusal(client(back).request('DELETE', '/api/distributions/app/bad%20version')),
    ).toMatchObject({
      code: 'ERR_BAD_REQUEST',
    })
  })
})
