/**
 * A gossipsub-like pubsub for the simulated network, with the parameters
 * @chainsafe/libp2p-gossipsub 14 runs under Shoal's options (libp2p-node.ts):
 * - a node's own messages go to every connected subscriber (floodPublish);
 * - messages it receives go on to its mesh peers only (D = 6, Dlo 4, Dhi 12),
 *   kept at each 1 s heartbeat with GRAFT and PRUNE (and a 60 s prune backoff);
 * - message ids are content hashes (StrictNoSign), a seen cache of 2 min drops
 *   copies, and a publish of bytes already seen is refused (PublishError.Duplicate);
 * - each heartbeat sends IHAVE with the ids of the last 3 heartbeats to
 *   max(Dlazy = 6, 25 %) of the non-mesh subscribers, which ask with IWANT for what
 *   they lack; receiving a message of >= 512 B sends IDONTWANT to the mesh.
 * Peer scoring, opportunistic grafting, fanout and flood protection are left out:
 * with Shoal's settings (no colocation penalty, closed clusters) they rarely act.
 */
import { createHash } from 'node:crypto'
import type { SimNode } from './network.js'

const D = 6
const D_LO = 4
const D_HI = 12
const D_LAZY = 6
const GOSSIP_FACTOR = 0.25
const HEARTBEAT_MS = 1_000
const HISTORY_GOSSIP = 3
const HISTORY_LENGTH = 5
const SEEN_TTL_MS = 120_000
const PRUNE_BACKOFF_MS = 60_000
const IDONTWANT_MIN_BYTES = 512

export interface SimMessage {
  id: string
  topic: string
  data: Uint8Array
}

type MessageListener = (evt: { detail: { type: 'unsigned'; topic: string; data: Uint8Array } }) => void

export interface PubsubStats {
  published: number
  delivered: number
  duplicates: number
  iwantServed: number
  refusedDuplicatePublish: number
  /** Data bytes of our own messages (once each), and the largest. */
  publishedBytes: number
  largestPublished: number
}

export class SimPubsub {
  private readonly topics = new Set<string>()
  /** Connected peers that subscribe to our topics. */
  readonly peers = new Map<string, SimNode>()
  readonly mesh = new Map<string, SimNode>()
  /** Gossipsub's getMeshPeers: the mesh is the same for every topic here (membership has one). */
  getMeshPeers(_topic: string): string[] {
    return [...this.mesh.keys()]
  }
  private readonly backoff = new Map<string, number>()
  private readonly seen = new Map<string, number>()
  private readonly seenOrder: Array<[string, number]> = []
  private seenHead = 0
  /** Message ids per heartbeat window, newest first, and the messages they name. */
  private readonly windows: string[][] = [[]]
  private readonly cache = new Map<string, SimMessage>()
  private readonly dontWant = new Map<string, Set<string>>()
  private readonly listeners = new Set<MessageListener>()
  private heartbeatTimer: unknown
  readonly stats: PubsubStats = {
    published: 0,
    delivered: 0,
    duplicates: 0,
    iwantServed: 0,
    refusedDuplicatePublish: 0,
    publishedBytes: 0,
    largestPublished: 0,
  }

  constructor(private readonly node: SimNode) {}

  start(): void {
    const { clock, random } = this.node.world
    this.heartbeatTimer = clock.schedule(
      100 + random() * HEARTBEAT_MS,
      () => this.heartbeat(),
      [],
      HEARTBEAT_MS,
    )
  }

  stop(): void {
    this.node.world.clock.cancel(this.heartbeatTimer)
    this.listeners.clear()
    this.peers.clear()
    this.mesh.clear()
    this.cache.clear()
  }

  /** Forgets the messages held for IHAVE/IWANT (a warm start's re-broadcasts, scenario.ts). */
  dropCachedMessages(): void {
    for (const window of this.windows) window.length = 0
    this.cache.clear()
  }

  subscribe(topic: string): void {
    if (this.topics.has(topic)) return
    this.topics.add(topic)
    for (const connection of this.node.connections.values()) {
      const remote = connection.remote
      this.control(remote, topic.length, () => remote.pubsub.peerSubscribed(this.node, topic))
    }
  }

  unsubscribe(topic: string): void {
    this.topics.delete(topic)
  }

  getTopics(): string[] {
    return [...this.topics]
  }

  addEventListener(type: string, listener: MessageListener): void {
    if (type === 'message') this.listeners.add(listener)
  }

