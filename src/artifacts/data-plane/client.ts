import { createHash, type Hash } from 'node:crypto'
import { connect as connectTcp, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import type { Logger } from '../../shared/index.js'
import { BadFrameError, messageOf } from '../../shared/index.js'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../constants.js'
import {
  CLIENT_IDLE_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STALL_MS,
  KEEPALIVE_MS,
  PREAMBLE,
} from './constants.js'
import {
  ChunkElsewhereError,
  ChunkUnavailableError,
  DataPlaneBusyError,
  DataPlaneConnectionLostError,
  DataPlaneStalledError,
  DataPlaneUnreachableError,
} from './errors.js'
import { clientTlsOptions, describeFailure } from './key.js'
import { type DataAnswer, type DataRequest, decodeAnswer, encodeHeader, FrameReader } from './wire.js'

export interface DataPlaneClientInit {
  /** dataPlaneKey(secret) for a closed cluster; null for an open cluster. */
  key: Buffer | null
  /** This node's peer id: the TLS-PSK identity it presents. */
  identity: string
  /**
   * ms without a single byte of progress on the request being answered before the
   * connection is declared stalled (progress timeout, not a deadline). Default 10 s.
   */
  stallMs?: number
  /** ms for TCP connect, TLS handshake and the server's preamble together. Default 5 s. */
  connectTimeoutMs?: number
  /** ms a connection with nothing pending and no watch stays open. Default 30 s. */
  idleMs?: number
}

export interface DataPlaneTarget {
  peer: string
  host: string
  port: number
}

export interface ChunkRequest {
  blob: string
  chunkSize: number
  index: number
  /** The chunk's exact length (the manifest's): an answer of another length is a protocol error. */
  length: number
  /**
   * A buffer of at least `length` bytes to receive into (the caller's pool; the
   * answer is then a view of it): no allocation per chunk, so far less garbage.
   */
  into?: Buffer
}

export interface FetchedChunk {
  data: Buffer
  /** Hex sha256 of `data`, computed as it arrived. */
  sha256: string
  /** ms from sending the request to its answer's header (waiting behind pipelined ones included). */
  firstByteMs: number
}

export interface DataPlaneClientStats {
  connections: number
  pending: number
  bytesReceived: number
}

export type HaveUpdate =
  | { t: 'map'; size: number; bitmap: string | null }
  | { t: 'have'; index: number }
  | { t: 'whole' }
  | { t: 'none' }

interface PendingGet {
  id: number
  request: ChunkRequest
  /** performance.now() when the request was written. */
  sentAt: number
  resolve(chunk: FetchedChunk): void
  reject(err: unknown): void
  signal: AbortSignal | undefined
  onAbort: (() => void) | null
}

interface WatchEntry {
  id: number
  chunkSize: number
  onHave(update: HaveUpdate): void
  onEnd: ((err?: Error) => void) | undefined
}

/** What the reader is doing with the body it is in. */
type Receiving =
  | { kind: 'chunk'; get: PendingGet; data: Buffer; offset: number; hash: Hash; firstByteMs: number }
  | { kind: 'map'; watch: WatchEntry | null; size: number; bits: Buffer; offset: number }
  | { kind: 'discard' }

const HASH = /^[0-9a-f]{64}$/

/**
 * Fetches chunks and HAVE notices from other agents' data planes (wire.ts): one
 * connection per target, opened on first use, kept alive while requests or watches
 * use it and closed after `idleMs` without, requests pipelined on it.
 *
 * Stall detection is a progress timeout per connection: it runs only while a `get`
 * of ours is unanswered on an established connection, and restarts on every byte
 * received. The server answers a connection's gets in order, so while any is
 * unanswered the first one is being served and bytes should be flowing; a gap of
 * `stallMs` drops the connection and fails its gets with DataPlaneStalledError.
 * Watches alone never stall a connection.
 */
export class DataPlaneClient {
  private readonly log: Logger
  private readonly connections = new Map<string, ClientConnection>()
  private readonly settings: Settings
  private readonly counters = { bytesReceived: 0 }

  constructor(init: DataPlaneClientInit, logger: Logger) {
    this.log = logger.child('data-plane')
    this.settings = {
      key: init.key,
      identity: init.identity,
      stallMs: positive('stallMs', init.stallMs ?? DEFAULT_STALL_MS),
      connectTimeoutMs: positive('connectTimeoutMs', init.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
      idleMs: positive('idleMs', init.idleMs ?? CLIENT_IDLE_MS),
    }
  }

  /**
   * One chunk, pipelined on the target's connection. The body is hashed as it arrives
   * and copied once into a Buffer of exactly `length` bytes.
   * Fails with DataPlaneBusyError, ChunkUnavailableError, DataPlaneUnreachableError,
   * DataPlaneConnectionLostError, DataPlaneStalledError, or the signal's reason (an
   * AbortError unless the caller gave another).
   */
  fetchChunk(target: DataPlaneTarget, request: ChunkRequest, signal?: AbortSignal): Promise<FetchedChunk> {
    const invalid = checkRequest(request)
    if (invalid != null) return Promise.reject(new RangeError(invalid))
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const badTarget = checkTarget(target)
    if (badTarget != null) return Promise.reject(badTarget)
    return this.connectionTo(target).get(request, signal)
  }

  /**
   * HAVE notices: the target answers its current map of the blob (size and bitmap;
   * null bitmap = whole) or `none`, then pushes each new chunk index as it becomes
   * servable, and `whole` when complete. Returns a function that ends the
   * subscription. `onEnd` is called if the connection drops (re-subscribe if wanted).
   */
  watch(
    target: DataPlaneTarget,
    blob: string,
    chunkSize: number,
    onHave: (update: HaveUpdate) => void,
    onEnd?: (err?: Error) => void,
  ): () => void {
    if (!HASH.test(blob) || !validChunkSize(chunkSize))
      throw new RangeError(
        `watch: blob must be a sha256 in hex and chunkSize within ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`,
      )
    const badTarget = checkTarget(target)
    if (badTarget != null) {
      queueMicrotask(() => onEnd?.(badTarget))
      return () => {}
    }
    return this.connectionTo(target).watch(chunkSize, blob, onHave, onEnd)
  }

  /** Requests queued or in flight to this target now (for the scheduler's per-peer budget). */
  pending(peer: string): number {
    return this.connections.get(peer)?.pending ?? 0
  }

  /** Connections open or opening, requests pending on them, and chunk bytes received (whole or partial chunks). */
  stats(): DataPlaneClientStats {
    let pending = 0
    for (const connection of this.connections.values()) pending += connection.pending
    return { connections: this.connections.size, pending, bytesReceived: this.counters.bytesReceived }
  }

  /** Closes the connection to `peer`, or every connection; their pending requests fail (connection lost). */
  async close(peer?: string): Promise<void> {
    const closing = [...this.connections.values()].filter((c) => peer == null || c.target.peer === peer)
    await Promise.all(
      closing.map((c) =>
        c.destroy(new DataPlaneConnectionLostError('the data-plane connection was closed here')),
      ),
    )
  }

  private connectionTo(target: DataPlaneTarget): ClientConnection {
    const existing = this.connections.get(target.peer)
    if (
      existing != null &&
      !existing.isEnded &&
      existing.target.host === target.host &&
      existing.target.port === target.port
    )
      return existing
    if (existing != null)
      void existing.destroy(
        new DataPlaneConnectionLostError(
          `the data plane of ${target.peer} moved to ${target.host}:${target.port}`,
        ),
      )
    const connection = new ClientConnection({ ...target }, this.settings, this.counters, this.log, () => {
      if (this.connections.get(target.peer) === connection) this.connections.delete(target.peer)
    })
    this.connections.set(target.peer, connection)
    return connection
  }
}

interface Settings {
  key: Buffer | null
  identity: string
  stallMs: number
  connectTimeoutMs: number
  idleMs: number
}

/** One connection to one target, from connect to close. */
class ClientConnection {
  private readonly socket: Socket
  private readonly reader: FrameReader<DataAnswer>
  private established = false
  private ended: Error | null = null
  private readonly closed: Promise<void>
  private nextId = 1
  private readonly gets = new Map<number, PendingGet>()
  private readonly watches = new Map<number, WatchEntry>()
  private receiving: Receiving | null = null
  private lastProgress = 0
  private connectTimer: NodeJS.Timeout | null = null
  private stallTimer: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  private socketError: Error | null = null

  constructor(
    readonly target: DataPlaneTarget,
    private readonly settings: Settings,
    private readonly counters: { bytesReceived: number },
    private readonly log: Logger,
    private readonly onClosed: () => void,
  ) {
    const { host, port } = target
    this.socket =
      settings.key == null
        ? connectTcp({ host, port })
        : connectTls({ host, port, ...clientTlsOptions(settings.key, settings.identity) })
    this.socket.setNoDelay(true)
    this.socket.setKeepAlive(true, KEEPALIVE_MS)
    this.reader = new FrameReader(decodeAnswer, {
      preamble: () => this.onEstablished(),
      header: (answer) => this.onAnswer(answer),
      body: (bytes, rest) => this.onBody(bytes, rest),
    })
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()))
    this.socket.on('data', (data: Buffer) => this.onData(data))
    this.socket.on('error', (err) => {
      this.socketError ??= err
    })
    this.socket.on('close', () => this.finish())
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null
      void this.destroy(
        new DataPlaneUnreachableError(
          `no data-plane answer from ${this.where} within ${settings.connectTimeoutMs} ms; using libp2p streams instead`,
        ),
      )
    }, settings.connectTimeoutMs)
    this.socket.write(PREAMBLE)
  }

  get pending(): number {
    return this.gets.size
  }

  get isEnded(): boolean {
    return this.ended != null
  }

  get(request: ChunkRequest, signal: AbortSignal | undefined): Promise<FetchedChunk> {
    if (this.ended != null) return Promise.reject(this.ended)
    return new Promise((resolve, reject) => {
      const get: PendingGet = {
        id: this.nextId++,
        request,
        sentAt: performance.now(),
        resolve,
        reject,
        signal,
        onAbort: null,
      }
      if (signal != null) {
        get.onAbort = () => this.abort(get)
        signal.addEventListener('abort', get.onAbort, { once: true })
      }
      if (this.gets.size === 0) this.lastProgress = performance.now()
      this.gets.set(get.id, get)
      this.clearIdle()
      this.armStall()
      this.write({
        t: 'get',
        id: get.id,
        blob: request.blob,
        chunkSize: request.chunkSize,
        index: request.index,
      })
    })
  }

  watch(
    chunkSize: number,
    blob: string,
    onHave: (update: HaveUpdate) => void,
    onEnd: ((err?: Error) => void) | undefined,
  ): () => void {
    const watch: WatchEntry = { id: this.nextId++, chunkSize, onHave, onEnd }
    if (this.ended != null) {
      const reason = this.ended
      queueMicrotask(() => onEnd?.(reason))
      return () => {}
    }
    this.watches.set(watch.id, watch)
    this.clearIdle()
    this.write({ t: 'watch', id: watch.id, blob, chunkSize })
    return () => {
      if (!this.watches.delete(watch.id)) return
      this.write({ t: 'unwatch', id: watch.id })
      this.idleIfUnused()
    }
  }

  /** Drops the connection: every pending request fails with `reason`. Resolves once the socket is closed. */
  destroy(reason: Error): Promise<void> {
    if (this.ended == null) {
      this.ended = reason
      this.onClosed()
      this.socket.destroy()
    }
    return this.closed
  }

  private get where(): string {
    return `${this.target.peer.slice(0, 16)} at ${this.target.host}:${this.target.port}`
  }

  private write(request: DataRequest): void {
    if (this.ended == null) this.socket.write(encodeHeader(request))
  }

  private onEstablished(): void {
    this.established = true
    if (this.connectTimer != null) clearTimeout(this.connectTimer)
    this.connectTimer = null
    this.lastProgress = performance.now()
    this.armStall()
    this.idleIfUnused()
  }

  private onData(data: Buffer): void {
    this.lastProgress = performance.now()
    try {
      this.reader.feed(data)
    } catch (err) {
      this.log.debug('bad frame from a data-plane server; connection closed', {
        peer: this.target.peer,
        error: messageOf(err),
      })
      const message = `bad answer from the data plane of ${this.where}: ${messageOf(err)}`
      void this.destroy(
        this.established
          ? new DataPlaneConnectionLostError(message, { cause: err })
          : new DataPlaneUnreachableError(`${message}; using libp2p streams instead`, { cause: err }),
      )
    }
  }

  /** Handles one answer's header; answers the length of the body that follows. */
  private onAnswer(answer: DataAnswer): number {
    switch (answer.t) {
      case 'chunk': {
        const get = this.gets.get(answer.id)
        if (get == null) return this.discard(answer.id, answer.length)
        if (answer.length !== get.request.length)
          throw new BadFrameError(
            `chunk ${get.request.index}: ${answer.length} bytes, ${get.request.length} expected`,
          )
        // length ≥ 1 (checkRequest), so a body follows.
        const into = get.request.into
        const data =
          into != null && into.byteLength >= answer.length
            ? into.subarray(0, answer.length)
            : Buffer.allocUnsafe(answer.length)
        this.receiving = {
          kind: 'chunk',
          get,
          data,
          offset: 0,
          hash: createHash('sha256'),
          firstByteMs: performance.now() - get.sentAt,
        }
        return answer.length
      }
      case 'busy':
      case 'elsewhere':
      case 'none': {
        const get = this.gets.get(answer.id)
        if (get != null) {
          this.settle(get)
          const chunk = `chunk ${get.request.index} of ${get.request.blob.slice(0, 12)}`
          get.reject(
            answer.t === 'busy'
              ? new DataPlaneBusyError(`${this.where} has no free upload slot; ask another holder or later`)
              : answer.t === 'elsewhere'
                ? new ChunkElsewhereError(`${this.where} just sent ${chunk} to another peer; get it there`)
                : new ChunkUnavailableError(`${this.where} does not hold ${chunk}`),
          )
          return 0
        }
        if (answer.t === 'none') this.toWatcher(answer.id, { t: 'none' })
        else this.discard(answer.id, 0)
        return 0
      }
      case 'map': {
        const watch = this.watches.get(answer.id) ?? null
        if (watch == null) return this.discard(answer.id, answer.length)
        const count = Math.ceil(answer.size / watch.chunkSize)
        const expected = answer.whole ? 0 : Math.ceil(count / 8)
        if (answer.length !== expected)
          throw new BadFrameError(`map of ${count} chunks with a bitmap of ${answer.length} bytes`)
        if (answer.length === 0) {
          this.toWatcher(answer.id, { t: 'map', size: answer.size, bitmap: answer.whole ? null : '' })
          return 0
        }
        const bits = Buffer.allocUnsafe(answer.length)
        this.receiving = { kind: 'map', watch, size: answer.size, bits, offset: 0 }
        return answer.length
      }
      case 'have':
        this.toWatcher(answer.id, { t: 'have', index: answer.index })
        return 0
      case 'whole':
        this.toWatcher(answer.id, { t: 'whole' })
        return 0
    }
  }

  /**
   * An answer to no pending request: one we gave up (aborted get, ended watch) is
   * skipped, body and all; an id never issued is a protocol error.
   */
  private discard(id: number, length: number): number {
    if (id >= this.nextId) throw new BadFrameError(`answer to request ${id}, which was never sent`)
    if (length > 0) this.receiving = { kind: 'discard' }
    return length
  }

  private onBody(bytes: Buffer, rest: number): void {
    const receiving = this.receiving
    if (receiving == null) return
    if (receiving.kind === 'chunk') {
      bytes.copy(receiving.data, receiving.offset)
      receiving.offset += bytes.length
      receiving.hash.update(bytes)
      this.counters.bytesReceived += bytes.length
      if (rest > 0) return
      this.receiving = null
      const { get } = receiving
      this.settle(get)
      get.resolve({
        data: receiving.data,
        sha256: receiving.hash.digest('hex'),
        firstByteMs: receiving.firstByteMs,
      })
    } else if (receiving.kind === 'map') {
      bytes.copy(receiving.bits, receiving.offset)
      receiving.offset += bytes.length
      if (rest > 0) return
      this.receiving = null
      if (receiving.watch != null && this.watches.has(receiving.watch.id))
        this.toWatcher(receiving.watch.id, {
          t: 'map',
          size: receiving.size,
          bitmap: receiving.bits.toString('base64'),
        })
    } else if (rest === 0) {
      this.receiving = null
    }
  }

  private toWatcher(id: number, update: HaveUpdate): void {
    const watch = this.watches.get(id)
    if (watch == null) {
      this.discard(id, 0)
      return
    }
    try {
      watch.onHave(update)
    } catch (err) {
      this.log.error('a HAVE listener failed', { peer: this.target.peer, error: messageOf(err) })
    }
  }

  /** The get is answered or given up: forget it and its abort listener. */
  private settle(get: PendingGet): void {
    this.gets.delete(get.id)
    if (get.onAbort != null) get.signal?.removeEventListener('abort', get.onAbort)
    get.onAbort = null
    if (this.gets.size === 0) {
      if (this.stallTimer != null) clearTimeout(this.stallTimer)
      this.stallTimer = null
      this.idleIfUnused()
    }
  }

  private abort(get: PendingGet): void {
    if (!this.gets.has(get.id)) return
    const reason = abortReason(get.signal!)
    if (this.receiving?.kind === 'chunk' && this.receiving.get === get) {
      // Mid-body: the rest of the chunk is read and dropped. Dropping the connection
      // instead would fail every other get pipelined on it and end its HAVE watches
      // (an endgame loser is cancelled this way at the end of every blob).
      this.settle(get)
      get.reject(reason)
      this.receiving = { kind: 'discard' }
      return
    }
    this.settle(get)
    get.reject(reason)
    // Whatever still comes for it (`none` if the server drops it, or the chunk) is skipped.
    this.write({ t: 'cancel', id: get.id })
  }

  private armStall(): void {
    if (this.stallTimer != null || !this.established || this.gets.size === 0 || this.ended != null) return
    this.stallTimer = setTimeout(() => this.checkStall(), this.settings.stallMs)
  }

  private checkStall(): void {
    this.stallTimer = null
    if (this.gets.size === 0 || this.ended != null) return
    const quiet = performance.now() - this.lastProgress
    if (quiet < this.settings.stallMs) {
      this.stallTimer = setTimeout(() => this.checkStall(), this.settings.stallMs - quiet)
      return
    }
    this.log.debug('data-plane connection stalled', { peer: this.target.peer, ms: Math.round(quiet) })
    void this.destroy(
      new DataPlaneStalledError(
        `no byte from ${this.where} for ${this.settings.stallMs} ms while a chunk was due; connection dropped`,
      ),
    )
  }

  private idleIfUnused(): void {
    if (this.idleTimer != null || this.gets.size > 0 || this.watches.size > 0 || this.ended != null) return
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null
      void this.destroy(new DataPlaneConnectionLostError('closed after being idle'))
    }, this.settings.idleMs)
    this.idleTimer.unref()
  }

  private clearIdle(): void {
    if (this.idleTimer != null) clearTimeout(this.idleTimer)
    this.idleTimer = null
  }

  /** The socket closed: fail whatever was pending, clear every timer. */
  private finish(): void {
    const cause = this.socketError ?? undefined
    this.ended ??= this.established
      ? new DataPlaneConnectionLostError(
          `the data-plane connection to ${this.where} was lost${cause == null ? '' : `: ${describeFailure(cause)}`}`,
          { cause },
        )
      : new DataPlaneUnreachableError(
          `cannot reach the data plane of ${this.where}${cause == null ? ' (closed before it answered)' : `: ${describeFailure(cause)}`}; using libp2p streams instead`,
          { cause },
        )
    const reason = this.ended
    this.reader.stop()
    for (const timer of [this.connectTimer, this.stallTimer, this.idleTimer])
      if (timer != null) clearTimeout(timer)
    this.connectTimer = this.stallTimer = this.idleTimer = null
    this.receiving = null
    this.onClosed()
    for (const get of [...this.gets.values()]) {
      this.settle(get)
      get.reject(reason)
    }
    const watches = [...this.watches.values()]
    this.watches.clear()
    for (const watch of watches) {
      try {
        watch.onEnd?.(reason)
      } catch (err) {
        this.log.error('a watch end listener failed', { error: messageOf(err) })
      }
    }
    if (cause != null || !this.established)
      this.log.debug('data-plane connection closed', { peer: this.target.peer, reason: reason.message })
  }
}

