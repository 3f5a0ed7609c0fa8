/**
 * The Raft core's messages over libp2p: protocol `/shoal/<cluster>/raft/1.0.0`.
 *
 * Raft messages are one-way and the core retransmits whatever is lost, so the
 * transport never waits for an answer, never blocks its caller and never throws:
 *
 * 1. send: a message to this node is delivered on a microtask; any other is
 *    encoded (raft-codec.ts), refused when over `maxFrameBytes`, and queued for
 *    its peer. A full queue drops its oldest message.
 * 2. dial: the first message for a peer opens one stream to it (dialProtocol,
 *    `dialTimeoutMs`), which then carries every later frame, in order.
 * 3. write: frames go out one at a time, length-prefixed, each within
 *    `writeTimeoutMs`. A stream that fails (a write error or timeout, or the
 *    remote ending or resetting it: a background read notices at once) is
 *    dropped; the next stream is dialled after a backoff (100 ms, doubling to 1 s,
 *    back to 100 ms once a frame went through). A failed dial empties the queue:
 *    what the core sends next is newer.
 * 4. receive: each inbound stream is read frame by frame until it ends. A frame
 *    that does not decode, or a message whose `from` is not the stream's
 *    authenticated remote peer or whose `to` is not this node, is counted as
 *    `rejected` and logged at debug level; a framing error (length over the limit)
 *    also ends the stream. The rest go to `deliver`, in the order they came.
 */
import type { PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type LengthPrefixedStream, lpStream } from 'it-length-prefixed-stream'
import {
  boundedVarint,
  FrameTooLargeError,
  type Logger,
  messageOf,
  openStream,
  type Startable,
  type StreamNetwork,
} from '../../shared/index.js'
import type { Message, NodeId } from '../raft/index.js'
import { decodeMessage, encodeMessage, MAX_RAFT_FRAME_BYTES } from './raft-codec.js'

/** Messages waiting per peer: four times the core's inflight window of appends (64). */
export const DEFAULT_MAX_QUEUE = 256
/** Bytes waiting per peer: a few snapshots or full appends; beyond, the oldest go. */
export const DEFAULT_MAX_QUEUE_BYTES = 32 * 1024 * 1024
/** Opening a stream: dial (or reuse a connection) and negotiate the protocol. */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000
/** One frame written: 8 MiB at a slow 10 Mbit/s takes 7 s. */
export const DEFAULT_WRITE_TIMEOUT_MS = 15_000
/** Wait after a lost stream or failed dial before the next dial; doubles up to the maximum. */
export const REDIAL_BACKOFF_MIN_MS = 100
export const REDIAL_BACKOFF_MAX_MS = 1_000
/** Streams per connection for the protocol: one each way is the norm; redials may overlap old ones briefly. */
const MAX_STREAMS = 64

export interface RaftTransportInit {
  /** Cluster name; scopes the protocol `/shoal/<cluster>/raft/1.0.0`. */
  cluster: string
  /** Largest frame sent or accepted, bytes. @default MAX_RAFT_FRAME_BYTES (8 MiB: a snapshot of a 4 MiB state) */
  maxFrameBytes?: number
  /** Messages queued per peer before the oldest is dropped. @default DEFAULT_MAX_QUEUE (256) */
  maxQueue?: number
  /** Bytes queued per peer before the oldest is dropped. @default DEFAULT_MAX_QUEUE_BYTES (32 MiB) */
  maxQueueBytes?: number
  /** ms to open a stream to a peer. @default DEFAULT_DIAL_TIMEOUT_MS (5 s) */
  dialTimeoutMs?: number
  /** ms to write one frame. @default DEFAULT_WRITE_TIMEOUT_MS (15 s) */
  writeTimeoutMs?: number
}

export interface RaftTransportComponents {
  network: StreamNetwork
  /** This node's peer id (the core's node id). */
  selfId: NodeId
  /** Hands a checked message to the core (its `from` is authenticated); must not throw. */
  deliver(message: Message): void
  logger: Logger
}

