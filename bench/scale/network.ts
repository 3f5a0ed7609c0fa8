/**
 * The simulated network: nodes with addresses, lazily opened connections with a
 * handshake cost, multiplexed streams carrying the bytes membership writes, and a
 * gossipsub-like pubsub (pubsub.ts), all on the virtual clock. Each node offers
 * what `MembershipNetwork` asks of libp2p, so the real `Membership` runs on it
 * unchanged. Every byte a node would put on the wire is counted, by category,
 * with the framing libp2p adds (costs.ts).
 *
 * What it models from libp2p 2.x as Shoal configures it (src/bootstrap/libp2p-node.ts):
 * - one connection per pair of members, opened by the first dial after
 *   `connectRtts` round trips; closed only by a member (membership's connection
 *   budget, a hang-up) or a crash, never by libp2p's pruner below its limit (it
 *   cannot close connections that carry a gossipsub stream, and every member
 *   connection does). A close takes effect at once at the end that closes and one
 *   way later at the other; both ends reset their streams, drop the pubsub peer
 *   (mesh included) and fire `peer:disconnect`; a stream opened on a connection
 *   the other end has closed fails with a reset one round trip later, and a new
 *   dial opens a new connection;
 * - inbound connections refused once a node holds `maxConnections` (libp2p's
 *   `acceptIncomingConnection`), and a node holding that many loses any new
 *   outbound connection to the pruner as soon as it opens (calibrate.ts checks both
 *   on real libp2p);
 * - `peer:identify` one round trip after a connection opens, `peer:disconnect`
 *   when the last connection to a peer closes;
 * - a crashed node's connections close (its peers see it at once, as on one host),
 *   and dials to it are refused after one round trip.
 * Latency is fixed per pair (uniform in [latencyMinMs, latencyMaxMs], one way);
 * with `loss` > 0 that share of messages waits a TCP retransmission (200 ms) more.
 * CPU time is free: no node is late unless a scenario stalls it (clock.ts `stall`):
 * everything delivered to a node runs as its code (the clock's `context`), so what
 * reaches a stalled node waits for the stall's end, in the order it arrived.
 *
 * One-way loss (`blockOneWay(from, to, ms)`): every packet from `from` to `to` is
 * lost for a while, the other direction still flows. Over TCP that is not a clean
 * cut, and it is modelled as TCP behaves:
 * - on the pair's connection, what `from` writes to `to` never arrives while the
 *   block lasts: it stays queued in `from`'s socket (the writes succeed), and TCP
 *   retransmits the oldest unacknowledged segment with exponential backoff (200 ms,
 *   doubling, at most 120 s apart); the first retransmission after the block lifts
 *   delivers the whole queue, in order, and whatever `from` writes meanwhile waits
 *   behind it. Nothing closes the connection: libp2p's connection monitor is off
 *   (libp2p-node.ts) and yamux's keep-alive pings have no deadline, so neither end
 *   notices (TCP itself would give up after ~15 min of retransmissions, tcp_retries2;
 *   blocks are shorter than that). What `to` writes to `from` arrives (`from`'s ACKs
 *   are lost, so `to` retransmits too, but its bytes were delivered the first time);
 * - a new connection between the two, dialled either way, cannot complete while the
 *   block lasts (the SYN or the SYN-ACK is lost): the dialler resends its SYN 1, 3
 *   and 7 s after the first (Linux's initial RTO of 1 s, doubling) and the dial
 *   completes on the first SYN after the block lifts, or fails at libp2p's dial
 *   timeout (10 s) if there is none. (Yamux's flow-control window, which would stop
 *   a writer after 256 KB queued, is not modelled: membership's messages are small.)
 */
import type { PeerId } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { MembershipNetwork } from '../../src/membership/index.js'
import type { VirtualClock } from './clock.js'
import type { WireCosts } from './costs.js'
import { type SimMessage, SimPubsub } from './pubsub.js'

export const CATEGORIES = ['probe', 'sync', 'gossip', 'control', 'connect', 'keepalive'] as const
export type Category = (typeof CATEGORIES)[number]
const CATEGORY_INDEX: Record<Category, number> = {
  probe: 0,
  sync: 1,
  gossip: 2,
  control: 3,
  connect: 4,
  keepalive: 5,
}
const RETRANSMIT_MS = 200
/** TCP's retransmission timeout cap (Linux TCP_RTO_MAX). */
const RTO_MAX_MS = 120_000
/** A lost SYN is resent this long after the first (Linux: initial RTO 1 s, doubling). */
const SYN_RETRIES_MS = [1_000, 3_000, 7_000]
/** libp2p 2.x's dial timeout (connection-manager constants: DIAL_TIMEOUT). */
const DIAL_TIMEOUT_MS = 10_000
const GOSSIPSUB_PROTOCOL = '/meshsub/1.2.0'