function checkRequest(request: ChunkRequest): string | null {
  if (!HASH.test(request.blob)) return 'fetchChunk: blob must be a sha256 in hex'
  if (!validChunkSize(request.chunkSize))
    return `fetchChunk: chunkSize must be within ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`
  if (!Number.isInteger(request.index) || request.index < 0) return 'fetchChunk: index must be an integer ≥ 0'
  if (!Number.isInteger(request.length) || request.length < 1 || request.length > request.chunkSize)
    return 'fetchChunk: length must be within 1..chunkSize'
  return null
}

/** An address announced by a peer that no socket can dial: unreachable, so the caller falls back to libp2p. */
function checkTarget(target: DataPlaneTarget): DataPlaneUnreachableError | null {
  if (typeof target.host === 'string' && target.host.length > 0 && isPort(target.port)) return null
  return new DataPlaneUnreachableError(
    `the data-plane address ${String(target.host)}:${String(target.port)} of ${target.peer} is not a host and port; using libp2p streams instead`,
  )
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port < 65_536
}

function validChunkSize(chunkSize: number): boolean {
  return Number.isInteger(chunkSize) && chunkSize >= MIN_CHUNK_SIZE && chunkSize <= MAX_CHUNK_SIZE
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number of ms`)
  return value
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError')
}
