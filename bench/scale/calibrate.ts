/**
 * Calibration of the simulated wire (costs.ts) on real libp2p nodes built exactly
 * as an agent builds them (createNode: TCP, noise, yamux, identify, ping,
 * gossipsub with Shoal's options) on 127.0.0.1, counting connection bytes with the
 * agent's wire meter: what a connection costs to open, what a stream and each
 * message on it cost, what a gossip message costs per hop. Then three checks of
 * libp2p behaviour the simulation relies on:
 * - gossipsub refuses to publish bytes it has already seen (the second copy of
 *   membership's repeated broadcast never leaves the node);
 * - a node holding maxConnections refuses inbound connections;
 * - the connection pruner does not close connections that carry a gossipsub stream.
 */
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { type PubSub, StrictNoSign } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createNode, type ShoalLibp2p } from '../../src/bootstrap/libp2p-node.js'
import type { WireTraffic } from '../../src/bootstrap/wire-meter.js'
import { membershipProtocols } from '../../src/membership/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { exchange, serve } from '../../src/shared/stream-rpc.js'
import { VERSION } from '../../src/shared/version.js'
import { DEFAULT_COSTS, type WireCosts } from './costs.js'

export interface Calibration {
  costs: WireCosts
  measured: {
    connectDialerBytes: number
    connectListenerBytes: number
    /** One ping/ack exchange on an open connection, bytes each side sent. */
    probeInitiatorBytes: number
    probeResponderBytes: number
    /** Bytes a receiver got per gossip message of 100 B (data 100 B + topic + framing). */
    gossipPerHopBytes: number
    /** Bytes per second one idle connection carried (both directions), measured over `idleWindowS`. */
    idleConnectionBytesPerSec: number
    idleWindowS: number
    /** Heap and RSS one open, identified connection with gossipsub costs, per end (hub and spokes in this process). */
    connectionHeapKB: number | null
    connectionRssKB: number
    connectionsMeasured: number
  }
  checks: {
    duplicatePublishRefused: boolean
    inboundRefusedAtMaxConnections: boolean
    /** The connections already carrying gossipsub streams all stayed when the pruner ran. */
    prunerKeptGossipConnections: boolean
    /** A new outbound connection over the limit stayed when a stream opened on it at once (a probe). */
    outboundWithStreamKept: boolean
    /** A new outbound connection over the limit stayed with no stream on it. */
    outboundBareKept: boolean
    details: string[]
  }
}

const CLUSTER = 'bench-100'
const CHECK_PROTOCOL = '/shoal/check/probe/1.0.0'
const EXCHANGES = 100

