import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { lpStream } from 'it-length-prefixed-stream'
import { afterEach, describe, expect, it } from 'vitest'
import { createNode, type ShoalLibp2p } from '../../src/bootstrap/libp2p-node.js'
import { encodeMessage } from '../../src/manager/consensus/raft-codec.js'
import { RaftTransport } from '../../src/manager/consensus/raft-transport.js'
import type { Message } from '../../src/manager/raft/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { VERSION } from '../../src/shared/version.js'
import { waitFor } from '../helpers/wait.js'

const CLUSTER = 'raft-wire'

interface Agent {
  node: ShoalLibp2p
  transport: RaftTransport
  id: string
  key: PrivateKey
  inbox: Message[]
}

const agents: Agent[] = []

async function agent(key?: PrivateKey): Promise<Agent> {
  const privateKey = key ?? (await generateKeyPair('Ed25519'))
  const node = await createNode(
    {
      cluster: CLUSTER,
      privateKey,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      secret: null,
      mdns: false,
      mdnsIntervalMs: presetTimers('test').mdns.intervalMs,
      traffic: { sentBytes: 0, receivedBytes: 0 },
      version: VERSION,
    },
    silentLogger,
  )
  await node.start()
  const inbox: Message[] = []
  const id = node.peerId.toString()
  const transport = new RaftTransport(
    { cluster: CLUSTER, dialTimeoutMs: 2_000, writeTimeoutMs: 5_000 },
    { network: node, selfId: id, deliver: (m) => inbox.push(m), logger: silentLogger },
  )
  await transport.start()
  const created = { node, transport, id, key: privateKey, inbox }
  agents.push(created)
  return created
}

async function stopAgent(a: Agent): Promise<void> {
  await a.transport.stop()
  await a.node.stop()
}

/** Connects every pair once, and waits until each has exactly one open connection. */
async function mesh(...list: Agent[]): Promise<void> {
  for (const [i, a] of list.entries())
    for (const b of list.slice(i + 1)) await a.node.dial(b.node.getMultiaddrs()[0]!)
  for (const [i, a] of list.entries())
    for (const b of list.slice(i + 1))
      await waitFor(
        'one connection per pair',
        () =>
          a.node.getConnections(b.node.peerId).filter((c) => c.status === 'open').length === 1 &&
          b.node.getConnections(a.node.peerId).filter((c) => c.status === 'open').length === 1,
      )
}

const beat = (from: Agent, to: Agent | string, sentAt: number): Message => ({
  type: 'heartbeat-response',
  from: from.id,
  to: typeof to === 'string' ? to : to.id,
  term: 1,
  sentAt,
})

const sentAts = (inbox: Message[], from: Agent) =>
  inbox.flatMap((m) => (m.from === from.id && m.type === 'heartbeat-response' ? [m.sentAt] : []))

afterEach(async () => {
  await Promise.all(agents.splice(0).map(stopAgent))
})

