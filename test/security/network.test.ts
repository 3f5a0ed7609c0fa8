import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Agent, readSecret, writeNewSecret } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'
import { ConnectionLog } from './helpers/connection-log.js'
import { holds } from './helpers/holds.js'
import { newSwarmKey, startIntruder } from './helpers/intruder.js'
import { multistreamMessage, rawExchange, tcpPort } from './helpers/raw-socket.js'

/** What a plain libp2p dialer writes first: the multistream header, then its proposal. */
const PLAIN_HELLO = Buffer.concat([multistreamMessage('/multistream/1.0.0'), multistreamMessage('/noise')])
/** Protocol names a node speaks in the clear once a connection is past (or has no) pnet. */
const CLEARTEXT = /\/multistream|\/noise|\/yamux|\/shoal/

const memberIds = (agent: Agent) =>
  agent.membership
    .members()
    .map((m) => m.id)
    .sort()

describe('no secret, no connection', () => {
  const cluster = new TestCluster()
  const log = new ConnectionLog()
  let secretFile: string
  let otherSecretFile: string
  let agent: Agent
  let port: number
  const intruders: Libp2p[] = []

  /** The agent still answers its API and lists exactly `ids`. */
  const stillServing = async (ids: string[]) => {
    expect((await fetch(`${agent.apiUrl}/api/health`)).status).toBe(200)
    const members = await new ApiClient(agent.apiUrl).get<Array<{ id: string; state: string }>>(
      '/api/members',
    )
    expect(members.map((m) => m.id).sort()).toEqual([...ids].sort())
    expect(members.every((m) => m.state === 'alive')).toBe(true)
  }

  beforeAll(async () => {
    const dir = await cluster.dataDir()
    secretFile = join(dir, 'cluster.secret')
    otherSecretFile = join(dir, 'other.secret')
    await writeNewSecret(secretFile)
    await writeNewSecret(otherSecretFile)
    agent = await cluster.start({ secretFile }, { connectionGater: log.gater() })
    port = tcpPort(agent.membership.self.addrs[0]!)
  })

  afterAll(async () => {
    await Promise.all(intruders.map((node) => node.stop()))
    await cluster.cleanup()
  })

  it('raw sockets and plain libp2p nodes without the secret get nothing, and the agent keeps serving', async () => {
    const target = multiaddr(agent.membership.self.addrs[0]!)
    // Three libp2p nodes: no protector, a random swarm key, another cluster's secret.
    const keys = [null, newSwarmKey(), await readSecret(otherSecretFile)]
    const outsiders = await Promise.all(keys.map((psk) => startIntruder(psk)))
    intruders.push(...outsiders)
    // All at once: a pending handshake with a wrong key is held until libp2p's 10 s upgrade timeout.
    const [rawRandom, rawHello, ...dials] = await Promise.all([
      rawExchange(port, randomBytes(256)),
      rawExchange(port, PLAIN_HELLO),
      ...outsiders.map((node) =>
        node.dial(target, { signal: AbortSignal.timeout(3_000) }).then(
          () => 'connected',
          () => 'refused',
        ),
      ),
    ])
    for (const answer of [rawRandom!, rawHello!]) {
      // The agent closes the socket, having sent nothing but its 24-byte pnet nonce.
      expect(answer.closed).toBe(true)
      expect(answer.received.length).toBeLessThanOrEqual(24)
      expect(answer.received.toString('latin1')).not.toMatch(CLEARTEXT)
    }
    expect(dials).toEqual(['refused', 'refused', 'refused'])
    expect(log.rawInbound).toBeGreaterThanOrEqual(5)
    for (const node of outsiders) {
      expect(node.getConnections()).toHaveLength(0)
      expect(agent.node.getConnections(node.peerId)).toHaveLength(0)
    }
    // None of them got past the secret: the agent's gater never saw an encrypted connection.
    expect(log.encrypted.size).toBe(0)
    await stillServing([agent.id])

    // Control: the same kind of node holding the secret gets through, so the refusals were the secret's doing.
    const insider = await startIntruder(await readSecret(secretFile))
    intruders.push(insider)
    await insider.dial(target, { signal: AbortSignal.timeout(10_000) })
    await waitFor('the agent to see the insider past the secret', () =>
      log.encrypted.has(insider.peerId.toString()),
    )
    // Even then a plain libp2p node is not a member: membership lists only Shoal agents of this cluster.
    await waitFor('the agent to identify the insider', async () =>
      (await agent.node.peerStore.get(insider.peerId)).protocols.includes('/ipfs/id/1.0.0'),
    )
    await insider.stop()
    await stillServing([agent.id])
  })

  it('control: an agent without a secret answers the same bytes in the clear', async () => {
    const open = await new TestCluster().start({ bootstrap: [] })
    try {
      const answer = await rawExchange(tcpPort(open.membership.self.addrs[0]!), PLAIN_HELLO, {
        enough: (received) => received.includes('/multistream/1.0.0'),
      })
      expect(answer.received.toString('latin1')).toContain('/multistream/1.0.0')
    } finally {
      await open.stop({ leave: false })
    }
  })

  it('an agent without the secret, or with another one, never joins; one with it does', async () => {
    const bootstrap = [agent.membership.self.addrs[0]!]
    const logs = { open: new ConnectionLog(), wrong: new ConnectionLog() }
    const open = await cluster.start({ bootstrap }, { connectionGater: logs.open.gater() })
    const wrong = await cluster.start(
      { bootstrap, secretFile: otherSecretFile },
      { connectionGater: logs.wrong.gater() },
    )
    const member = await cluster.start({ bootstrap, secretFile })
    await cluster.waitForConvergence([agent, member])
    // Both outsiders try (the join loop redials every 200 ms while alone; a handshake
    // with the wrong key can hang until libp2p's 10 s upgrade timeout), and get nowhere.
    await waitFor(
      'the outsiders to dial the agent',
      () => logs.open.dialsTo(port) >= 5 && logs.wrong.dialsTo(port) >= 1,
    )
    const alone = (a: Agent) => a.membership.members().length === 1
    await holds('the outsiders to stay alone', () => alone(open) && alone(wrong), 1_000)
    for (const outsider of [open, wrong]) {
      expect(memberIds(outsider)).toEqual([outsider.id])
      expect(agent.node.getConnections(outsider.node.peerId)).toHaveLength(0)
      expect(log.encrypted.has(outsider.id)).toBe(false)
    }
    expect(memberIds(member)).toEqual([agent.id, member.id].sort())
    await stillServing([agent.id, member.id])
  })
})

