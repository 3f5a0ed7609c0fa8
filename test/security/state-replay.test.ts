import { join } from 'node:path'
import type { StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { ClusterState, RolloutView } from '../../src/manager/index.js'
import { encodeJson } from '../../src/shared/json-frames.js'
import { silentLogger } from '../../src/shared/logger.js'
import { exchange, serve } from '../../src/shared/stream-rpc.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'
import { holds } from './helpers/holds.js'
import { startLogged } from './helpers/logged-agent.js'

/** The part of libp2p's registrar the test uses to put an agent's own protocol handler back. */
interface Registrar {
  getHandler(protocol: string): { handler: StreamHandler; options: StreamHandlerOptions }
}

/** What `/shoal/<cluster>/state/1.0.0` answers: the signed cluster state. */
type SignedState = { state: ClusterState; signature: string }

const head = (s: ClusterState) => ({ term: s.term, seq: s.seq, manager: s.manager, g: s.raft?.generation })

describe('a replayed cluster state of an older term is ignored', () => {
  const cluster = new TestCluster()
  let agents: Agent[]
  let keyFile: string
  let dir: string
  const logs = new Map<string, string[]>()

  const stateProtocol = () => `/shoal/${cluster.cluster}/state/1.0.0`
  /** Fetches the signed state `holder` serves, the way nodes fetch it from each other. */
  const fetchState = (from: Agent, holder: Agent) =>
    exchange(
      from.node,
      peerIdFromString(holder.id),
      stateProtocol(),
      { timeoutMs: 5_000, maxBytes: 4 * 1024 * 1024 },
      async (ch) => {
        await ch.write(new Uint8Array(0))
        return JSON.parse(new TextDecoder().decode(await ch.read())) as SignedState
      },
    )
  const managerOf = (agent: Agent) => agent.manager.status()
  const rolloutDone = async (agent: Agent, distribution: string) => {
    const api = new ApiClient(agent.apiUrl)
    const started = await api.post<RolloutView>('/api/rollouts', { json: { distribution } })
    await waitFor(`${distribution} rolled out`, async () => {
      const view = await api.get<RolloutView>(`/api/rollouts/${started.id}`)
      return view.state === 'done'
    })
  }

  beforeAll(async () => {
    dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    keyFile = keys.key
    const first = await startLogged(cluster, { trust: [keys.pub] }, 'warn')
    const rest = await Promise.all([1, 2].map(() => startLogged(cluster, { trust: [keys.pub] }, 'warn')))
    agents = [first, ...rest].map((l) => l.agent)
    for (const l of [first, ...rest]) logs.set(l.agent.id, l.lines)
    await cluster.waitForConvergence(agents)
    for (const version of ['1.0', '1.1']) {
      await publish(new ApiClient(agents[0]!.apiUrl), {
        dir: await makeDistributionDir(join(dir, version), { 'app.bin': 1000 }),
        name: 'app',
        version,
        keyFile,
        progress: false,
      })
    }
    await waitFor('both versions everywhere', () =>
      agents.every((a) => a.artifacts.distributor.isComplete('app@1.1')),
    )
  })

  afterAll(() => cluster.cleanup())

  it('a deposed manager’s record, served again by an insider or by the old manager itself, never wins', async () => {
    // Term t: the first manager rolls out 1.0.
    await waitFor('a manager acting', () => agents.some((a) => managerOf(a).acting))
    await rolloutDone(agents[0]!, 'app@1.0')
    const old = agents.find((a) => managerOf(a).self)!
    const survivors = agents.filter((a) => a !== old)
    const replay = await fetchState(survivors[0]!, old)
    expect(replay.state).toMatchObject({ manager: old.id, defaultTarget: 'app@1.0' })
    await waitFor('every node to hold the old record', () =>
      agents.every((a) => {
        const s = a.clusterState.current()
        return s.term === replay.state.term && s.seq >= replay.state.seq
      }),
    )

    // The manager goes; a new one is elected with a newer term and rolls out 1.1.
    const oldDataDir = old.config.dataDir
    // A crash, not a leave: a leaving leader hands over first and may hold the new term's
    // state before it stops; a crashed one keeps exactly the old record on its disk.
    await old.stop({ leave: false })
    const next = await waitFor('a new manager acting', () =>
      survivors.find((a) => managerOf(a).acting && managerOf(a).term > replay.state.term),
    )
    await rolloutDone(next, 'app@1.1')
    const current = next.clusterState.current()
    expect(current.term).toBeGreaterThan(replay.state.term)
    expect(current.defaultTarget).toBe('app@1.1')

    // Every state a survivor adopts from now on is recorded.
    const adopted: Array<{ node: string; term: number }> = []
    for (const agent of survivors)
      agent.clusterState.events.on('state:changed', (s) => adopted.push({ node: agent.id, term: s.term }))

    // 1. An insider (the other survivor) serves the old record and announces a newer head for it.
    const insider = survivors.find((a) => a !== next)!
    let served: SignedState = replay
    let requests = 0
    const registrar = (insider.node as unknown as { components: { registrar: Registrar } }).components
      .registrar
    const honest = registrar.getHandler(stateProtocol())
    await insider.node.unhandle(stateProtocol())
    await serve(
      insider.node,
      stateProtocol(),
      { timeoutMs: 5_000, maxBytes: 1024 },
      silentLogger,
      async (ch) => {
        await ch.read()
        requests++
        await ch.write(encodeJson(served))
      },
    )
    // Announced again on every poll: the insider's own store announces its real head after each
    // state the leader publishes, and the leader publishes after every entry it applies.
    const announceFake = (seq: number) =>
      insider.membership.updateMetadata({ cluster: { ...head(replay.state), seq } })
    await waitFor(
      'the manager to fetch the replay',
      async () => {
        await announceFake(current.seq + 50)
        return requests >= 1
      },
      { timeout: 45_000 },
    )
    // 2. The same record with its log index raised: the signature no longer verifies.
    served = { ...replay, state: { ...replay.state, seq: current.seq + 60 } }
    const before = requests
    await waitFor('the manager to fetch the altered replay', async () => {
      await announceFake(current.seq + 60)
      return requests > before
    })
    await holds(
      'the manager to keep the newer state',
      () => {
        const s = next.clusterState.current()
        return s.term === current.term && s.seq >= current.seq && s.defaultTarget === 'app@1.1'
      },
      500,
    )
    // The insider stops lying: its own handler and head again.
    await insider.node.unhandle(stateProtocol())
    await insider.node.handle(stateProtocol(), honest.handler, honest.options)
    await insider.membership.updateMetadata({ cluster: head(insider.clusterState.current()) })

    // 3. The deposed manager comes back with its data folder, holding (and announcing) the old record.
    const announced: number[] = []
    const heard = (m: { id: string; meta: Record<string, unknown> }) => {
      const term = (m.meta.cluster as { term?: number } | undefined)?.term
      if (m.id === old.id && term != null) announced.push(term)
    }
    next.membership.events.on('member:join', heard)
    next.membership.events.on('member:update', heard)
    const returned = await cluster.start({
      dataDir: oldDataDir,
      trust: old.config.trust,
      bootstrap: [next.membership.self.addrs[0]!],
    })
    expect(returned.id).toBe(old.id)
    await waitFor('the returned node to follow the newer term', () => {
      const s = returned.clusterState.current()
      return s.term === current.term && s.defaultTarget === 'app@1.1'
    })
    await waitFor('the returned node to run 1.1', () => returned.runtime.status().active === 'app@1.1')
    expect(managerOf(next)).toMatchObject({ self: true, acting: true, term: current.term })
    // It may be brought back in as a voter (a learner first): it follows the leader once it hears from it.
    await waitFor(
      'the returned node to follow the new manager',
      () => managerOf(returned).manager === next.id,
    )
    expect(managerOf(returned)).toMatchObject({ manager: next.id, self: false })
    expect(next.clusterState.current()).toMatchObject({ term: current.term, defaultTarget: 'app@1.1' })
    expect(adopted.filter((a) => a.term < current.term)).toEqual([])
    // It did announce the old head at first (then the newer one it adopted).
    expect(announced[0]).toBe(replay.state.term)
    expect(logs.get(next.id)!.some((l) => l.includes('ignored a cluster state with a bad signature'))).toBe(
      true,
    )
  })
})