describe('RaftTransport over real libp2p nodes', () => {
  it('carries messages both ways, in order, and a snapshot in one frame', async () => {
    const [a, b, c] = await Promise.all([agent(), agent(), agent()])
    await mesh(a, b, c)
    const n = 200
    for (let i = 0; i < n; i++) {
      a.transport.send([beat(a, b, i), beat(a, c, i)])
      b.transport.send([beat(b, a, i)])
    }
    const data = Uint8Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7919) & 0xff)
    const cert = { term: 1, leader: a.id, votes: [{ voter: a.id, signature: new Uint8Array(64).fill(1) }] }
    const config = { voters: [a.id, b.id, c.id], learners: [] }
    a.transport.send([
      {
        type: 'snapshot',
        from: a.id,
        to: c.id,
        term: 1,
        certificate: cert,
        chain: null,
        sentAt: n,
        snapshot: {
          meta: {
            index: 9,
            term: 1,
            config: { index: 0, term: 0, config, certificate: null, signature: null },
            history: [],
          },
          data,
        },
      },
    ])
    const expected = Array.from({ length: n }, (_, i) => i)
    await waitFor('b has all of a', () => sentAts(b.inbox, a).length === n)
    await waitFor('a has all of b', () => sentAts(a.inbox, b).length === n)
    await waitFor('c has all of a and the snapshot', () => c.inbox.length === n + 1)
    expect(sentAts(b.inbox, a)).toEqual(expected)
    expect(sentAts(a.inbox, b)).toEqual(expected)
    expect(sentAts(c.inbox, a)).toEqual(expected)
    const snapshot = c.inbox[n]!
    expect(snapshot.type).toBe('snapshot')
    if (snapshot.type !== 'snapshot') return
    expect(Buffer.from(snapshot.snapshot.data).equals(Buffer.from(data))).toBe(true)
    // One long-lived stream per destination: no redial, nothing dropped or refused.
    expect(a.transport.counters).toMatchObject({ sent: 2 * n + 1, dropped: 0, redials: 0 })
    expect(b.transport.counters).toMatchObject({ received: n, rejected: 0 })
    const raftStreams = a.node
      .getConnections(b.node.peerId)
      .flatMap((conn) => conn.streams)
      .filter((s) => s.protocol === a.transport.protocol && s.direction === 'outbound')
    expect(raftStreams).toHaveLength(1)
  })

  it('delivers messages to itself without the network', async () => {
    const a = await agent()
    a.transport.send([beat(a, a, 1), beat(a, a, 2)])
    await waitFor('self delivery', () => a.inbox.length === 2)
    expect(sentAts(a.inbox, a)).toEqual([1, 2])
    expect(a.transport.counters.sent).toBe(0)
  })

  it('rejects a message whose from is not the stream peer, or whose to is not this node', async () => {
    const [a, b, c] = await Promise.all([agent(), agent(), agent()])
    await mesh(a, b, c)
    // A forged `from` through the transport, then an honest message on the same stream.
    a.transport.send([{ ...beat(a, b, 1), from: c.id }, beat(a, b, 2)])
    await waitFor('the honest message', () => b.inbox.length === 1)
    expect(b.inbox).toEqual([beat(a, b, 2)])
    expect(b.transport.counters.rejected).toBe(1)

    // A raw stream: a message for another node, garbage, then a good frame.
    const stream = await a.node.dialProtocol(b.node.peerId, b.transport.protocol)
    const lp = lpStream(stream)
    await lp.write(encodeMessage(beat(a, c, 3)))
    await lp.write(new TextEncoder().encode('{"type":"install","from":"x"}'))
    await lp.write(encodeMessage(beat(a, b, 4)))
    await waitFor('the good raw frame', () => b.inbox.length === 2)
    expect(sentAts(b.inbox, a)).toEqual([2, 4])
    expect(b.transport.counters.rejected).toBe(3)

    // A length prefix over the limit ends that stream; the transport's own stream carries on.
    const raw = await a.node.dialProtocol(b.node.peerId, b.transport.protocol)
    await raw.sink([Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]).catch(() => {})
    await waitFor('the oversized frame refused', () => b.transport.counters.rejected === 4)
    a.transport.send([beat(a, b, 5)])
    await waitFor('later messages still flow', () => sentAts(b.inbox, a).includes(5))
    await stream.close().catch(() => {})
  })

  it('opens a new stream after the connection is closed', async () => {
    const [a, b] = await Promise.all([agent(), agent()])
    await mesh(a, b)
    a.transport.send([beat(a, b, 1)])
    await waitFor('first message', () => b.inbox.length === 1)
    await a.node.hangUp(b.node.peerId)
    // The core retransmits; so does this loop, until something gets through on a new stream.
    let next = 2
    await waitFor('a message after the hang-up', () => {
      a.transport.send([beat(a, b, next++)])
      return sentAts(b.inbox, a).some((s) => s > 1)
    })
    expect(a.transport.counters.redials).toBeGreaterThanOrEqual(1)
    const after = sentAts(b.inbox, a).filter((s) => s > 1)
    expect(after).toEqual([...after].sort((x, y) => x - y))
  })

  it('reaches a peer again after it restarts', async () => {
    const [a, b] = await Promise.all([agent(), agent()])
    await mesh(a, b)
    a.transport.send([beat(a, b, 1)])
    b.transport.send([beat(b, a, 1)])
    await waitFor('both ways before the restart', () => b.inbox.length === 1 && a.inbox.length === 1)

    await stopAgent(b)
    agents.splice(agents.indexOf(b), 1)
    // Sends while it is down are lost (Raft retransmits) and never throw.
    a.transport.send([beat(a, b, 2)])
    const again = await agent(b.key)
    expect(again.id).toBe(b.id)
    a.node.peerStore.merge(again.node.peerId, { multiaddrs: again.node.getMultiaddrs() })
    let next = 3
    await waitFor('a reaches the restarted b', () => {
      a.transport.send([beat(a, b, next++)])
      return again.inbox.length > 0
    })
    again.transport.send([beat(again, a, 2)])
    await waitFor('the restarted b reaches a', () => sentAts(a.inbox, b).includes(2))
    expect(a.transport.counters.redials).toBeGreaterThanOrEqual(1)
  })

  it('start and stop are safe twice, and nothing is sent once stopped', async () => {
    const [a, b] = await Promise.all([agent(), agent()])
    await mesh(a, b)
    await a.transport.start()
    a.transport.send([beat(a, b, 1)])
    await waitFor('delivered', () => b.inbox.length === 1)
    await a.transport.stop()
    await a.transport.stop()
    a.transport.send([beat(a, b, 2)])
    expect(a.transport.counters.dropped).toBe(1)
    // b no longer serves the protocol once stopped: a restarted a cannot open a stream to it.
    await b.transport.stop()
    await expect(a.node.dialProtocol(b.node.peerId, b.transport.protocol)).rejects.toThrow()
  })
})