  removeEventListener(type: string, listener: MessageListener): void {
    if (type === 'message') this.listeners.delete(listener)
  }

  /** Our own message: to every connected subscriber (floodPublish). */
  async publish(topic: string, data: Uint8Array): Promise<{ recipients: unknown[] }> {
    const id = createHash('sha256').update(data).digest('base64')
    if (this.seen.has(id)) {
      this.stats.refusedDuplicatePublish++
      throw new Error('PublishError.Duplicate')
    }
    const message: SimMessage = { id, topic, data }
    this.remember(message)
    this.stats.published++
    this.stats.publishedBytes += data.byteLength
    this.stats.largestPublished = Math.max(this.stats.largestPublished, data.byteLength)
    if (this.node.world.gossip === 'flood') this.node.world.flood(this.node, message)
    else for (const peer of this.peers.values()) this.send(peer, message)
    return { recipients: [] }
  }

  /** Flood mode: a message whose spread SimWorld.flood has charged already; deliver it here. */
  receiveFlooded(message: SimMessage): void {
    if (!this.topics.has(message.topic) || this.seen.has(message.id)) return
    this.remember(message)
    this.stats.delivered++
    const detail = { type: 'unsigned' as const, topic: message.topic, data: message.data }
    for (const listener of this.listeners) listener({ detail })
  }

  /** A connection to `remote` was identified: learn its subscriptions. */
  addPeer(remote: SimNode): void {
    for (const topic of remote.pubsub.topics) {
      if (this.topics.has(topic)) {
        this.peers.set(remote.id, remote)
        return
      }
    }
  }

  removePeer(id: string): void {
    this.peers.delete(id)
    this.mesh.delete(id)
  }

  private peerSubscribed(remote: SimNode, topic: string): void {
    if (this.topics.has(topic) && this.node.connections.has(remote.id)) this.peers.set(remote.id, remote)
  }

  private receive(message: SimMessage, from: SimNode): void {
    if (!this.node.up || !this.topics.has(message.topic) || !this.node.connections.has(from.id)) return
    if (this.seen.has(message.id)) {
      this.stats.duplicates++
      return
    }
    this.remember(message)
    if (message.data.byteLength >= IDONTWANT_MIN_BYTES) {
      for (const peer of this.mesh.values()) {
        if (peer !== from) this.control(peer, 0, () => peer.pubsub.noteDontWant(message.id, this.node.id), 1)
      }
    }
    this.stats.delivered++
    const detail = { type: 'unsigned' as const, topic: message.topic, data: message.data }
    for (const listener of this.listeners) listener({ detail })
    const unwanted = this.dontWant.get(message.id)
    for (const peer of this.mesh.values()) {
      if (peer !== from && !unwanted?.has(peer.id)) this.send(peer, message)
    }
  }

  private noteDontWant(id: string, peer: string): void {
    if (!this.cache.has(id) && this.seen.has(id)) return
    let set = this.dontWant.get(id)
    if (set == null) {
      set = new Set()
      this.dontWant.set(id, set)
    }
    set.add(peer)
  }

  private remember(message: SimMessage): void {
    const expires = this.node.world.clock.now + SEEN_TTL_MS
    this.seen.set(message.id, expires)
    this.seenOrder.push([message.id, expires])
    this.windows[0]!.push(message.id)
    this.cache.set(message.id, message)
  }

  private send(peer: SimNode, message: SimMessage): void {
    const world = this.node.world
    world.noteSend(this.node)
    world.charge(
      this.node,
      peer,
      'gossip',
      message.data.byteLength + message.topic.length + world.costs.gossipMessage,
    )
    const from = this.node
    world.after(world.delay(from, peer), peer, () => peer.pubsub.receive(message, from))
  }

  /** A control message (GRAFT, PRUNE, IHAVE, IWANT, IDONTWANT, subscription) of `extra` bytes plus `ids` ids. */
  private control(peer: SimNode, extra: number, arrive: () => void, ids = 0): void {
    const world = this.node.world
    world.noteSend(this.node)
    world.charge(this.node, peer, 'control', world.costs.control + extra + ids * world.costs.messageId)
    world.after(world.delay(this.node, peer), peer, arrive)
  }