export interface WorldInit {
  clock: VirtualClock
  costs: WireCosts
  random: () => number
  latencyMinMs?: number
  latencyMaxMs?: number
  loss?: number
  /** libp2p connectionManager.maxConnections as Shoal sets it. */
  maxConnections?: number
  /**
   * `events` (default): every gossip copy on every hop is an event. `flood`: a
   * message's spread over the mesh is computed at once (breadth-first, hop by hop,
   * every copy still counted in bytes) and delivered only to nodes that
   * `interested` names: what makes 10,000 members affordable (hybrid.ts).
   */
  gossip?: 'events' | 'flood'
  interested?: (node: SimNode) => boolean
  /**
   * Called for each flooded message with its arrival time at any node (null: not
   * reached) and how many nodes it reached (0: the publisher had no pubsub peer).
   */
  onFlood?: (
    message: SimMessage,
    publisher: SimNode,
    arrival: (node: SimNode) => number | null,
    reached: number,
  ) => void
}

/** One direction of a pair whose packets are lost (SimWorld.blockOneWay). */
interface OneWayBlock {
  /** Virtual ms the block lifts. */
  until: number
  /** When the first write still queued behind the block was made (null: none yet). */
  firstQueuedAt: number | null
}

/** Bytes a node sent and received, per category. */
export class Meter {
  readonly sent = new Float64Array(CATEGORIES.length)
  readonly received = new Float64Array(CATEGORIES.length)

  total(which: 'sent' | 'received'): number {
    let sum = 0
    for (const value of this[which]) sum += value
    return sum
  }
}

type Listener = (evt: { detail: unknown }) => void
type StreamHandler = (data: { stream: SimStream; connection: SimConnection }) => void

export class SimWorld {
  readonly clock: VirtualClock
  readonly costs: WireCosts
  readonly random: () => number
  readonly nodes = new Map<string, SimNode>()
  private readonly byHost = new Map<string, SimNode>()
  private readonly latencyMin: number
  private readonly latencySpan: number
  private loss: number
  readonly maxConnections: number
  readonly gossip: 'events' | 'flood'
  private readonly interested: (node: SimNode) => boolean
  private readonly onFlood: WorldInit['onFlood']
  private floodGeneration = 0
  /** Publish times of recent messages (flood mode: every member holds every message, for IHAVE sizes). */
  readonly recentMessages: number[] = []
  /**
   * Connections opened and dials refused, over the whole run; one-way loss: messages
   * held behind a block, dials that timed out across one; sends by a stalled node
   * (must stay 0: a stalled node runs nothing).
   */
  readonly totals = {
    connections: 0,
    refusedFull: 0,
    prunedOutbound: 0,
    refusedDown: 0,
    streams: 0,
    heldByOneWayLoss: 0,
    dialsLostToOneWayLoss: 0,
    sentWhileStalled: 0,
  }
  private readonly blocks = new Map<string, OneWayBlock>()
  private nextHost = 1

  constructor(init: WorldInit) {
    this.clock = init.clock
    this.costs = init.costs
    this.random = init.random
    this.latencyMin = init.latencyMinMs ?? 1
    this.latencySpan = (init.latencyMaxMs ?? 5) - this.latencyMin
    this.loss = init.loss ?? 0
    this.maxConnections = init.maxConnections ?? 400
    this.gossip = init.gossip ?? 'events'
    this.interested = init.interested ?? (() => true)
    this.onFlood = init.onFlood
  }