export interface RaftTransportCounters {
  /** Frames written to a peer's stream. */
  sent: number
  /** Messages delivered (from peers, and to self). */
  received: number
  /** Outgoing messages given up: queue full, over the frame limit, lost with a stream or a failed dial, unknown peer id, not started. */
  dropped: number
  /** Inbound frames refused: undecodable, or `from`/`to` not matching the stream. */
  rejected: number
  /** Dials to a peer after its first one (a lost stream or a failed dial). */
  redials: number
}

/** One stream to a peer, with what ends it. */
interface Link {
  readonly stream: Stream
  readonly lp: LengthPrefixedStream<Stream>
  /** Ends the background read, and the write in progress, when the stream is dropped. */
  readonly closed: AbortController
}

interface Outbound {
  readonly id: NodeId
  readonly peerId: PeerId
  readonly queue: Uint8Array[]
  queuedBytes: number
  link: Link | null
  pumping: boolean
  dialled: boolean
  backoffMs: number
  /** performance.now() before which no dial is made. */
  retryAt: number
  timer: ReturnType<typeof setTimeout> | null
}

export class RaftTransport implements Startable {
  readonly protocol: string
  readonly counters: RaftTransportCounters = { sent: 0, received: 0, dropped: 0, rejected: 0, redials: 0 }
  private readonly maxFrameBytes: number
  private readonly maxQueue: number
  private readonly maxQueueBytes: number
  private readonly dialTimeoutMs: number
  private readonly writeTimeoutMs: number
  private readonly log: Logger
  private readonly peers = new Map<NodeId, Outbound>()
  private readonly inbound = new Set<Stream>()
  private running = false
  private stopping = new AbortController()

