import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { httpStatusOf, type MemberView } from '../../src/api/index.js'
import { publicKeyOf, readPrivateKey, signManifest } from '../../src/artifacts/index.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import {
  type Assignment,
  type ClusterState,
  moves,
  NoManagerError,
  NoQuorumError,
  type RolloutView,
} from '../../src/manager/index.js'
import { hasCode, ShoalError } from '../../src/shared/errors.js'
import { TestCluster } from '../helpers/cluster.js'
import { makePackage } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

/** A tiny HTTP component: answers its name on PORT. */
const SERVER = `
  import { createServer } from 'node:http'
  createServer((req, res) => res.end(process.env.COMPONENT ?? 'ok')).listen(Number(process.env.PORT), process.env.HOST)
`

/**
 * A publishable folder: one tiny HTTP component per name, and a distribution.json
 * with `placement` (makeComponentDistribution cannot set it).
 */
async function placedDistribution(dir: string, names: string[], placement: unknown): Promise<string> {
  await mkdir(dir, { recursive: true })
  const artifacts: Record<string, unknown> = {}
  for (const name of names) {
    await makePackage(join(dir, `${name}.tgz`), { 'main.mjs': SERVER })
    artifacts[`${name}.tgz`] = {
      kind: 'component',
      descriptor: {
        name,
        start: { node: 'main.mjs' },
        http: true,
        health: { http: '/', intervalMs: 100 },
        env: { COMPONENT: name },
      },
    }
  }
  await writeFile(join(dir, 'distribution.json'), JSON.stringify({ artifacts, config: {}, placement }))
  return dir
}