  /**
   * Flood mode: `message` spreads from `publisher` to its connected subscribers
   * (floodPublish), then from each node that gets it to its mesh peers but the one
   * it came from, hop by hop. Every copy is charged; interested nodes get theirs
   * at its arrival time (the first copy, by hops).
   */
  flood(publisher: SimNode, message: SimMessage): void {
    const generation = ++this.floodGeneration
    const size = message.data.byteLength + message.topic.length + this.costs.gossipMessage
    const now = this.clock.now
    const queue: SimNode[] = []
    const reach = (node: SimNode, at: number, parent: SimNode) => {
      if (node.floodMark === generation || !node.up) return
      node.floodMark = generation
      node.floodAt = at
      node.floodParent = parent
      queue.push(node)
    }
    publisher.floodMark = generation
    publisher.floodAt = now
    for (const peer of publisher.pubsub.peers.values()) {
      this.charge(publisher, peer, 'gossip', size)
      reach(peer, now + this.delay(publisher, peer), publisher)
    }
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head]!
      for (const peer of node.pubsub.mesh.values()) {
        if (peer === node.floodParent || !peer.up) continue
        this.charge(node, peer, 'gossip', size)
        reach(peer, node.floodAt + this.delay(node, peer), node)
      }
    }
    this.recentMessages.push(now)
    for (const node of queue) {
      if (this.interested(node))
        this.clock.schedule(
          node.floodAt - now,
          () => {
            if (node.up) node.pubsub.receiveFlooded(message)
          },
          [],
          null,
          node,
        )
    }
    this.onFlood?.(
      message,
      publisher,
      (node) => (node.floodMark === generation ? node.floodAt : null),
      queue.length,
    )
  }

  /** Messages published in the last `ms` (flood mode). */
  recentCount(ms: number): number {
    const since = this.clock.now - ms
    while (this.recentMessages.length > 0 && this.recentMessages[0]! < since - 10_000)
      this.recentMessages.shift()
    let count = 0
    for (let i = this.recentMessages.length - 1; i >= 0 && this.recentMessages[i]! >= since; i--) count++
    return count
  }

  /** A new node on its own host (10.x.y.z:4001), not started. */
  addNode(peerId: PeerId): SimNode {
    const n = this.nextHost++
    const host = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
    const node = new SimNode(this, peerId, host)
    this.nodes.set(node.id, node)
    this.byHost.set(host, node)
    return node
  }

  nodeAt(addr: Multiaddr): SimNode | undefined {
    const host = addr.toString().split('/')[2]
    return host == null ? undefined : this.byHost.get(host)
  }

  /**
   * One-way delay of a message on the connection from `a` to `b`: fixed per pair,
   * plus a retransmission now and then with loss, or until a one-way block's queue
   * is delivered (blockOneWay).
   */
  delay(a: SimNode, b: SimNode): number {
    const wire = this.linkDelay(a, b)
    if (this.blocks.size === 0) return wire
    const key = pairKey(a, b)
    const block = this.blocks.get(key)
    if (block == null) return wire
    const now = this.clock.now
    if (now < block.until) {
      block.firstQueuedAt ??= now
    } else if (block.firstQueuedAt == null) {
      this.blocks.delete(key)
      return wire
    }
    const flush = retransmittedAt(block.firstQueuedAt!, block.until)
    if (now >= flush) {
      this.blocks.delete(key)
      return wire
    }
    this.totals.heldByOneWayLoss++
    return flush - now + wire
  }

  /** Sets the share of packets lost (each waits a TCP retransmission) from now on. */
  setLoss(loss: number): void {
    this.loss = loss
  }

  /** One-way delay of a packet between two nodes (fixed per pair), plus a retransmission now and then with loss. */
  linkDelay(a: SimNode, b: SimNode): number {
    const base = this.latencyMin + this.latencySpan * pairFraction(a.index, b.index)
    return this.loss > 0 && this.random() < this.loss ? base + RETRANSMIT_MS : base
  }

  /**
   * Loses every packet from `from` to `to` for `ms` virtual ms from now (the other
   * direction still flows): what that does to TCP is in this file's comment.
   */
  blockOneWay(from: SimNode, to: SimNode, ms: number): void {
    const key = pairKey(from, to)
    const until = this.clock.now + ms
    const block = this.blocks.get(key)
    if (block != null && block.until >= this.clock.now) block.until = Math.max(block.until, until)
    else this.blocks.set(key, { until, firstQueuedAt: null })
  }

  /** Whether packets from `from` to `to` are lost now. */
  isBlocked(from: SimNode, to: SimNode): boolean {
    const block = this.blocks.size === 0 ? undefined : this.blocks.get(pairKey(from, to))
    return block != null && this.clock.now < block.until
  }

  /** Virtual ms until neither direction between `a` and `b` is blocked (0: not blocked now). */
  private blockedFor(a: SimNode, b: SimNode): number {
    if (this.blocks.size === 0) return 0
    const now = this.clock.now
    const until = Math.max(
      this.blocks.get(pairKey(a, b))?.until ?? 0,
      this.blocks.get(pairKey(b, a))?.until ?? 0,
    )
    return Math.max(0, until - now)
  }

  /**
   * A new connection between `a` and `b` replaces any earlier one: what was queued on
   * that one behind a block that has lifted no longer holds anything up.
   */
  private forgetLiftedBlocks(a: SimNode, b: SimNode): void {
    if (this.blocks.size === 0) return
    for (const key of [pairKey(a, b), pairKey(b, a)]) {
      const block = this.blocks.get(key)
      if (block != null && block.until <= this.clock.now) this.blocks.delete(key)
    }
  }

  /** ms after now at which a dial's SYN gets through between `a` and `b`; null if none does before the dial timeout. */
  synDelay(a: SimNode, b: SimNode): number | null {
    const blocked = this.blockedFor(a, b)
    if (blocked === 0) return 0
    const retry = SYN_RETRIES_MS.find((at) => at >= blocked)
    return retry ?? null
  }

  /** Runs `fn` now as code of `node`; if `node` is stalled, when the stall ends (after what reached it before). */
  runAs(node: SimNode, fn: () => void): void {
    if (this.clock.isStalled(node)) this.clock.schedule(0, fn, [], null, node)
    else this.clock.runAs(node, fn)
  }

  /** A promise that settles as code of `node`: at once, or when its stall ends. */
  resumeIn(node: SimNode): Promise<void> {
    return new Promise((resolve) => this.clock.schedule(0, () => resolve(), [], null, node))
  }

  /** Notes that `node` sends something: a stalled node must not (it runs nothing). */
  noteSend(node: SimNode): void {
    if (this.clock.isStalled(node)) this.totals.sentWhileStalled++
  }

  /** Called by the connection handshake once a connection is open. */
  connectionOpened(a: SimNode, b: SimNode): void {
    this.forgetLiftedBlocks(a, b)
  }

  /** Counts `bytes` from `from` to `to`. */
  charge(from: SimNode, to: SimNode, category: Category, bytes: number): void {
    const i = CATEGORY_INDEX[category]
    from.meter.sent[i]! += bytes
    to.meter.received[i]! += bytes
  }

  /** Runs `fn` after `ms` virtual ms as code of `node` (a delivery to it), unless `node` has crashed by then. */
  after(ms: number, node: SimNode, fn: () => void): void {
    this.clock.schedule(
      ms,
      () => {
        if (node.up) fn()
      },
      [],
      null,
      node,
    )
  }
}

