import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { Logger, Startable } from '../../shared/index.js'
import { messageOf, PortInUseError } from '../../shared/index.js'
import type { ChunkMap } from '../chunk-map.js'
import {
  HANDSHAKE_TIMEOUT_MS,
  KEEPALIVE_MS,
  MAX_CONNECTIONS,
  MAX_IDENTITY_LENGTH,
  MAX_QUEUED_GETS,
  MAX_WATCHES,
  MAX_WRITE_BACKLOG,
  PREAMBLE,
  SEND_STALL_MS,
  SERVER_IDLE_MS,
  SLOT_TURN_CHUNKS,
} from './constants.js'
import { DataPlaneListenError } from './errors.js'
import { describeFailure, serverTlsOptions } from './key.js'
import { type DataAnswer, type DataRequest, decodeRequest, encodeHeader, FrameReader } from './wire.js'

/** What the server reads from (the BlobStore satisfies it). */
export interface DataPlaneSource {
  chunkMap(hash: string, chunkSize: number): { size: number; have: ChunkMap } | null
  /** `into`: a buffer of at least the chunk's length to read into (the answer may be a view of it). */
  readChunk(hash: string, index: number, chunkSize: number, into?: Buffer): Promise<Uint8Array | null>
  /** Called for every chunk that becomes servable (and may be called with index -1 when the blob becomes whole); returns an unsubscribe function. */
  onChunk(listener: (hash: string, index: number) => void): () => void
}

export interface DataPlaneServerInit {
  /** dataPlaneKey(secret) for a closed cluster; null for an open cluster (plain TCP, same framing). */
  key: Buffer | null
  host: string
  /** 0: any free port. */
  port: number
  /**
   * Upload slots: connections served at once. A request that finds no free slot is
   * answered `busy` at once, so a seed serves few peers fast (BitTorrent's choking,
   * simplified).
   */
  uploadSlots: number
  /** ms a chunk of a whole blob sent to one peer is not sent to another (`elsewhere`); 0: off. Default 1 s. */
  freshSendMs?: number
  /** Awaited before each chunk is sent (the agent's upload rate limit). */
  beforeSend?: (bytes: number) => Promise<void>
  /** After each chunk served. `peer` is the client's TLS-PSK identity (its peer id) or its address in an open cluster. */
  onServed?: (peer: string, bytes: number) => void
}

export interface DataPlaneServerStats {
  /** Connections open now. */
  connections: number
  busyAnswers: number
  /** Gets answered `elsewhere`: the chunk had just been sent to another peer. */
  elsewhereAnswers: number
  chunksServed: number
  bytesServed: number
}

type Get = Extract<DataRequest, { t: 'get' }>

interface Watch {
  connection: Connection
  id: number
  blob: string
  chunkSize: number
}

/** A client's connection as the server sees it. */
interface Connection {
  socket: Socket
  peer: string
  reader: FrameReader<DataRequest>
  /** Gets accepted and not yet answered, in order; the first is being served while `serving`. */
  queue: Get[]
  serving: boolean
  /** Holds an upload slot (from its first accepted get until its queue empties). */
  slot: boolean
  /** `turnedAway` when the slot was taken, and chunks served since. */
  turnStart: number
  turnChunks: number
  /** Its turn is over: new gets are answered busy until the queue drains and the slot is released. */
  yielding: boolean
  watches: Map<number, Watch>
  closed: boolean
  /** Read buffers the socket has finished with, reused for the next chunks. */
  buffers: Buffer[]
}

const IDENTITY = new RegExp(`^[\\x21-\\x7e]{1,${MAX_IDENTITY_LENGTH}}$`)

/**
 * Serves chunks of the blobs this node holds, and HAVE notices, over the data plane
 * (the format is in wire.ts).
 *
 * Upload slots: a connection takes a slot with its first `get` that finds one free,
 * and keeps it while it has gets queued, so a client pipelining requests is served
 * back to back; when its queue empties the slot is free again. A get on a connection
 * without a slot, when none is free, is answered `busy` at once and counts as a
 * peer turned away. A connection that has been served SLOT_TURN_CHUNKS chunks in its
 * turn while someone was turned away yields: its queued gets are still served, new
 * ones are answered `busy`, and the slot is released when the queue drains. Watches
 * need no slot.
 *
 * Each connection's gets are served one after the other: read the chunk, await
 * `beforeSend`, wait for the socket to drain if its last write was refused, then write
 * the header and the chunk's buffer (no copy). The next chunk is read while the socket
 * still drains the previous one. A client that takes in nothing for SEND_STALL_MS
 * while a chunk waits to be sent is dropped, so it cannot sit on a slot.
 */