export async function calibrate(options: { idleWindowS?: number } = {}): Promise<Calibration> {
  const idleWindowS = options.idleWindowS ?? 32
  const protocols = membershipProtocols(CLUSTER)
  const traffic = [0, 1, 2].map((): WireTraffic => ({ sentBytes: 0, receivedBytes: 0 }))
  const nodes = await Promise.all(traffic.map((t) => makeNode(t)))
  const [a, b, c] = nodes as [ShoalLibp2p, ShoalLibp2p, ShoalLibp2p]
  const sent = (i: number) => traffic[i]!.sentBytes
  try {
    for (const node of nodes) {
      await serve(node, protocols.probe, { timeoutMs: 5000, maxBytes: 1 << 22 }, silentLogger, async (ch) => {
        const request = new TextDecoder().decode(await ch.read())
        const extra = JSON.parse(request) as { answers?: number; t: string }
        for (let i = 0; i < (extra.answers ?? 1); i++) await ch.write(encode({ t: 'ack' }))
        if (extra.t === 'two') await ch.read()
      })
      node.services.pubsub.subscribe(protocols.topic)
    }
    // 1. A connection: A dials B; until identify and the gossipsub hello are done, and quiet.
    const before = [sent(0), sent(1)]
    await a.dial(b.getMultiaddrs()[0]!)
    await until(() => a.services.pubsub.getSubscribers(protocols.topic).length === 1)
    await until(() => b.services.pubsub.getSubscribers(protocols.topic).length === 1)
    await sleep(1500)
    const connectDialerBytes = sent(0) - before[0]!
    const connectListenerBytes = sent(1) - before[1]!

    // 2. Exchanges on that connection: 1 write each way; 2 writes by the initiator; 2 by the responder.
    const measure = async (request: object, talk: 'one' | 'two' | 'answers') => {
      const start = [sent(0), sent(1)]
      const body = encode(request)
      for (let i = 0; i < EXCHANGES; i++) {
        await exchange(a, b.peerId, protocols.probe, { timeoutMs: 5000, maxBytes: 1 << 22 }, async (ch) => {
          await ch.write(body)
          await ch.read()
          if (talk === 'answers') await ch.read()
          if (talk === 'two') await ch.write(body)
        })
      }
      await sleep(300)
      return {
        initiator: (sent(0) - start[0]!) / EXCHANGES,
        responder: (sent(1) - start[1]!) / EXCHANGES,
        bytes: body.byteLength,
      }
    }
    const one = await measure({ t: 'ping' }, 'one')
    const two = await measure({ t: 'two' }, 'two')
    const answers = await measure({ t: 'ping', answers: 2 }, 'answers')
    const ack = encode({ t: 'ack' }).byteLength
    // one: openI + protocol + (b1 + f) + close; two: openI + protocol + 2 (b2 + f) + close.
    const frameI = two.initiator - one.initiator - 2 * two.bytes + one.bytes
    const frameR = answers.responder - one.responder - ack
    const frame = (frameI + frameR) / 2
    const close = DEFAULT_COSTS.streamClose
    const protocolBytes = protocols.probe.length + 1

    // 3. Gossip: C connects to A too; A publishes 100-byte messages; what B receives per message.
    await c.dial(a.getMultiaddrs()[0]!)
    await until(() => a.services.pubsub.getSubscribers(protocols.topic).length === 2)
    await sleep(2500)
    const gossipStart = traffic[1]!.receivedBytes
    const MESSAGES = 50
    for (let i = 0; i < MESSAGES; i++) {
      const data = new Uint8Array(100)
      new DataView(data.buffer).setUint32(0, i)
      await a.services.pubsub.publish(protocols.topic, data)
      await sleep(20)
    }
    await sleep(500)
    const gossipPerHopBytes = (traffic[1]!.receivedBytes - gossipStart) / MESSAGES

    // 4. Check: the same bytes published twice: the second is refused.
    const details: string[] = []
    const repeat = new TextEncoder().encode('{"v":1,"claims":[]} repeat check')
    await a.services.pubsub.publish(protocols.topic, repeat)
    let duplicatePublishRefused = false
    try {
      await a.services.pubsub.publish(protocols.topic, repeat)
    } catch (err) {
      duplicatePublishRefused = String(err).includes('Duplicate')
      details.push(`second publish of the same bytes: ${String(err)}`)
    }

    // 5. An idle connection (A-B, A-C): keep-alive and gossipsub heartbeats only.
    const idleStart = traffic.reduce((s, t) => s + t.sentBytes, 0)
    await sleep(idleWindowS * 1000)
    const idleBytes = traffic.reduce((s, t) => s + t.sentBytes, 0) - idleStart
    const idleConnectionBytesPerSec = idleBytes / 2 / idleWindowS

    const checks = await checkConnectionLimits(details)
    const connectionMemory = await measureConnectionMemory()
    const costs: WireCosts = {
      ...DEFAULT_COSTS,
      connectDialer: Math.round(connectDialerBytes),
      connectListener: Math.round(connectListenerBytes),
      frame: Math.round(frame),
      streamOpenInitiator: Math.round(one.initiator - one.bytes - frame - close - protocolBytes),
      streamOpenResponder: Math.round(one.responder - ack - frame - close - protocolBytes),
      streamClose: close,
      gossipMessage: Math.round(gossipPerHopBytes - 100 - protocols.topic.length),
      keepAlive: Math.max(0, Math.round((idleConnectionBytesPerSec * DEFAULT_COSTS.keepAliveMs) / 1000 / 2)),
    }
    return {
      costs,
      measured: {
        connectDialerBytes,
        connectListenerBytes,
        probeInitiatorBytes: one.initiator,
        probeResponderBytes: one.responder,
        gossipPerHopBytes,
        idleConnectionBytesPerSec: Math.round(idleConnectionBytesPerSec * 10) / 10,
        idleWindowS,
        ...connectionMemory,
      },
      checks: { duplicatePublishRefused, ...checks, details },
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()))
  }
}

/**
 * A hub with maxConnections 3 and five subscribers: the fourth inbound connection
 * is refused; the hub's own outbound dial takes it to 4, and the pruner closes none
 * of them (each carries a gossipsub stream). Built with the same modules and
 * gossipsub options as createNode, with a small limit (createNode fixes it at 400).
 */