/** One end of a connection between two simulated nodes. */
export class SimConnection {
  readonly id: string
  status: 'open' | 'closed' = 'open'
  readonly timeline: { open: number; close?: number }
  readonly streams: SimStream[] = []
  other!: SimConnection
  readonly remotePeer: PeerId
  readonly remoteAddr: Multiaddr

  constructor(
    readonly local: SimNode,
    readonly remote: SimNode,
    readonly direction: 'inbound' | 'outbound',
    id: number,
  ) {
    this.id = `c${id}`
    // Date.now as libp2p stamps it (virtual while the clock is installed): membership
    // compares it with its own Date.now (the connection budget, stale connections).
    this.timeline = { open: Date.now() }
    this.remotePeer = remote.peerId
    this.remoteAddr = remote.addr
  }

  /** Closes both ends: this one at once, the other when the close reaches it (one way later). */
  async close(): Promise<void> {
    this.local.world.clock.schedule(0, () => this.local.closeConnection(this))
  }

  abort(): void {
    this.local.closeConnection(this)
  }

  async newStream(protocols: string | string[]): Promise<SimStream> {
    const protocol = Array.isArray(protocols) ? protocols[0]! : protocols
    return this.local.openStream(this, protocol)
  }
}

let nextStreamId = 0

/**
 * One end of a stream: `source` yields what the other end wrote, `sink` writes,
 * with the byte stream interface libp2p 2.x gives (it-byte-stream and
 * it-length-prefixed-stream run on it unchanged).
 */