export class DataPlaneServer implements Startable {
  private readonly log: Logger
  private server: Server | null = null
  private address: { host: string; port: number } | null = null
  private readonly connections = new Set<Connection>()
  private readonly sockets = new Set<Socket>()
  private readonly watchers = new Map<string, Set<Watch>>()
  private readonly identities = new WeakMap<object, string>()
  private unsubscribe: (() => void) | null = null
  private freeSlots: number
  /** Gets answered `busy` for want of a slot, ever: a holder yields when this grew during its turn. */
  private turnedAway = 0
  private readonly counters = { busyAnswers: 0, elsewhereAnswers: 0, chunksServed: 0, bytesServed: 0 }
  /** Who was last sent each chunk, and when (performance.now()): see sentElsewhere. */
  private readonly lastSent = new Map<string, { peer: string; started: number; at: number | null }>()
  private readonly freshSendMs: number

  constructor(
    private readonly init: DataPlaneServerInit,
    private readonly source: DataPlaneSource,
    logger: Logger,
  ) {
    this.log = logger.child('data-plane')
    this.freshSendMs = init.freshSendMs ?? FRESH_SEND_MS
    if (!Number.isInteger(init.uploadSlots) || init.uploadSlots < 1)
      throw new RangeError(`uploadSlots must be a positive integer, not ${init.uploadSlots}`)
    this.freeSlots = init.uploadSlots
  }