describe('placement of components over the cluster', () => {
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
    // Without the CLI's own check (as an older shoal publishes): the agent must refuse it itself.
    const publishTo = (agent: Agent, content: string, name: string, version: string, preflight = false) =>
      publish(new ApiClient(agent.apiUrl), {
        dir: content,
        name,
        version,
        keyFile: keys.key,
        progress: false,
        preflight,
      })
    return { dir, agents, publishTo, keyFile: keys.key }
  }

  const rollout = (agent: Agent, distribution: string) =>
    new ApiClient(agent.apiUrl).post<RolloutView>('/api/rollouts', { json: { distribution } })

  /** A rollout that must start: retried while a loaded machine's spurious suspicions leave no manager. */
  const startRollout = (agent: Agent, distribution: string) =>
    waitFor(
      `the rollout of ${distribution} to start`,
      () =>
        rollout(agent, distribution).catch((err: unknown) => {
          if (hasCode(err, NoQuorumError, NoManagerError)) return null
          throw err
        }),
      { timeout: 15_000, interval: 250 },
    )

  /** What `agent` should run under `state`: the everywhere components plus those placed on it. */
  const expectedOn = (state: ClusterState, agent: Agent, all: string[], everywhere: string[]) =>
    all.filter((c) => everywhere.includes(c) || (state.placement[c] ?? []).includes(agent.id)).sort()

  const readyNames = (agent: Agent) =>
    agent.runtime
      .status()
      .components.filter((c) => c.state === 'ready')
      .map((c) => c.name)
      .sort()
  const runningNames = (agent: Agent) =>
    agent.runtime
      .status()
      .components.map((c) => c.name)
      .sort()

  /**
   * Waits until every agent holds the same state, placed from `from` with every
   * component of `placed` recorded, and each agent runs exactly its share, all ready.
   */
  const settled = (agents: Agent[], from: string, all: string[], everywhere: string[], placed: string[]) =>
    waitFor(
      `placement of ${from} to be applied on ${agents.length} nodes`,
      () => {
        const state = agents[0]!.clusterState.current()
        if (state.placementFrom !== from) return null
        if (!placed.every((c) => state.placement[c] != null)) return null
        const ids = new Set(agents.map((a) => a.id))
        if (!Object.values(state.placement).every((nodes) => nodes.every((n) => ids.has(n)))) return null
        for (const agent of agents) {
          const mine = agent.clusterState.current()
          if (JSON.stringify(mine.placement) !== JSON.stringify(state.placement)) return null
          const want = expectedOn(state, agent, all, everywhere)
          if (JSON.stringify(runningNames(agent)) !== JSON.stringify(want)) return null
          if (JSON.stringify(readyNames(agent)) !== JSON.stringify(want)) return null
        }
        return state
      },
      { timeout: 30_000, interval: 50 },
    )

  it('replicas: 2 and partition: the assignment is spread, each node runs exactly what is placed on it, and a node leaving moves only its own components', async () => {
    const { dir, agents, publishTo } = await setup(4)
    const partitions = ['p1', 'p2', 'p3', 'p4']
    const placed = ['a', ...partitions]
    const all = ['a', ...partitions, 'w'].sort()
    const content = await placedDistribution(join(dir, 'app'), all, {
      a: { replicas: 2 },
      p1: 'partition',
      p2: 'partition',
      p3: 'partition',
      p4: 'partition',
    })
    await publishTo(agents[0]!, content, 'app', '1.0')
    await waitFor('agent 1 to learn app@1.0', () => agents[1]!.artifacts.catalogue.get('app@1.0') != null)
    await startRollout(agents[1]!, 'app@1.0')
    const before = await settled(agents, 'app@1.0', all, ['w'], placed)

    // Only components with a rule other than `all` are recorded; nothing unplaced.
    expect(Object.keys(before.placement).sort()).toEqual(placed)
    expect(before.unplaced).toEqual([])
    // a: two distinct nodes.
    expect(new Set(before.placement.a).size).toBe(2)
    // Partitions: one node each, 4 over 4 nodes differ by at most one per node: exactly one each here.
    for (const p of partitions) expect(before.placement[p]).toHaveLength(1)
    const load = (state: ClusterState, ids: string[]) =>
      ids.map((id) => partitions.filter((p) => state.placement[p]!.includes(id)).length)
    expect(
      load(
        before,
        agents.map((a) => a.id),
      ).sort(),
    ).toEqual([1, 1, 1, 1])

    // Every node's members view shows each member running exactly its share, ready.
    for (const agent of agents) {
      await waitFor(`members metadata on ${agent.id.slice(-6)}`, async () => {
        const view = await new ApiClient(agent.apiUrl).get<MemberView[]>('/api/members')
        return agents.every((member) => {
          const m = view.find((v) => v.id === member.id)
          const ready = (m?.components ?? [])
            .filter((c) => c.state === 'ready' && c.endpoint != null)
            .map((c) => c.name)
            .sort()
          return (
            m?.distribution === 'app@1.0' &&
            JSON.stringify(ready) === JSON.stringify(expectedOn(before, member, all, ['w']))
          )
        })
      })
    }

    // A non-manager node that holds components leaves gracefully (all hold one partition here).
    const managerId = agents[0]!.manager.status().manager
    const leaving =
      agents.find((a) => a.id !== managerId && before.placement.a!.includes(a.id)) ??
      agents.find((a) => a.id !== managerId)!
    const heldBefore = placed.filter((c) => before.placement[c]!.includes(leaving.id))
    expect(heldBefore.length).toBeGreaterThan(0)
    const rest = agents.filter((a) => a !== leaving)
    const pids = (agent: Agent) =>
      Object.fromEntries(agent.runtime.status().components.map((c) => [c.name, c.pid]))
    const pidsBefore = new Map(rest.map((a) => [a.id, pids(a)]))
    await leaving.stop({ leave: true })
    const after = await settled(rest, 'app@1.0', all, ['w'], placed)

    expect(after.unplaced).toEqual([])
    // Fewest moves: each (component, leaving node) pair is removed and added elsewhere, nothing else.
    const asAssignment = (s: ClusterState): Assignment => ({ nodes: s.placement, unplaced: s.unplaced })
    expect(moves(asAssignment(before), asAssignment(after))).toBe(2 * heldBefore.length)
    for (const c of placed) {
      const kept = before.placement[c]!.filter((n) => n !== leaving.id)
      for (const n of kept) expect(after.placement[c], `${c} stays on ${n.slice(-6)}`).toContain(n)
    }
    expect(new Set(after.placement.a).size).toBe(2)
    expect(after.placement.a).not.toContain(leaving.id)
    for (const p of partitions) {
      expect(after.placement[p]).toHaveLength(1)
      expect(after.placement[p]).not.toContain(leaving.id)
    }
    // 4 partitions over 3 nodes: 2, 1, 1.
    expect(
      load(
        after,
        rest.map((a) => a.id),
      ).sort(),
    ).toEqual([1, 1, 2])

    // Runtimes followed (settled checked exact sets): moved components run ready on their new node,
    // and no node runs anything no longer placed on it; those that did not move kept their process.
    for (const c of heldBefore) {
      const target = after.placement[c]!.find((n) => !before.placement[c]!.includes(n))!
      const node = rest.find((a) => a.id === target)!
      expect(readyNames(node)).toContain(c)
    }
    for (const agent of rest) {
      const now = pids(agent)
      for (const [name, pid] of Object.entries(pidsBefore.get(agent.id)!))
        expect(now[name], `${name} on ${agent.id.slice(-6)} kept its process`).toBe(pid)
      expect(runningNames(agent)).toEqual(expectedOn(after, agent, all, ['w']))
      expect(agent.runtime.status().active).toBe('app@1.0')
    }
  })

  it('a component that can be placed nowhere is reported, not dropped: replicas beyond the nodes are capped, and an invalid rule is refused at publish (by the CLI and by the agent) and at rollout, and changes nothing', async () => {
    // place() gives every unit at least one node whenever there is one node (replicas are capped at
    // the node count, partitions always land), so `unplaced` cannot be non-empty in a running cluster;
    // what can go wrong is the rule itself.
    const { dir, agents, publishTo, keyFile } = await setup(2)
    const all = ['a', 'b']
    const good = await placedDistribution(join(dir, 'good'), all, { a: { replicas: 5 }, b: 'partition' })
    await publishTo(agents[0]!, good, 'app', '1.0')
    await startRollout(agents[0]!, 'app@1.0')
    await settled(agents, 'app@1.0', all, [], all)
    const state = await waitFor('the rollout to be done everywhere', () =>
      agents.every((a) => a.clusterState.current().rollouts[0]?.state === 'done')
        ? agents[0]!.clusterState.current()
        : null,
    )
    expect(state.placement.a).toEqual(agents.map((a) => a.id).sort())
    expect(state.placement.b).toHaveLength(1)
    expect(state.unplaced).toEqual([])
    const rolloutsBefore = state.rollouts.map((r) => `${r.id} ${r.distribution} ${r.state}`)
    expect(rolloutsBefore.every((r) => r.endsWith('app@1.0 done'))).toBe(true)

    const processesBefore = agents.map((a) =>
      a.runtime
        .status()
        .components.map((c) => ({ name: c.name, pid: c.pid }))
        .sort((x, y) => x.name.localeCompare(y.name)),
    )
    const bad = await placedDistribution(join(dir, 'bad'), all, { a: { replicas: 0 }, b: 'partition' })
    const blobsBefore = agents.map((a) => a.artifacts.store.list().length)
    // The CLI refuses it before uploading anything…
    await expect(publishTo(agents[1]!, bad, 'app', '2.0', true)).rejects.toMatchObject({
      code: 'ERR_MANIFEST_INVALID',
      message: expect.stringMatching(/placement\.a\.replicas/),
    })
    // …and so does the agent, when an older CLI (or a raw API call) sends it: before any byte is stored.
    await expect(publishTo(agents[1]!, bad, 'app', '2.0')).rejects.toMatchObject({
      code: 'ERR_MANIFEST_INVALID',
      status: 400,
      message: expect.stringMatching(/placement\.a\.replicas/),
    })
    expect(agents.map((a) => a.artifacts.catalogue.get('app@2.0'))).toEqual([undefined, undefined])
    expect(agents.map((a) => a.artifacts.store.list().length)).toEqual(blobsBefore)
    // A version an older agent accepted (and its peers learned from it) is still refused by every agent at rollout.
    const signed = signManifest(
      {
        schema: 1,
        name: 'app',
        version: '2.0',
        artifacts: agents[0]!.artifacts.catalogue.get('app@1.0')!.signed.manifest.artifacts,
        config: {},
        placement: { a: { replicas: 0 }, b: 'partition' },
        supersedes: '1.0',
        createdAt: new Date().toISOString(),
      },
      await readPrivateKey(keyFile),
      publicKeyOf(await readPrivateKey(keyFile)),
    )
    for (const agent of agents) await agent.artifacts.catalogue.add(signed)
    for (const agent of agents) {
      const refused = await rollout(agent, 'app@2.0').then(
        () => null,
        (err: unknown) => err,
      )
      expect(refused).toBeInstanceOf(ShoalError)
      expect(refused).toMatchObject({ code: 'ERR_MANIFEST_INVALID' })
      expect(httpStatusOf(refused)).toBe(400)
      expect((refused as Error).message).toMatch(/placement\.a\.replicas/)
    }
    const typo = await placedDistribution(join(dir, 'typo'), all, { a: 'everywhere', c: 'partition' })
    await expect(publishTo(agents[0]!, typo, 'app', '2.1')).rejects.toMatchObject({
      code: 'ERR_MANIFEST_INVALID',
    })

    // Nothing changed: same rollouts, same placement, same processes, still on 1.0.
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const [i, agent] of agents.entries()) {
      const now = agent.clusterState.current()
      expect(now.rollouts.map((r) => `${r.id} ${r.distribution} ${r.state}`)).toEqual(rolloutsBefore)
      expect(now.placement).toEqual(state.placement)
      expect(now.placementFrom).toBe('app@1.0')
      expect(now.unplaced).toEqual([])
      expect(agent.runtime.status()).toMatchObject({ active: 'app@1.0', target: 'app@1.0' })
      expect(
        agent.runtime
          .status()
          .components.map((c) => ({ name: c.name, pid: c.pid }))
          .sort((x, y) => x.name.localeCompare(y.name)),
      ).toEqual(processesBefore[i])
    }
    const views = await new ApiClient(agents[0]!.apiUrl).get<RolloutView[]>('/api/rollouts')
    expect(views.map((r) => `${r.id} ${r.distribution} ${r.state}`)).toEqual(rolloutsBefore)
  })
})