export class SimStream {
  readonly id = `s${nextStreamId++}`
  status: 'open' | 'closed' | 'aborted' | 'reset' = 'open'
  peer!: SimStream
  private readonly inbox: Uint8Array[] = []
  private ended = false
  private failure: Error | undefined
  private waiter: { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: Error) => void } | undefined
  private writeClosed = false
  private readonly closedWrite: Promise<IteratorResult<Uint8Array>>
  private markClosedWrite: () => void = () => {}
  private lastArrival = 0
  readonly source: AsyncIterable<Uint8Array>

  constructor(
    readonly node: SimNode,
    readonly connection: SimConnection,
    readonly protocol: string,
    readonly direction: 'inbound' | 'outbound',
    readonly category: Category,
  ) {
    this.closedWrite = new Promise((resolve) => {
      this.markClosedWrite = () => resolve({ done: true, value: undefined })
    })
    const next = (): Promise<IteratorResult<Uint8Array>> => {
      const chunk = this.inbox.shift()
      if (chunk != null) return Promise.resolve({ done: false, value: chunk })
      if (this.failure != null) return Promise.reject(this.failure)
      if (this.ended) return Promise.resolve({ done: true, value: undefined })
      return new Promise((resolve, reject) => {
        this.waiter = { resolve, reject }
      })
    }
    this.source = { [Symbol.asyncIterator]: () => ({ next }) }
  }

  sink = async (source: AsyncIterable<Uint8Array | { subarray(): Uint8Array }>): Promise<void> => {
    const iterator = source[Symbol.asyncIterator]()
    while (!this.writeClosed) {
      const result = await Promise.race([iterator.next(), this.closedWrite])
      if (result.done === true) break
      const value = result.value
      this.transmit(value instanceof Uint8Array ? value : value.subarray())
    }
    this.closeWrite()
  }

  async close(): Promise<void> {
    this.closeWrite()
    this.closeRead()
    if (this.status === 'open') this.status = 'closed'
    this.detach()
  }

  /** Off the connection's stream list (libp2p drops a stream once closed or reset). */
  private detach(): void {
    const streams = this.connection.streams
    const i = streams.indexOf(this)
    if (i >= 0) streams.splice(i, 1)
  }

  closeWrite(): void {
    if (this.writeClosed) return
    this.writeClosed = true
    this.markClosedWrite()
    this.send(this.node.world.costs.streamClose, () => this.peer.remoteEnded())
  }

  closeRead(): void {
    this.ended = true
    this.inbox.length = 0
    this.wake()
  }

  abort(err?: Error): void {
    if (this.status === 'aborted' || this.status === 'reset') return
    this.status = 'aborted'
    this.writeClosed = true
    this.markClosedWrite()
    this.fail(err ?? new Error('stream aborted'))
    this.send(this.node.world.costs.streamClose, () => this.peer.reset())
    this.detach()
  }

  /** The other end aborted, or the connection went away. */
  reset(): void {
    if (this.status === 'reset') return
    this.status = 'reset'
    this.writeClosed = true
    this.markClosedWrite()
    const err = new Error('stream reset')
    err.name = 'StreamResetError'
    this.fail(err)
    this.detach()
  }

  deliver(chunk: Uint8Array): void {
    if (this.ended || this.failure != null) return
    if (this.waiter != null) {
      const { resolve } = this.waiter
      this.waiter = undefined
      resolve({ done: false, value: chunk })
    } else {
      this.inbox.push(chunk)
    }
  }

  private remoteEnded(): void {
    this.ended = true
    this.wake()
  }

  private wake(): void {
    if (this.waiter == null) return
    const { resolve } = this.waiter
    this.waiter = undefined
    resolve({ done: true, value: undefined })
  }

  private fail(err: Error): void {
    this.failure = err
    this.inbox.length = 0
    if (this.waiter == null) return
    const { reject } = this.waiter
    this.waiter = undefined
    reject(err)
  }

  private transmit(chunk: Uint8Array): void {
    const costs = this.node.world.costs
    // A write larger than a noise message (64 KiB) goes out as several frames.
    const frames = Math.max(1, Math.ceil(chunk.byteLength / 65_519))
    const peer = this.peer
    this.send(chunk.byteLength + frames * costs.frame, () => peer.deliver(chunk))
  }

  /** Charges `bytes` to this end's node and runs `arrive` at the other end, in order. */
  private send(bytes: number, arrive: () => void): void {
    const world = this.node.world
    const remote = this.peer.node
    if (!this.node.up || this.connection.status !== 'open') return
    world.noteSend(this.node)
    world.charge(this.node, remote, this.category, bytes)
    const at = Math.max(world.clock.now + world.delay(this.node, remote), this.lastArrival)
    this.lastArrival = at
    world.after(at - world.clock.now, remote, arrive)
  }
}

/** A simulated libp2p node: what membership needs of one (MembershipNetwork). */
export class SimNode {
  private static count = 0
  readonly index = SimNode.count++
  readonly id: string
  readonly addr: Multiaddr
  readonly meter = new Meter()
  up = false
  readonly connections = new Map<string, SimConnection>()
  private readonly pendingDials = new Map<string, Promise<void>>()
  private readonly handlers = new Map<string, StreamHandler>()
  private readonly listeners = new Map<string, Set<Listener>>()
  readonly pubsub: SimPubsub
  private keepAliveTimer: unknown
  private nextConnectionId = 0
  /** Overrides the world's maxConnections for this node (the seeder of a warm start has none). */
  maxConnections: number | undefined
  /** Scratch fields of SimWorld.flood. */
  floodMark = 0
  floodAt = 0
  floodParent: SimNode | undefined
  readonly peerStore = {
    merge: async () => {},
    patch: async () => {},
    save: async () => {},
  }
  readonly services: { pubsub: SimPubsub }

  constructor(
    readonly world: SimWorld,
    readonly peerId: PeerId,
    readonly host: string,
  ) {
    this.id = peerId.toString()
    this.addr = multiaddr(`/ip4/${host}/tcp/4001/p2p/${this.id}`)
    this.pubsub = new SimPubsub(this)
    this.services = { pubsub: this.pubsub }
  }