async function checkConnectionLimits(details: string[]) {
  const topic = '/shoal/check/membership/1'
  const make = async (maxConnections: number) => {
    const node = (await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionMonitor: { enabled: false },
      connectionManager: { maxConnections, inboundConnectionThreshold: 200 },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          doPX: false,
          globalSignaturePolicy: StrictNoSign,
          scoreParams: { IPColocationFactorWeight: 0 },
        }) as never,
      },
    })) as unknown as Libp2p<{ pubsub: PubSub }>
    node.services.pubsub.subscribe(topic)
    await node.handle(CHECK_PROTOCOL, ({ stream }) => {
      void stream.close()
    })
    return node
  }
  const hub = await make(3)
  const spokes = await Promise.all([1, 2, 3, 4, 5].map(() => make(100)))
  try {
    const outcomes: boolean[] = []
    for (const spoke of spokes.slice(0, 4)) {
      const ok = await spoke
        .dial(hub.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(3000) })
        .then(() => sleep(400))
        .then(
          () => hub.getConnections(spoke.peerId).length > 0,
          () => false,
        )
      outcomes.push(ok)
    }
    details.push(`inbound connections to a hub with maxConnections 3: ${outcomes.join(', ')}`)
    await sleep(1000)
    // A bare outbound dial over the limit (no stream yet when the pruner looks) ...
    await hub.dial(spokes[3]!.getMultiaddrs()[0]!)
    await sleep(2000)
    const bare = hub.getConnections().length
    const keptBare = hub.getConnections(spokes[3]!.peerId).length > 0
    // ... and one that opens a stream at once, as a membership probe does.
    let streamOutcome = 'stream opened'
    try {
      const stream = await hub.dialProtocol(spokes[4]!.getMultiaddrs()[0]!, CHECK_PROTOCOL)
      await stream.close().catch(() => {})
    } catch (err) {
      streamOutcome = `stream failed: ${String(err)}`
    }
    await sleep(2000)
    const held = hub.getConnections()
    const withGossip = held.filter((conn) => conn.streams.some((s) => s.protocol?.startsWith('/meshsub/')))
    details.push(
      `hub at its limit of 3, outbound dial with no stream: ${bare} connections after, new one kept: ${keptBare}`,
      `hub at its limit, outbound dial opening a stream at once (${streamOutcome}): ${held.length} connections after ` +
        `(${withGossip.length} with a gossipsub stream), new one kept: ${hub.getConnections(spokes[4]!.peerId).length > 0}`,
    )
    return {
      inboundRefusedAtMaxConnections: outcomes.slice(0, 3).every(Boolean) && outcomes[3] === false,
      prunerKeptGossipConnections: withGossip.length >= 3 && held.length >= 3,
      outboundWithStreamKept: hub.getConnections(spokes[4]!.peerId).length > 0,
      outboundBareKept: keptBare,
    }
  } finally {
    await Promise.all([hub, ...spokes].map((node) => node.stop()))
  }
}

/**
 * Memory per connection: a hub dials CONNECTIONS other nodes (all built by
 * createNode, all in this process, subscribed to one topic); the heap after a full
 * GC and the RSS before and after, divided by 2 per connection (both ends are here).
 */
async function measureConnectionMemory() {
  const CONNECTIONS = 40
  v8.setFlagsFromString('--expose_gc')
  const gc = runInNewContext('gc') as (() => void) | undefined
  const topic = membershipProtocols(CLUSTER).topic
  const nodes = await Promise.all(
    Array.from({ length: CONNECTIONS + 1 }, () => makeNode({ sentBytes: 0, receivedBytes: 0 })),
  )
  try {
    for (const node of nodes) node.services.pubsub.subscribe(topic)
    await sleep(1000)
    gc?.()
    const heap0 = process.memoryUsage().heapUsed
    const rss0 = process.memoryUsage().rss
    const [hub, ...spokes] = nodes as [ShoalLibp2p, ...ShoalLibp2p[]]
    for (const spoke of spokes) await hub.dial(spoke.getMultiaddrs()[0]!)
    await until(() => hub.services.pubsub.getSubscribers(topic).length === CONNECTIONS, 30_000)
    await sleep(2000)
    gc?.()
    const perEnd = (bytes: number) => Math.round(bytes / CONNECTIONS / 2 / 1024)
    return {
      connectionHeapKB: gc == null ? null : perEnd(process.memoryUsage().heapUsed - heap0),
      connectionRssKB: perEnd(process.memoryUsage().rss - rss0),
      connectionsMeasured: CONNECTIONS,
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()))
  }
}

async function makeNode(traffic: WireTraffic): Promise<ShoalLibp2p> {
  const node = await createNode(
    {
      cluster: CLUSTER,
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      secret: null,
      mdns: false,
      mdnsIntervalMs: presetTimers('lan').mdns.intervalMs,
      traffic,
      version: VERSION,
    },
    silentLogger,
  )
  await node.start()
  return node
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

async function until(done: () => boolean, capMs = 10_000): Promise<void> {
  const start = Date.now()
  while (!done()) {
    if (Date.now() - start > capMs) throw new Error('calibration: condition not reached in time')
    await sleep(20)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