  /** Listens; answers the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.address != null) return this.address
    if (this.server != null) throw new Error('DataPlaneServer.start() called while starting')
    const server =
      this.init.key == null
        ? createTcpServer((socket) => this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`))
        : createTlsServer(
            serverTlsOptions(
              this.init.key,
              (socket, identity) => this.acceptIdentity(socket, identity),
              HANDSHAKE_TIMEOUT_MS,
            ),
            (socket: TLSSocket) => this.accept(socket, this.identities.get(socket) ?? 'unknown'),
          )
    server.maxConnections = MAX_CONNECTIONS
    // Every TCP socket, handshaking ones too, so stop() can close them all at once.
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.log.debug('data-plane TLS handshake failed', {
        from: `${socket.remoteAddress}:${socket.remotePort}`,
        error: describeFailure(err),
      })
    })
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port, this.init.host, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((err: NodeJS.ErrnoException) => {
      this.server = null
      throw listenError(err, this.init.host, this.init.port)
    })
    server.on('error', (err) => this.log.warn('data-plane listener error', { error: messageOf(err) }))
    this.unsubscribe = this.source.onChunk((hash, index) => this.notify(hash, index))
    const bound = server.address()
    this.address = {
      host: this.init.host,
      port: typeof bound === 'object' && bound != null ? bound.port : this.init.port,
    }
    this.log.debug('data plane listening', { ...this.address, tls: this.init.key != null })
    return this.address
  }

  /** Stops listening and closes every connection; safe twice. */
  async stop(): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = null
    this.address = null
    this.unsubscribe?.()
    this.unsubscribe = null
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const connection of [...this.connections]) this.drop(connection, 'the data plane stopped')
    for (const socket of this.sockets) socket.destroy()
    await closed
  }

  stats(): DataPlaneServerStats {
    return { connections: this.connections.size, ...this.counters }
  }

  private acceptIdentity(socket: TLSSocket, identity: string): boolean {
    if (!IDENTITY.test(identity)) {
      this.log.debug('data-plane client refused: malformed PSK identity', { from: socket.remoteAddress })
      return false
    }
    this.identities.set(socket, identity)
    return true
  }

  private accept(socket: Socket, peer: string): void {
    if (this.server == null) {
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    // A connection holding only watches is silent for long: keepalive finds a vanished client.
    socket.setKeepAlive(true, KEEPALIVE_MS)
    socket.setTimeout(SERVER_IDLE_MS)
    const connection: Connection = {
      socket,
      peer,
      reader: null as unknown as FrameReader<DataRequest>,
      queue: [],
      serving: false,
      slot: false,
      turnStart: 0,
      turnChunks: 0,
      yielding: false,
      watches: new Map(),
      buffers: [],
      closed: false,
    }
    connection.reader = new FrameReader(decodeRequest, {
      header: (request) => {
        this.handle(connection, request)
        return 0
      },
      body: () => {},
    })
    this.connections.add(connection)
    socket.on('data', (data: Buffer) => {
      try {
        connection.reader.feed(data)
      } catch (err) {
        this.drop(connection, `bad frame: ${messageOf(err)}`)
        return
      }
      if (socket.writableLength > MAX_WRITE_BACKLOG) socket.pause()
    })
    socket.on('drain', () => {
      if (socket.isPaused()) socket.resume()
    })
    // Silent for SERVER_IDLE_MS: closed unless it holds watches (a queue being sent has its own timeout).
    socket.on('timeout', () => {
      if (connection.watches.size === 0 && connection.queue.length === 0) this.drop(connection, 'idle')
    })
    socket.on('error', (err) => this.drop(connection, describeFailure(err)))
    socket.on('close', () => this.drop(connection, 'closed by the client'))
    socket.write(PREAMBLE)
  }

  private handle(connection: Connection, request: DataRequest): void {
    switch (request.t) {
      case 'get':
        this.enqueue(connection, request)
        return
      case 'cancel': {
        // The first queued get is being served while `serving`: it completes.
        const from = connection.serving ? 1 : 0
        const at = connection.queue.findIndex((get, i) => i >= from && get.id === request.id)
        if (at < 0) return
        connection.queue.splice(at, 1)
        this.send(connection, { t: 'none', id: request.id })
        this.releaseIfDone(connection)
        return
      }
      case 'watch':
        this.watch(connection, request)
        return
      case 'unwatch': {
        const watch = connection.watches.get(request.id)
        if (watch == null) return
        connection.watches.delete(request.id)
        this.unlink(watch)
        return
      }
    }
  }

  private enqueue(connection: Connection, get: Get): void {
    if (!connection.slot) {
      if (this.freeSlots === 0) {
        this.turnedAway++
        this.busy(connection, get.id)
        return
      }
      this.freeSlots--
      connection.slot = true
      connection.turnStart = this.turnedAway
      connection.turnChunks = 0
      connection.yielding = false
    }
    if (connection.yielding || connection.queue.length >= MAX_QUEUED_GETS) {
      this.busy(connection, get.id)
      this.releaseIfDone(connection)
      return
    }
    connection.queue.push(get)
    if (!connection.serving) void this.serve(connection)
  }

  private busy(connection: Connection, id: number): void {
    this.counters.busyAnswers++
    this.send(connection, { t: 'busy', id })
  }

  private releaseIfDone(connection: Connection): void {
    if (!connection.slot || connection.queue.length > 0) return
    connection.slot = false
    connection.yielding = false
    this.freeSlots++
  }

  /** Serves the connection's queue in order until it is empty or the connection closes. */
  private async serve(connection: Connection): Promise<void> {
    connection.serving = true
    try {
      await this.serveQueue(connection)
    } catch (err) {
      this.log.error('data-plane serving failed; connection closed', {
        peer: connection.peer,
        error: messageOf(err),
      })
      this.drop(connection, messageOf(err))
    } finally {
      connection.serving = false
    }
  }

  private async serveQueue(connection: Connection): Promise<void> {
    const { socket } = connection
    let drained: Promise<boolean> | null = null
    while (connection.queue.length > 0 && !connection.closed) {
      const get = connection.queue[0]!
      if (this.sentElsewhere(connection, get)) {
        this.counters.elsewhereAnswers++
        this.send(connection, { t: 'elsewhere', id: get.id })
        connection.queue.shift()
        this.releaseIfDone(connection)
        continue
      }
      const data = await this.read(connection, get)
      if (connection.closed) break
      if (data != null) {
        if (drained != null && !(await drained)) {
          this.drop(connection, `the client read nothing for ${SEND_STALL_MS} ms while a chunk was sent`)
          break
        }
        if (connection.closed) break
        drained = null
        socket.cork()
        socket.write(encodeHeader({ t: 'chunk', id: get.id, length: data.byteLength }))
        // The buffer goes back to the pool once the socket has taken the bytes.
        const flowing = socket.write(data, () => {
          giveBack(connection, data)
          this.markSent(get)
        })
        socket.uncork()
        if (!flowing) drained = untilDrained(socket, SEND_STALL_MS)
        this.counters.chunksServed++
        this.counters.bytesServed += data.byteLength
        try {
          this.init.onServed?.(connection.peer, data.byteLength)
        } catch (err) {
          this.log.error('onServed failed', { error: messageOf(err) })
        }
        connection.turnChunks++
        if (connection.turnChunks >= SLOT_TURN_CHUNKS && this.turnedAway > connection.turnStart)
          connection.yielding = true
      } else {
        this.lastSent.delete(sentKey(get))
        this.send(connection, { t: 'none', id: get.id })
      }
      connection.queue.shift()
      this.releaseIfDone(connection)
    }
  }

  /**
   * Super-seeding, lightly: a chunk of a whole blob sent to another peer less than
   * FRESH_SEND_MS ago is not sent again; the asker gets it from that peer once it
   * announces it. So a seed spends its uplink on chunks no one has yet, and the
   * copies spread between the fetchers (at N=5 a seed otherwise sent 1.65 copies).
   */
  private sentElsewhere(connection: Connection, get: Get): boolean {
    if (this.freshSendMs <= 0) return false
    const key = sentKey(get)
    const now = performance.now()
    const last = this.lastSent.get(key)
    // Fresh while it is being sent (at: null) and FRESH_SEND_MS after: on a 20 Mbit/s
    // link one chunk takes longer than that window to go out.
    const fresh =
      last != null &&
      (last.at == null ? now - last.started < SENDING_MAX_MS : now - last.at < this.freshSendMs)
    if (fresh && last.peer !== connection.peer) {
      const map = this.source.chunkMap(get.blob, get.chunkSize)
      if (map?.have.complete === true) return true
    }
    this.lastSent.set(key, { peer: connection.peer, started: now, at: null })
    if (this.lastSent.size > LAST_SENT_KEPT) {
      for (const [k, v] of this.lastSent)
        if (now - (v.at ?? v.started) >= Math.max(this.freshSendMs, SENDING_MAX_MS)) this.lastSent.delete(k)
      if (this.lastSent.size > LAST_SENT_KEPT) this.lastSent.clear()
    }
    return false
  }

  /** The socket took the chunk's bytes: its freshness runs from now. */
  private markSent(get: Get): void {
    const entry = this.lastSent.get(sentKey(get))
    if (entry != null && entry.at == null) entry.at = performance.now()
  }

  /** The chunk a get asks for, after the rate limit, or null (answered `none`). */
  private async read(connection: Connection, get: Get): Promise<Uint8Array | null> {
    // chunkSize is bounded by the schema, so the map built here is small.
    const map = this.source.chunkMap(get.blob, get.chunkSize)
    if (map == null || !map.have.has(get.index)) return null
    const length = Math.min(get.chunkSize, map.size - get.index * get.chunkSize)
    try {
      await this.init.beforeSend?.(length)
      if (connection.closed) return null
      const data = await this.source.readChunk(
        get.blob,
        get.index,
        get.chunkSize,
        takeBuffer(connection, length),
      )
      if (data != null && data.byteLength !== length) {
        this.log.warn('chunk read short; answered none', {
          blob: get.blob,
          index: get.index,
          expected: length,
          read: data.byteLength,
        })
        return null
      }
      return data
    } catch (err) {
      this.log.warn('could not read a chunk to serve; answered none', {
        blob: get.blob,
        index: get.index,
        error: messageOf(err),
      })
      return null
    }
  }

  private watch(connection: Connection, request: Extract<DataRequest, { t: 'watch' }>): void {
    if (connection.watches.has(request.id) || connection.watches.size >= MAX_WATCHES) {
      this.drop(connection, `watch ${request.id} refused (a duplicate id, or over ${MAX_WATCHES} watches)`)
      return
    }
    const watch: Watch = { connection, id: request.id, blob: request.blob, chunkSize: request.chunkSize }
    connection.watches.set(request.id, watch)
    const set = this.watchers.get(request.blob) ?? new Set()
    this.watchers.set(request.blob, set)
    set.add(watch)
    const map = this.source.chunkMap(request.blob, request.chunkSize)
    if (map == null) {
      this.send(connection, { t: 'none', id: request.id })
      return
    }
    const whole = map.have.complete
    const bitmap = whole ? null : Buffer.from(map.have.toBase64(), 'base64')
    this.send(connection, {
      t: 'map',
      id: request.id,
      size: map.size,
      whole,
      length: bitmap?.byteLength ?? 0,
    })
    if (bitmap != null && bitmap.byteLength > 0) connection.socket.write(bitmap)
  }

  /** The source has a new chunk (or, index -1, the whole blob): tell its watchers. */
  private notify(hash: string, index: number): void {
    const set = this.watchers.get(hash)
    if (set == null) return
    for (const watch of set) {
      if (index < 0) {
        this.send(watch.connection, { t: 'whole', id: watch.id })
        continue
      }
      // A download in another chunk size has other indices: not this watcher's.
      const map = this.source.chunkMap(hash, watch.chunkSize)
      if (map == null || !map.have.has(index)) continue
      this.send(watch.connection, { t: 'have', id: watch.id, index })
    }
  }

  private unlink(watch: Watch): void {
    const set = this.watchers.get(watch.blob)
    set?.delete(watch)
    if (set?.size === 0) this.watchers.delete(watch.blob)
  }

  private send(connection: Connection, answer: DataAnswer): void {
    if (!connection.closed) connection.socket.write(encodeHeader(answer))
  }

  private drop(connection: Connection, reason: string): void {
    if (connection.closed) return
    connection.closed = true
    connection.reader.stop()
    this.connections.delete(connection)
    for (const watch of connection.watches.values()) this.unlink(watch)
    connection.watches.clear()
    connection.queue.length = 0
    // A send cut short by the close ends now: its chunk must not stay "being sent" to a peer gone.
    const now = performance.now()
    for (const entry of this.lastSent.values())
      if (entry.at == null && entry.peer === connection.peer) entry.at = now
    if (connection.slot) {
      connection.slot = false
      this.freeSlots++
    }
    connection.socket.destroy()
    this.log.debug('data-plane connection closed', { peer: connection.peer, reason })
  }
}