  private heartbeat(): void {
    const { clock, random } = this.node.world
    const now = clock.now
    const topic = this.topics.values().next().value
    if (topic != null) {
      for (const id of this.mesh.keys()) if (!this.peers.has(id)) this.mesh.delete(id)
      if (this.mesh.size < D_LO) {
        const candidates = [...this.peers.values()].filter(
          (peer) => !this.mesh.has(peer.id) && (this.backoff.get(peer.id) ?? 0) <= now,
        )
        for (const peer of sample(candidates, D - this.mesh.size, random)) {
          this.mesh.set(peer.id, peer)
          this.control(peer, topic.length, () => peer.pubsub.grafted(this.node, topic))
        }
      } else if (this.mesh.size > D_HI) {
        const excess = sample([...this.mesh.values()], this.mesh.size - D, random)
        for (const peer of excess) this.prune(peer, topic)
      }
      this.emitGossip(topic)
    }
    this.windows.unshift([])
    if (this.windows.length > HISTORY_LENGTH) {
      for (const id of this.windows.pop()!) {
        this.cache.delete(id)
        this.dontWant.delete(id)
      }
    }
    while (this.seenHead < this.seenOrder.length && this.seenOrder[this.seenHead]![1] <= now) {
      const [id, expires] = this.seenOrder[this.seenHead++]!
      if (this.seen.get(id) === expires) this.seen.delete(id)
    }
    if (this.seenHead > 10_000) {
      this.seenOrder.splice(0, this.seenHead)
      this.seenHead = 0
    }
  }

  private prune(peer: SimNode, topic: string): void {
    this.mesh.delete(peer.id)
    this.backoff.set(peer.id, this.node.world.clock.now + PRUNE_BACKOFF_MS)
    this.control(peer, topic.length + 3, () => peer.pubsub.pruned(this.node))
  }

  private grafted(remote: SimNode, topic: string): void {
    const now = this.node.world.clock.now
    if (!this.topics.has(topic) || !this.peers.has(remote.id) || (this.backoff.get(remote.id) ?? 0) > now) {
      this.prune(remote, topic)
      return
    }
    this.mesh.set(remote.id, remote)
  }

  private pruned(remote: SimNode): void {
    this.mesh.delete(remote.id)
    this.backoff.set(remote.id, this.node.world.clock.now + PRUNE_BACKOFF_MS)
  }

  private emitGossip(topic: string): void {
    const world = this.node.world
    if (world.gossip === 'flood') {
      // Every member holds every message: IHAVE carries the ids of the last 3 heartbeats, never asked for.
      const ids = Math.min(5_000, world.recentCount(HISTORY_GOSSIP * HEARTBEAT_MS))
      if (ids === 0) return
      const others = [...this.peers.values()].filter((peer) => !this.mesh.has(peer.id))
      const count = Math.max(D_LAZY, Math.ceil(GOSSIP_FACTOR * others.length))
      for (const peer of sample(others, count, world.random))
        world.charge(
          this.node,
          peer,
          'control',
          world.costs.control + topic.length + ids * world.costs.messageId,
        )
      return
    }
    const ids: string[] = []
    for (let i = 0; i < Math.min(HISTORY_GOSSIP, this.windows.length); i++) ids.push(...this.windows[i]!)
    if (ids.length === 0) return
    const others = [...this.peers.values()].filter((peer) => !this.mesh.has(peer.id))
    const count = Math.max(D_LAZY, Math.ceil(GOSSIP_FACTOR * others.length))
    const have = ids.slice(0, 5_000)
    for (const peer of sample(others, count, this.node.world.random)) {
      this.control(peer, topic.length, () => peer.pubsub.offered(have, this.node), have.length)
    }
  }

  /** IHAVE: ask for what we have not seen. */
  private offered(ids: string[], remote: SimNode): void {
    if (!this.node.connections.has(remote.id)) return
    const wanted = ids.filter((id) => !this.seen.has(id))
    if (wanted.length === 0) return
    this.control(remote, 0, () => remote.pubsub.asked(wanted, this.node), wanted.length)
  }

  /** IWANT: send what is still in the message cache. */
  private asked(ids: string[], remote: SimNode): void {
    if (!this.node.connections.has(remote.id)) return
    for (const id of ids) {
      const message = this.cache.get(id)
      if (message == null) continue
      this.stats.iwantServed++
      this.send(remote, message)
    }
  }
}

/** Up to `count` items picked at random (partial Fisher-Yates on a copy). */
function sample<T>(items: T[], count: number, random: () => number): T[] {
  const out = [...items]
  const n = Math.min(count, out.length)
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (out.length - i))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out.slice(0, n)
}