  /** This node as the membership code sees it. */
  asNetwork(): MembershipNetwork {
    return this as unknown as MembershipNetwork
  }

  start(): void {
    this.up = true
    this.pubsub.start()
    const { keepAlive, keepAliveMs } = this.world.costs
    // Yamux keep-alive: a ping and a pong each way per connection and period.
    const phase = this.world.random() * keepAliveMs
    this.keepAliveTimer = this.world.clock.schedule(
      phase,
      () => {
        for (const connection of this.connections.values())
          this.world.charge(this, connection.remote, 'keepalive', keepAlive)
      },
      [],
      keepAliveMs,
    )
  }

  /** A crash: no leave, every connection drops, nothing more is sent. */
  crash(): void {
    if (!this.up) return
    this.up = false
    this.world.clock.cancel(this.keepAliveTimer)
    this.pubsub.stop()
    for (const connection of [...this.connections.values()]) this.closeConnection(connection)
  }

  getMultiaddrs(): Multiaddr[] {
    return [this.addr]
  }

  getConnections(peer?: PeerId): SimConnection[] {
    if (peer == null) return [...this.connections.values()]
    const connection = this.connections.get(peer.toString())
    return connection == null ? [] : [connection]
  }

  async handle(protocol: string, handler: StreamHandler): Promise<void> {
    this.handlers.set(protocol, handler)
  }

  async unhandle(protocols: string | string[]): Promise<void> {
    for (const protocol of Array.isArray(protocols) ? protocols : [protocols]) this.handlers.delete(protocol)
  }

  handles(protocol: string): boolean {
    return this.handlers.has(protocol)
  }

  protocols(): string[] {
    return [...this.handlers.keys(), GOSSIPSUB_PROTOCOL]
  }