describe('clusters with other names or other secrets stay apart', () => {
  const clusters: TestCluster[] = []
  afterAll(() => Promise.all(clusters.map((c) => c.cleanup())))

  /**
   * Cluster A (two agents) and cluster B (one agent), both trusting the same
   * publisher key; A's second agent is bootstrapped toward B's agent too. A
   * version published into A reaches A's other agent (so gossip had its
   * chance) and never B.
   */
  async function publishAcross(sameSecret: boolean) {
    const a = new TestCluster()
    const b = new TestCluster()
    clusters.push(a, b)
    const dir = await a.dataDir()
    const keys = await makeKey(dir)
    const secretA = join(dir, 'a.secret')
    const secretB = join(dir, 'b.secret')
    await writeNewSecret(secretA)
    await writeNewSecret(secretB)
    const bLog = new ConnectionLog()
    const b0 = await b.start(
      { secretFile: sameSecret ? secretA : secretB, trust: [keys.pub] },
      { connectionGater: bLog.gater() },
    )
    const a0 = await a.start({ secretFile: secretA, trust: [keys.pub] })
    const a1 = await a.start({
      secretFile: secretA,
      trust: [keys.pub],
      bootstrap: [a0.membership.self.addrs[0]!, b0.membership.self.addrs[0]!],
    })
    await a.waitForConvergence([a0, a1])
    const content = await makeDistributionDir(join(dir, 'app'), { 'app.bin': 20_000 })
    await publish(new ApiClient(a1.apiUrl), {
      dir: content,
      name: 'app',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    await waitFor('A to spread app@1.0', () => a0.artifacts.distributor.isComplete('app@1.0'))
    // With the same secret the two clusters do connect (libp2p only): names keep them apart.
    if (sameSecret) await waitFor('A1 and B0 to connect', () => bLog.encrypted.has(a1.id))
    else expect(bLog.encrypted.has(a1.id)).toBe(false)
    // A negative needs a window: B stays empty and alone through a full sync interval.
    await holds(
      'B to know nothing of A',
      () => b0.artifacts.catalogue.list().length === 0 && b0.membership.members().length === 1,
      1_000,
    )
    const api = new ApiClient(b0.apiUrl)
    expect(await api.get<unknown[]>('/api/distributions')).toEqual([])
    expect(b0.artifacts.catalogue.list()).toEqual([])
    expect(b0.artifacts.store.list()).toEqual([])
    const bMembers = await api.get<Array<{ id: string }>>('/api/members')
    expect(bMembers.map((m) => m.id)).toEqual([b0.id])
    expect(memberIds(a1)).toEqual([a0.id, a1.id].sort())
  }

  it('same secret, other name: a member of A publishes; B never learns of it and the memberships do not merge', () =>
    publishAcross(true))

  it('other secret: A and B cannot even connect', () => publishAcross(false))
})