/** Whether the socket drained its write buffer (or closed) within `ms`; false when it did not. */
function untilDrained(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (drained: boolean) => {
      clearTimeout(timer)
      socket.off('drain', onDrain)
      socket.off('close', onDrain)
      resolve(drained)
    }
    const onDrain = () => done(true)
    const timer = setTimeout(() => done(false), ms)
    socket.on('drain', onDrain)
    socket.on('close', onDrain)
  })
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const at = `cannot listen for the data plane on ${host}:${port}`
  if (err.code === 'EADDRINUSE')
    return new PortInUseError(
      `${at}: the port is in use by another process (another agent?); stop it or choose another port with --data-listen`,
      { cause: err },
    )
  if (err.code === 'EADDRNOTAVAIL')
    return new DataPlaneListenError(
      `${at}: that IP address is not one of this machine's; use one of its addresses, or 0.0.0.0 for all`,
      { cause: err },
    )
  if (err.code === 'EACCES')
    return new DataPlaneListenError(
      `${at}: permission denied (ports below 1024 need privileges); choose a port from 1024 up`,
      { cause: err },
    )
  return new DataPlaneListenError(`${at}: ${err.message}`, { cause: err })
}

/**
 * Read buffers are reused per connection (READ_BUFFERS of them): a fresh 1 MiB
 * buffer per chunk made the sender run a full garbage collection every ~100 ms,
 * a third of its time (V8 counts external memory towards its heap limit).
 */