  addEventListener(type: string, listener: Listener): void {
    let set = this.listeners.get(type)
    if (set == null) {
      set = new Set()
      this.listeners.set(type, set)
    }
    set.add(listener)
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener)
  }

  dispatch(type: string, detail: unknown): void {
    for (const listener of this.listeners.get(type) ?? []) listener({ detail })
  }

  async hangUp(peer: PeerId): Promise<void> {
    const remote = this.world.nodes.get(peer.toString())
    const connection = remote == null ? undefined : this.connections.get(remote.id)
    if (connection != null) this.closeConnection(connection)
  }

  /**
   * Closes `connection` at this end now and at the other end one way later (the
   * close travelling): both ends drop its streams, the pubsub peer and fire
   * `peer:disconnect`, as libp2p does on either side of a closed connection.
   */
  closeConnection(connection: SimConnection): void {
    const remote = connection.remote
    this.disconnect(remote, connection)
    this.world.clock.schedule(
      this.world.delay(this, remote),
      () => remote.disconnect(this, connection.other),
      [],
      null,
      remote,
    )
  }

  /** A connection to a peer (id), an address or the first of several addresses that answers. */
  async dial(
    target: PeerId | Multiaddr | Multiaddr[],
    options: { signal?: AbortSignal } = {},
  ): Promise<SimConnection> {
    const remote = this.resolve(target)
    if (remote == null) throw dialError('no such peer or address', 'NoValidAddressesError')
    return this.connect(remote, options.signal)
  }

  async dialProtocol(
    target: PeerId | Multiaddr | Multiaddr[],
    protocols: string | string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<SimStream> {
    const connection = await this.dial(target, options)
    options.signal?.throwIfAborted()
    const protocol = Array.isArray(protocols) ? protocols[0]! : protocols
    return this.openStream(connection, protocol, options.signal)
  }

  /** Opens a stream: the responder gets it after one way, the initiator after its selection is echoed. */
  openStream(connection: SimConnection, protocol: string, signal?: AbortSignal): Promise<SimStream> {
    const world = this.world
    const remote = connection.remote
    const category: Category = protocol.includes('/sync/') ? 'sync' : 'probe'
    const local = new SimStream(this, connection, protocol, 'outbound', category)
    const far = new SimStream(remote, connection.other, protocol, 'inbound', category)
    local.peer = far
    far.peer = local
    world.totals.streams++
    const oneWay = world.delay(this, remote)
    world.noteSend(this)
    world.charge(this, remote, category, world.costs.streamOpenInitiator + protocol.length + 1)
    // Each step runs as code of the end it reaches: the open at the responder, the
    // answer at the initiator (either waits out a stall of its end).
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal?.reason ?? new Error('aborted'))
      signal?.addEventListener('abort', onAbort, { once: true })
      world.clock.schedule(
        oneWay,
        () => {
          if (!remote.up || connection.other.status !== 'open') {
            // The other end has closed (or is gone): the open is answered by a reset, and
            // libp2p fails the stream with the connection's closing (stream-rpc dials afresh).
            world.clock.schedule(
              world.delay(remote, this),
              () => {
                signal?.removeEventListener('abort', onAbort)
                reject(dialError('connection closed by the remote', 'ConnectionClosedError'))
              },
              [],
              null,
              this,
            )
            return
          }
          const handler = remote.handlers.get(protocol)
          world.charge(remote, this, category, world.costs.streamOpenResponder + protocol.length + 1)
          world.clock.schedule(
            world.delay(remote, this),
            () => {
              signal?.removeEventListener('abort', onAbort)
              if (!this.up || connection.status !== 'open') return reject(dialError('connection closed'))
              if (handler == null)
                return reject(dialError('protocol selection failed', 'UnsupportedProtocolError'))
              connection.streams.push(local)
              resolve(local)
            },
            [],
            null,
            this,
          )
          if (handler == null) return
          connection.other.streams.push(far)
          try {
            handler({ stream: far, connection: connection.other })
          } catch {
            far.abort()
          }
        },
        [],
        null,
        remote,
      )
    })
  }

  /**
   * Drops the connection to `remote` on this side (the other side is told by the
   * caller); with `only`, only if that is still the connection this side holds (a
   * close that arrives after a new connection replaced the old one leaves it be).
   */
  disconnect(remote: SimNode, only?: SimConnection): void {
    const connection = this.connections.get(remote.id)
    if (connection == null || (only != null && connection !== only)) {
      if (only != null) this.retire(only)
      return
    }
    this.connections.delete(remote.id)
    this.retire(connection)
    this.pubsub.removePeer(remote.id)
    if (this.up) {
      this.dispatch('connection:close', connection)
      this.dispatch('peer:disconnect', remote.peerId)
    }
  }

  /** Marks one end closed and resets its streams. */
  private retire(connection: SimConnection): void {
    if (connection.status === 'closed') return
    connection.status = 'closed'
    connection.timeline.close = Date.now()
    for (const stream of [...connection.streams]) stream.reset()
    connection.streams.length = 0
  }

  private resolve(target: PeerId | Multiaddr | Multiaddr[]): SimNode | undefined {
    if (Array.isArray(target)) {
      for (const addr of target) {
        const node = this.world.nodeAt(addr)
        if (node != null) return node
      }
      return undefined
    }
    if ('getPeerId' in target) return this.world.nodeAt(target)
    return this.world.nodes.get(target.toString())
  }

  private connect(remote: SimNode, signal?: AbortSignal): Promise<SimConnection> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    const existing = this.connections.get(remote.id)
    if (existing != null) return Promise.resolve(existing)
    let pending = this.pendingDials.get(remote.id) ?? remote.pendingDials.get(this.id)
    if (pending == null) {
      const started = this.handshake(remote)
      this.pendingDials.set(remote.id, started)
      const done = () => this.pendingDials.delete(remote.id)
      started.then(done, done)
      pending = started
    }
    const opened = () => {
      const connection = this.connections.get(remote.id)
      if (connection == null) throw dialError('connection closed during the dial')
      return connection
    }
    // The dial may be the other end's (both dialled at once), settled as its code: this
    // end learns the outcome when it runs (after a stall of its own).
    const stalled = () => this.world.clock.isStalled(this)
    const dialled = pending.then(
      () => (stalled() ? this.world.resumeIn(this).then(opened) : opened()),
      (err: unknown) => {
        if (stalled())
          return this.world.resumeIn(this).then(() => {
            throw err
          })
        throw err
      },
    )
    if (signal == null) return dialled
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
      dialled.then(
        (connection) => {
          signal.removeEventListener('abort', onAbort)
          resolve(connection)
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  /**
   * TCP and the libp2p upgrade: refused after one round trip by a crashed node or
   * one that holds maxConnections already; otherwise open on both sides after
   * connectRtts round trips, identified one round trip later. Each step runs as code
   * of the end that must act: the dialler sees the TCP answer; the upgrade needs the
   * listener and then the dialler (a stall of either holds it up). Across a one-way
   * block the SYN or its answer is lost: resent as TCP does, else the dial times out.
   */
  private handshake(remote: SimNode): Promise<void> {
    const world = this.world
    const rtt = world.linkDelay(this, remote) + world.linkDelay(remote, this)
    const syn = world.synDelay(this, remote)
    return new Promise((resolve, reject) => {
      if (syn == null) {
        world.totals.dialsLostToOneWayLoss++
        world.clock.schedule(
          DIAL_TIMEOUT_MS,
          () => reject(dialError('dial timed out: no answer to the SYN', 'TimeoutError')),
          [],
          null,
          this,
        )
        return
      }
      const upgraded = () => {
        if (!this.up || !remote.up) return reject(dialError('connection reset during the handshake'))
        if (this.connections.has(remote.id)) return resolve()
        // Over the limit, libp2p's pruner closes the newest connection (no gossipsub
        // stream on it yet) as soon as it opens: the handshake is paid for nothing.
        if (this.connections.size >= (this.maxConnections ?? world.maxConnections)) {
          world.totals.prunedOutbound++
          world.charge(this, remote, 'connect', world.costs.connectDialer)
          world.charge(remote, this, 'connect', world.costs.connectListener)
          return reject(dialError('connection closed by the connection pruner (maxConnections)'))
        }
        world.totals.connections++
        world.connectionOpened(this, remote)
        const outbound = new SimConnection(this, remote, 'outbound', this.nextConnectionId++)
        const inbound = new SimConnection(remote, this, 'inbound', remote.nextConnectionId++)
        outbound.other = inbound
        inbound.other = outbound
        // The other end may still hold a connection we closed and whose close has not
        // reached it yet: the new one replaces it there.
        const stale = remote.connections.get(this.id)
        if (stale != null) world.runAs(remote, () => remote.retire(stale))
        this.connections.set(remote.id, outbound)
        remote.connections.set(this.id, inbound)
        world.charge(this, remote, 'connect', world.costs.connectDialer)
        world.charge(remote, this, 'connect', world.costs.connectListener)
        this.dispatch('connection:open', outbound)
        world.runAs(remote, () => remote.dispatch('connection:open', inbound))
        this.dispatch('peer:connect', remote.peerId)
        world.runAs(remote, () => remote.dispatch('peer:connect', this.peerId))
        resolve()
        // Identify, then the gossipsub hello (subscriptions) on its own stream.
        world.clock.schedule(
          rtt,
          () => {
            if (outbound.status !== 'open' || inbound.status !== 'open') return
            world.runAs(this, () =>
              this.dispatch('peer:identify', { peerId: remote.peerId, protocols: remote.protocols() }),
            )
            world.runAs(remote, () =>
              remote.dispatch('peer:identify', { peerId: this.peerId, protocols: this.protocols() }),
            )
            world.runAs(this, () => this.pubsub.addPeer(remote))
            world.runAs(remote, () => remote.pubsub.addPeer(this))
          },
          [],
          null,
          null,
        )
      }
      world.clock.schedule(
        syn + rtt,
        () => {
          if (!this.up) return reject(dialError('dialler stopped'))
          if (!remote.up) {
            world.totals.refusedDown++
            // A crashed process's host refuses the port, as TCP does (ECONNREFUSED: membership's evidence).
            return reject(
              Object.assign(dialError('connection refused', 'ConnectionRefusedError'), {
                code: 'ECONNREFUSED',
              }),
            )
          }
          const remoteLimit = remote.maxConnections ?? world.maxConnections
          if (remote.connections.size >= remoteLimit && !remote.connections.has(this.id)) {
            world.totals.refusedFull++
            return reject(dialError('connection refused: the peer holds maxConnections'))
          }
          world.clock.schedule(
            rtt * (world.costs.connectRtts - 1),
            () => world.runAs(this, upgraded),
            [],
            null,
            remote,
          )
        },
        [],
        null,
        this,
      )
    })
  }
}

function dialError(message: string, name = 'DialError'): Error {
  const err = new Error(message)
  err.name = name
  return err
}

/** The key of the ordered pair `from` -> `to`. */
function pairKey(from: SimNode, to: SimNode): string {
  return `${from.index}>${to.index}`
}

/**
 * When TCP's retransmission of a segment first sent at `firstAt` gets through a
 * block lifting at `until`: resent after 200 ms, then at doubling intervals (at most
 * RTO_MAX_MS apart); the first resend at or after `until` arrives.
 */
function retransmittedAt(firstAt: number, until: number): number {
  let at = firstAt
  let rto = RETRANSMIT_MS
  while (at < until) {
    at += rto
    rto = Math.min(rto * 2, RTO_MAX_MS)
  }
  return at
}

/** A fixed pseudo-random fraction in [0, 1) for an unordered pair of node indexes. */
function pairFraction(a: number, b: number): number {
  const lo = Math.min(a, b)
  const hi = Math.max(a, b)
  let h = (lo * 0x9e3779b1) ^ (hi * 0x85ebca77)
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  h ^= h >>> 16
  return (h >>> 0) / 2 ** 32
}