  constructor(
    init: RaftTransportInit,
    private readonly components: RaftTransportComponents,
  ) {
    this.protocol = `/shoal/${init.cluster}/raft/1.0.0`
    this.maxFrameBytes = positive('maxFrameBytes', init.maxFrameBytes ?? MAX_RAFT_FRAME_BYTES)
    this.maxQueue = positive('maxQueue', init.maxQueue ?? DEFAULT_MAX_QUEUE)
    this.maxQueueBytes = positive('maxQueueBytes', init.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES)
    this.dialTimeoutMs = positive('dialTimeoutMs', init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS)
    this.writeTimeoutMs = positive('writeTimeoutMs', init.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
    this.log = components.logger
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.stopping = new AbortController()
    await this.components.network.handle(
      this.protocol,
      ({ stream, connection }) => {
        this.receive(stream, connection.remotePeer.toString())
      },
      { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS },
    )
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.stopping.abort(new Error('the raft transport is stopping'))
    const gone = new Error('the raft transport stopped')
    for (const peer of this.peers.values()) {
      if (peer.timer != null) clearTimeout(peer.timer)
      if (peer.link != null) this.dropLink(peer.link, gone)
      peer.link = null
    }
    this.peers.clear()
    for (const stream of this.inbound) stream.abort(gone)
    this.inbound.clear()
    await this.components.network.unhandle(this.protocol)
  }

  /** Queues `messages` for their destinations; never blocks, never throws. */
  send(messages: readonly Message[]): void {
    for (const message of messages) {
      if (!this.running) {
        this.counters.dropped++
        continue
      }
      if (message.to === this.components.selfId) {
        // Not inline: the core's Ready loop calls send(), and deliver() steps the core.
        queueMicrotask(() => {
          if (this.running) this.deliver(message)
        })
        continue
      }
      const peer = this.peerFor(message.to)
      if (peer == null) {
        this.counters.dropped++
        continue
      }
      let frame: Uint8Array
      try {
        frame = encodeMessage(message)
      } catch (err) {
        this.counters.dropped++
        this.log.warn('raft message could not be encoded; not sent', {
          type: message.type,
          error: messageOf(err),
        })
        continue
      }
      if (frame.byteLength > this.maxFrameBytes) {
        this.counters.dropped++
        this.log.warn('raft message over the frame limit; not sent', {
          type: message.type,
          to: message.to,
          bytes: frame.byteLength,
          limit: this.maxFrameBytes,
        })
        continue
      }
      this.enqueue(peer, frame)
    }
  }

  private peerFor(id: NodeId): Outbound | null {
    let peer = this.peers.get(id)
    if (peer == null) {
      let peerId: PeerId
      try {
        peerId = peerIdFromString(id)
      } catch {
        this.log.debug('raft message to a node id that is no peer id; dropped', { to: id })
        return null
      }
      peer = {
        id,
        peerId,
        queue: [],
        queuedBytes: 0,
        link: null,
        pumping: false,
        dialled: false,
        backoffMs: REDIAL_BACKOFF_MIN_MS,
        retryAt: 0,
        timer: null,
      }
      this.peers.set(id, peer)
    }
    return peer
  }

  private enqueue(peer: Outbound, frame: Uint8Array): void {
    peer.queue.push(frame)
    peer.queuedBytes += frame.byteLength
    while (peer.queue.length > this.maxQueue || peer.queuedBytes > this.maxQueueBytes) {
      peer.queuedBytes -= peer.queue.shift()!.byteLength
      this.counters.dropped++
    }
    void this.pump(peer)
  }

  /** Writes `peer`'s queue out, dialling when it has no stream; one pump per peer at a time. */
  private async pump(peer: Outbound): Promise<void> {
    if (peer.pumping || peer.timer != null) return
    peer.pumping = true
    try {
      while (this.running && this.peers.get(peer.id) === peer && peer.queue.length > 0) {
        let link = peer.link
        if (link == null) {
          const wait = peer.retryAt - performance.now()
          if (wait > 0) {
            peer.timer = setTimeout(() => {
              peer.timer = null
              void this.pump(peer)
            }, Math.ceil(wait))
            return
          }
          link = await this.open(peer)
          if (link == null) continue
        }
        const frame = peer.queue.shift()!
        peer.queuedBytes -= frame.byteLength
        try {
          await this.write(link, frame)
          this.counters.sent++
          peer.backoffMs = REDIAL_BACKOFF_MIN_MS
        } catch (err) {
          this.counters.dropped++
          this.lose(peer, link, err)
        }
      }
    } finally {
      peer.pumping = false
    }
  }

  /**
   * One frame within writeTimeoutMs. A write on a stream that died waits forever
   * (it-byte-stream's push waits for a sink that has stopped pulling), so the
   * stream's loss aborts it too. A controller per write, not AbortSignal.any on the
   * link's long-lived signal: that would add a listener per frame.
   */
  private async write(link: Link, frame: Uint8Array): Promise<void> {
    const write = new AbortController()
    const timer = setTimeout(
      () => write.abort(new Error(`raft frame not written within ${this.writeTimeoutMs} ms`)),
      this.writeTimeoutMs,
    )
    const onClosed = () => write.abort(link.closed.signal.reason)
    link.closed.signal.addEventListener('abort', onClosed, { once: true })
    try {
      link.closed.signal.throwIfAborted()
      // Raced against the signal too: a write that ignores it (a chaos campaign saw a peer
      // get nothing for minutes) must not hold this peer's pump for ever.
      await untilAborted(link.lp.write(frame, { signal: write.signal }), write.signal)
    } finally {
      clearTimeout(timer)
      link.closed.signal.removeEventListener('abort', onClosed)
    }
  }

  /** Opens a stream to `peer`; null (and a backoff, and an empty queue) when it cannot. */
  private async open(peer: Outbound): Promise<Link | null> {
    if (peer.dialled) this.counters.redials++
    peer.dialled = true
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.dialTimeoutMs)])
    let stream: Stream
    try {
      stream = await untilAborted(
        openStream(this.components.network, peer.peerId, this.protocol, signal),
        signal,
        (late) => late.abort(new Error('opened after its deadline')),
      )
    } catch (err) {
      this.log.debug('raft stream could not be opened', { peer: peer.id, error: messageOf(err) })
      this.backOff(peer)
      this.counters.dropped += peer.queue.length
      peer.queue.length = 0
      peer.queuedBytes = 0
      return null
    }
    if (!this.running || this.peers.get(peer.id) !== peer) {
      stream.abort(new Error('the raft transport stopped'))
      return null
    }
    const lp = lpStream(stream, {
      maxDataLength: this.maxFrameBytes,
      lengthDecoder: boundedVarint(this.maxFrameBytes),
    })
    const link: Link = { stream, lp, closed: new AbortController() }
    peer.link = link
    // Nothing comes back on this stream: a read ends only when the remote closes or
    // resets it (or its connection goes), which is how an idle stream's loss shows.
    lp.read({ signal: link.closed.signal }).then(
      () => this.lose(peer, link, new Error('the peer wrote on a one-way raft stream')),
      (err: unknown) => this.lose(peer, link, err),
    )
    return link
  }

  /** Drops `link` if it is still `peer`'s stream; the next dial waits for the backoff. */
  private lose(peer: Outbound, link: Link, err: unknown): void {
    if (peer.link !== link) return
    peer.link = null
    this.dropLink(link, err instanceof Error ? err : new Error(String(err)))
    if (!this.running) return
    this.log.debug('raft stream lost', { peer: peer.id, error: messageOf(err) })
    this.backOff(peer)
    void this.pump(peer)
  }

  private dropLink(link: Link, err: Error): void {
    link.closed.abort(err)
    link.stream.abort(err)
  }

  private backOff(peer: Outbound): void {
    peer.retryAt = performance.now() + peer.backoffMs
    peer.backoffMs = Math.min(peer.backoffMs * 2, REDIAL_BACKOFF_MAX_MS)
  }

  /** Reads an inbound stream until it ends (step 4 above). */
  private receive(stream: Stream, remote: string): void {
    if (!this.running) {
      stream.abort(new Error('the raft transport stopped'))
      return
    }
    this.inbound.add(stream)
    const lp = lpStream(stream, {
      maxDataLength: this.maxFrameBytes,
      lengthDecoder: boundedVarint(this.maxFrameBytes),
    })
    const signal = this.stopping.signal
    const loop = async (): Promise<void> => {
      for (;;) {
        const frame = (await lp.read({ signal })).subarray()
        this.accept(frame, remote)
      }
    }
    loop()
      .catch((err: unknown) => {
        if (!this.inbound.has(stream)) return // stopped
        const name = err instanceof Error ? err.name : ''
        // The sender closing its side ends the stream between (or, if it died, inside) a frame.
        if (name === 'UnexpectedEOFError') return stream.close({ signal: AbortSignal.timeout(1_000) })
        if (err instanceof FrameTooLargeError || BAD_LENGTH.has(name)) this.counters.rejected++
        this.log.debug('inbound raft stream ended', { peer: remote, error: messageOf(err) })
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .catch((err: unknown) => stream.abort(err instanceof Error ? err : new Error(String(err))))
      .finally(() => this.inbound.delete(stream))
  }

  private accept(frame: Uint8Array, remote: string): void {
    let message: Message
    try {
      message = decodeMessage(frame, this.maxFrameBytes)
    } catch (err) {
      this.counters.rejected++
      this.log.debug('bad raft frame; ignored', { peer: remote, error: messageOf(err) })
      return
    }
    if (message.from !== remote || message.to !== this.components.selfId) {
      this.counters.rejected++
      this.log.debug('raft message not from its stream peer or not to this node; ignored', {
        peer: remote,
        type: message.type,
        from: message.from,
        to: message.to,
      })
      return
    }
    this.deliver(message)
  }

  private deliver(message: Message): void {
    this.counters.received++
    try {
      this.components.deliver(message)
    } catch (err) {
      this.log.warn('delivering a raft message failed', { type: message.type, error: messageOf(err) })
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new RangeError(`RaftTransport: ${name} must be a positive integer, not ${value}`)
  return value
}

/** it-length-prefixed-stream's refusals of a peer's framing, by error name. */
const BAD_LENGTH = new Set([
  'InvalidDataLengthError',
  'InvalidDataLengthLengthError',
  'InvalidMessageLengthError',
])

/** `promise`, or a rejection with the signal's reason as soon as it aborts (whichever comes first). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, late?: (value: T) => void): Promise<T> {
  if (signal.aborted) {
    promise.then(
      (value) => late?.(value),
      () => {},
    )
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        if (signal.aborted) late?.(value)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