const READ_BUFFERS = 3
/** ms during which a chunk of a whole blob just sent to one peer is not sent to another (sentElsewhere). */
const FRESH_SEND_MS = 1_000
/** ms a send that never reported its end (a dropped connection) keeps its chunk fresh, at most. */
const SENDING_MAX_MS = 10_000
/** Chunks whose last send is remembered, at most (older entries are dropped first). */
const LAST_SENT_KEPT = 65_536

/**
 * The read buffers this module allocated, by their memory: only those go back to a
 * pool. `allocUnsafeSlow`: a small `allocUnsafe` is a slice of Node's shared 8 KiB
 * pool, which other live buffers use; reading a chunk into it would corrupt them.
 */
const ownBuffers = new WeakSet<ArrayBufferLike>()

function takeBuffer(connection: Connection, length: number): Buffer | undefined {
  const pool = connection.buffers
  const index = pool.findIndex((b) => b.byteLength >= length)
  if (index >= 0) return pool.splice(index, 1)[0]
  const buffer = Buffer.allocUnsafeSlow(length)
  ownBuffers.add(buffer.buffer)
  return buffer
}

function giveBack(connection: Connection, data: Uint8Array): void {
  if (connection.closed || connection.buffers.length >= READ_BUFFERS) return
  if (data.byteOffset !== 0 || !ownBuffers.has(data.buffer)) return
  connection.buffers.push(Buffer.from(data.buffer, 0, data.buffer.byteLength))
}

function sentKey(get: Get): string {
  return `${get.blob}/${get.chunkSize}/${get.index}`
}
