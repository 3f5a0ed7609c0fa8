import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ChunkMap } from '../../src/artifacts/chunk-map.js'
import { MIN_CHUNK_SIZE } from '../../src/artifacts/constants.js'
import { PREAMBLE } from '../../src/artifacts/data-plane/constants.js'
import {
  ChunkElsewhereError,
  ChunkUnavailableError,
  DataPlaneBusyError,
  DataPlaneClient,
  type DataPlaneClientInit,
  DataPlaneConnectionLostError,
  DataPlaneServer,
  type DataPlaneServerInit,
  type DataPlaneSource,
  DataPlaneStalledError,
  type DataPlaneTarget,
  DataPlaneUnreachableError,
  dataPlaneKey,
  type HaveUpdate,
  SLOT_TURN_CHUNKS,
} from '../../src/artifacts/data-plane/index.js'
import { encodeHeader } from '../../src/artifacts/data-plane/wire.js'
import { silentLogger } from '../../src/shared/logger.js'
import { waitFor } from '../helpers/wait.js'

const CHUNK = MIN_CHUNK_SIZE
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

interface FakeBlob {
  data: Buffer
  chunkSize: number
  /** null: whole. */
  have: ChunkMap | null
}

/** A source of blobs held in memory; reads of chosen indices can be held back until released. */
class FakeSource implements DataPlaneSource {
  readonly blobs = new Map<string, FakeBlob>()
  private readonly listeners = new Set<(hash: string, index: number) => void>()
  private readonly gates = new Map<number, { promise: Promise<void>; open: () => void }>()
  failing: Error | null = null

  addWhole(data: Buffer): string {
    const hash = sha256(data)
    this.blobs.set(hash, { data, chunkSize: CHUNK, have: null })
    return hash
  }

  addPartial(data: Buffer, present: number[]): string {
    const hash = sha256(data)
    const have = new ChunkMap(Math.ceil(data.length / CHUNK))
    for (const i of present) have.add(i)
    this.blobs.set(hash, { data, chunkSize: CHUNK, have })
    return hash
  }

  /** A chunk arrived (index -1: the blob is whole now). */
  arrive(hash: string, index: number): void {
    const blob = this.blobs.get(hash)!
    if (index < 0) blob.have = null
    else blob.have?.add(index)
    for (const listener of this.listeners) listener(hash, index)
  }

  hold(index: number): void {
    let open = () => {}
    const promise = new Promise<void>((resolve) => {
      open = resolve
    })
    this.gates.set(index, { promise, open })
  }

  release(index: number): void {
    this.gates.get(index)?.open()
    this.gates.delete(index)
  }

  chunkMap(hash: string, chunkSize: number) {
    const blob = this.blobs.get(hash)
    if (blob == null) return null
    const count = Math.ceil(blob.data.length / chunkSize)
    if (blob.have == null) return { size: blob.data.length, have: ChunkMap.full(count) }
    return chunkSize === blob.chunkSize ? { size: blob.data.length, have: blob.have } : null
  }

  async readChunk(hash: string, index: number, chunkSize: number): Promise<Uint8Array | null> {
    await this.gates.get(index)?.promise
    if (this.failing != null) throw this.failing
    const blob = this.blobs.get(hash)
    if (blob == null) return null
    return blob.data.subarray(index * chunkSize, Math.min(blob.data.length, (index + 1) * chunkSize))
  }

  onChunk(listener: (hash: string, index: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get listening(): number {
    return this.listeners.size
  }
}

const KEY = dataPlaneKey(Buffer.from('the cluster secret'), 'test')

describe.each([
  { mode: 'open cluster (plain TCP)', key: null },
  { mode: 'closed cluster (TLS-PSK)', key: KEY },
])('data plane, $mode', ({ key }) => {
  const servers: DataPlaneServer[] = []
  const clients: DataPlaneClient[] = []
  const raw: Server[] = []

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()))
    await Promise.all(servers.splice(0).map((s) => s.stop()))
    await Promise.all(raw.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
  })

  const serve = async (source: DataPlaneSource, init: Partial<DataPlaneServerInit> = {}) => {
    const server = new DataPlaneServer(
      // `elsewhere` answers off unless a test is about them: several tests ask one chunk twice.
      { key, host: '127.0.0.1', port: 0, uploadSlots: 4, freshSendMs: 0, ...init },
      source,
      silentLogger,
    )
    servers.push(server)
    const { port } = await server.start()
    return { server, target: { peer: 'seed', host: '127.0.0.1', port } satisfies DataPlaneTarget }
  }

  const client = (init: Partial<DataPlaneClientInit> = {}) => {
    const c = new DataPlaneClient({ key, identity: `peer-${clients.length}`, ...init }, silentLogger)
    clients.push(c)
    return c
  }

  /** A stand-in server speaking the protocol by hand (open cluster only: it is plain TCP). */
  const fakeServer = async (onRequest: (socket: Socket, text: string) => void) => {
    const server = createServer((socket) => {
      socket.write(PREAMBLE)
      socket.on('data', (data) => onRequest(socket, data.toString('latin1')))
      socket.on('error', () => {})
    })
    raw.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    return { peer: 'fake', host: '127.0.0.1', port }
  }

  it('fetches chunks, the last one short, with their sha256 computed on arrival', async () => {
    const source = new FakeSource()
    const data = randomBytes(3 * CHUNK + 1000)
    const blob = source.addWhole(data)
    const served: Array<[string, number]> = []
    const { server, target } = await serve(source, { onServed: (peer, bytes) => served.push([peer, bytes]) })
    const c = client()
    for (const index of [0, 1, 2, 3]) {
      const expected = data.subarray(index * CHUNK, Math.min(data.length, (index + 1) * CHUNK))
      const chunk = await c.fetchChunk(target, { blob, chunkSize: CHUNK, index, length: expected.length })
      expect(chunk.data.equals(expected)).toBe(true)
      expect(chunk.sha256).toBe(sha256(expected))
    }
    expect(server.stats()).toMatchObject({ connections: 1, chunksServed: 4, bytesServed: data.length })
    expect(served.map(([, bytes]) => bytes)).toEqual([CHUNK, CHUNK, CHUNK, 1000])
    // The TLS-PSK identity names the client in a closed cluster; its address in an open one.
    if (key != null) expect(served[0]![0]).toBe('peer-0')
    else expect(served[0]![0]).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it('sends a chunk of a whole blob to one peer at a time: the next asker is told to get it elsewhere, then served', async () => {
    const source = new FakeSource()
    const data = randomBytes(2 * CHUNK)
    const blob = source.addWhole(data)
    const { server, target } = await serve(source, { freshSendMs: 1_000 })
    const [a, b] = [client(), client()]
    const ask = (c: DataPlaneClient, index: number) =>
      c.fetchChunk(target, { blob, chunkSize: CHUNK, index, length: CHUNK })
    expect((await ask(a, 0)).data.equals(data.subarray(0, CHUNK))).toBe(true)
    await expect(ask(b, 0)).rejects.toBeInstanceOf(ChunkElsewhereError)
    // Another chunk is sent at once, and the same peer may ask again.
    expect((await ask(b, 1)).data.equals(data.subarray(CHUNK))).toBe(true)
    expect((await ask(a, 0)).data.equals(data.subarray(0, CHUNK))).toBe(true)
    expect(server.stats().elsewhereAnswers).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    expect((await ask(b, 0)).data.equals(data.subarray(0, CHUNK))).toBe(true)
  })

  it('serves blobs smaller than 4 KiB again and again without corrupting anything (read buffers are its own)', async () => {
    const source = new FakeSource()
    const blobs = [randomBytes(3000), randomBytes(2048), randomBytes(100)].map((data) => ({
      data,
      blob: source.addWhole(data),
    }))
    const { target } = await serve(source)
    const c = client()
    for (let round = 0; round < 30; round++)
      for (const { data, blob } of blobs) {
        const chunk = await c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: data.length })
        expect(chunk.data.equals(data)).toBe(true)
      }
  })

  it('pipelines requests on one connection and counts them as pending until answered', async () => {
    const source = new FakeSource()
    const data = randomBytes(8 * CHUNK)
    const blob = source.addWhole(data)
    const { server, target } = await serve(source)
    source.hold(0)
    const c = client()
    const fetches = [...Array(8).keys()].map((index) =>
      c.fetchChunk(target, { blob, chunkSize: CHUNK, index, length: CHUNK }),
    )
    expect(c.pending('seed')).toBe(8)
    source.release(0)
    const chunks = await Promise.all(fetches)
    expect(chunks.map((ch) => ch.sha256)).toEqual(
      [...Array(8).keys()].map((i) => sha256(data.subarray(i * CHUNK, (i + 1) * CHUNK))),
    )
    expect(c.pending('seed')).toBe(0)
    expect(server.stats().connections).toBe(1)
  })

  it('answers busy beyond its upload slots, and serves the peer once a slot is free', async () => {
    const source = new FakeSource()
    const data = randomBytes(4 * CHUNK)
    const blob = source.addWhole(data)
    const { server, target } = await serve(source, { uploadSlots: 1 })
    source.hold(0)
    const first = client()
    const second = client()
    const held = first.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: CHUNK })
    const queued = first.fetchChunk(target, { blob, chunkSize: CHUNK, index: 1, length: CHUNK })
    await waitFor('the first client to hold the slot', () => server.stats().connections === 1)
    await expect(
      second.fetchChunk(target, { blob, chunkSize: CHUNK, index: 2, length: CHUNK }),
    ).rejects.toBeInstanceOf(DataPlaneBusyError)
    expect(server.stats().busyAnswers).toBe(1)
    source.release(0)
    await Promise.all([held, queued])
    const later = await second.fetchChunk(target, { blob, chunkSize: CHUNK, index: 2, length: CHUNK })
    expect(later.sha256).toBe(sha256(data.subarray(2 * CHUNK, 3 * CHUNK)))
  })

  it(`makes a slot holder yield after ${SLOT_TURN_CHUNKS} chunks when someone was turned away`, async () => {
    const source = new FakeSource()
    const data = randomBytes((SLOT_TURN_CHUNKS + 4) * CHUNK)
    const blob = source.addWhole(data)
    const { target } = await serve(source, { uploadSlots: 1 })
    const greedy = client()
    const other = client()
    const fetch = (c: DataPlaneClient, index: number) =>
      c.fetchChunk(target, { blob, chunkSize: CHUNK, index, length: CHUNK })
    // Reads held back keep the greedy connection's queue from draining (which would end its turn).
    for (const index of [0, SLOT_TURN_CHUNKS - 1, SLOT_TURN_CHUNKS]) source.hold(index)
    // As many as the server queues for one connection (MAX_QUEUED_GETS).
    const turn = [...Array(SLOT_TURN_CHUNKS).keys()].map((i) => fetch(greedy, i))
    await expect(fetch(other, 0)).rejects.toBeInstanceOf(DataPlaneBusyError)
    source.release(0)
    await turn[0]
    // Still in its turn: accepted.
    const lastOfTurn = fetch(greedy, SLOT_TURN_CHUNKS)
    // The server reads a connection's requests in order: once a later watch is answered, that get is queued.
    const maps: HaveUpdate[] = []
    greedy.watch(target, blob, CHUNK, (u) => maps.push(u))
    await waitFor('the request to be queued', () => maps.length === 1)
    source.release(SLOT_TURN_CHUNKS - 1)
    await Promise.all(turn)
    // Its turn is used and someone waits: new requests are refused, queued ones still served.
    await expect(fetch(greedy, SLOT_TURN_CHUNKS + 1)).rejects.toBeInstanceOf(DataPlaneBusyError)
    source.release(SLOT_TURN_CHUNKS)
    await lastOfTurn
    expect((await fetch(other, 0)).data.equals(data.subarray(0, CHUNK))).toBe(true)
  })

  it('answers none for what it does not hold or cannot read, and keeps the connection', async () => {
    const source = new FakeSource()
    const data = randomBytes(2 * CHUNK)
    const blob = source.addWhole(data)
    const partial = source.addPartial(randomBytes(3 * CHUNK), [0])
    const { server, target } = await serve(source)
    const c = client()
    const ask = (b: string, index: number, length = CHUNK) =>
      c.fetchChunk(target, { blob: b, chunkSize: CHUNK, index, length })
    await expect(ask('0'.repeat(64), 0)).rejects.toBeInstanceOf(ChunkUnavailableError)
    await expect(ask(blob, 2)).rejects.toBeInstanceOf(ChunkUnavailableError)
    await expect(ask(partial, 1)).rejects.toBeInstanceOf(ChunkUnavailableError)
    // Another chunk size than the download's: not servable.
    await expect(
      c.fetchChunk(target, { blob: partial, chunkSize: 2 * CHUNK, index: 0, length: 2 * CHUNK }),
    ).rejects.toBeInstanceOf(ChunkUnavailableError)
    source.failing = Object.assign(new Error('blob truncated'), { code: 'ERR_BLOB_TRUNCATED' })
    await expect(ask(blob, 0)).rejects.toBeInstanceOf(ChunkUnavailableError)
    source.failing = null
    expect((await ask(partial, 0)).sha256).toBe(sha256(source.blobs.get(partial)!.data.subarray(0, CHUNK)))
    expect(server.stats()).toMatchObject({ connections: 1, chunksServed: 1 })
  })

  it('answers a watch with the map, then pushes have and whole; nothing after unwatch', async () => {
    const source = new FakeSource()
    const partial = source.addPartial(randomBytes(10 * CHUNK), [0, 3])
    const { target } = await serve(source)
    const c = client()
    const updates: HaveUpdate[] = []
    const unwatch = c.watch(target, partial, CHUNK, (u) => updates.push(u))
    await waitFor('the map', () => updates.length === 1)
    const map = updates[0] as Extract<HaveUpdate, { t: 'map' }>
    expect(map).toMatchObject({ t: 'map', size: 10 * CHUNK })
    const have = ChunkMap.fromBase64(10, map.bitmap!)
    expect([...Array(10).keys()].filter((i) => have.has(i))).toEqual([0, 3])
    source.arrive(partial, 5)
    source.arrive(partial, 9)
    source.arrive(partial, -1)
    await waitFor('the pushes', () => updates.length === 4)
    expect(updates.slice(1)).toEqual([{ t: 'have', index: 5 }, { t: 'have', index: 9 }, { t: 'whole' }])
    expect(c.pending('seed')).toBe(0)

    // A watch on a whole blob: map with a null bitmap. After unwatch, no push arrives.
    const whole: HaveUpdate[] = []
    const end = c.watch(target, partial, CHUNK, (u) => whole.push(u))
    await waitFor('the second map', () => whole.length === 1)
    expect(whole[0]).toEqual({ t: 'map', size: 10 * CHUNK, bitmap: null })
    unwatch()
    end()
    source.arrive(partial, -1)
    const probe: HaveUpdate[] = []
    c.watch(target, partial, CHUNK, (u) => probe.push(u))
    await waitFor('a later answer on the same connection', () => probe.length === 1)
    expect(updates).toHaveLength(4)
    expect(whole).toHaveLength(1)
  })

  it('answers none to a watch of what it lacks, then pushes once the download starts', async () => {
    const source = new FakeSource()
    const { target } = await serve(source)
    const c = client()
    const updates: HaveUpdate[] = []
    const data = randomBytes(4 * CHUNK)
    const blob = sha256(data)
    c.watch(target, blob, CHUNK, (u) => updates.push(u))
    await waitFor('the answer', () => updates.length === 1)
    expect(updates[0]).toEqual({ t: 'none' })
    source.addPartial(data, [])
    source.arrive(blob, 2)
    await waitFor('the push', () => updates.length === 2)
    expect(updates[1]).toEqual({ t: 'have', index: 2 })
  })

  it('tells a watcher when the connection ends (server stopped), and fails pending requests', async () => {
    const source = new FakeSource()
    const data = randomBytes(2 * CHUNK)
    const blob = source.addWhole(data)
    const { server, target } = await serve(source)
    const c = client()
    const ended: Array<Error | undefined> = []
    const updates: HaveUpdate[] = []
    c.watch(
      target,
      blob,
      CHUNK,
      (u) => updates.push(u),
      (err) => ended.push(err),
    )
    await waitFor('the map', () => updates.length === 1)
    source.hold(1)
    const pending = c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 1, length: CHUNK })
    await waitFor('the request to reach the server', () => c.pending('seed') === 1)
    await server.stop()
    await server.stop()
    await expect(pending).rejects.toBeInstanceOf(DataPlaneConnectionLostError)
    await waitFor('the watch to end', () => ended.length === 1)
    expect(ended[0]).toBeInstanceOf(DataPlaneConnectionLostError)
    expect(server.stats().connections).toBe(0)
    expect(source.listening).toBe(0)
    source.release(1)
    // The port is closed now: the next request cannot connect.
    await expect(
      c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: CHUNK }),
    ).rejects.toBeInstanceOf(DataPlaneUnreachableError)
  })

  it('removes an aborted request the server has queued, and keeps the connection', async () => {
    const source = new FakeSource()
    const data = randomBytes(3 * CHUNK)
    const blob = source.addWhole(data)
    const { server, target } = await serve(source)
    const c = client()
    source.hold(0)
    const first = c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: CHUNK })
    const abort = new AbortController()
    const second = c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 1, length: CHUNK }, abort.signal)
    abort.abort()
    await expect(second).rejects.toMatchObject({ name: 'AbortError' })
    expect(c.pending('seed')).toBe(1)
    source.release(0)
    expect((await first).data.equals(data.subarray(0, CHUNK))).toBe(true)
    const third = await c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 2, length: CHUNK })
    expect(third.data.equals(data.subarray(2 * CHUNK))).toBe(true)
    expect(server.stats()).toMatchObject({ connections: 1, chunksServed: 2 })
    // A signal aborted already: refused before anything is sent.
    await expect(
      c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 2, length: CHUNK }, AbortSignal.abort()),
    ).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('closes a connection idle for idleMs, and opens a new one on the next request', async () => {
    const source = new FakeSource()
    const blob = source.addWhole(randomBytes(CHUNK))
    const { server, target } = await serve(source)
    const c = client({ idleMs: 100 })
    await c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: CHUNK })
    await waitFor('the idle connection to close', () => server.stats().connections === 0)
    await c.fetchChunk(target, { blob, chunkSize: CHUNK, index: 0, length: CHUNK })
    expect(server.stats().connections).toBe(1)
  })

  it('reports a target that does not listen as unreachable', async () => {
    const source = new FakeSource()
    const { server, target } = await serve(source)
    await server.stop()
    await expect(
      client().fetchChunk(target, { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 0, length: CHUNK }),
    ).rejects.toBeInstanceOf(DataPlaneUnreachableError)
  })

  it('reports an address no socket can dial as unreachable', async () => {
    const c = client()
    for (const target of [
      { peer: 'bad', host: '127.0.0.1', port: 70_000 },
      { peer: 'bad', host: '', port: 7000 },
    ])
      await expect(
        c.fetchChunk(target, { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 0, length: CHUNK }),
      ).rejects.toBeInstanceOf(DataPlaneUnreachableError)
    const ended: unknown[] = []
    c.watch(
      { peer: 'bad', host: '127.0.0.1', port: 0 },
      'a'.repeat(64),
      CHUNK,
      () => {},
      (e) => ended.push(e),
    )
    await waitFor('the watch to end', () => ended.length === 1)
    expect(ended[0]).toBeInstanceOf(DataPlaneUnreachableError)
    expect(c.stats().connections).toBe(0)
  })

  it('refuses a port in use with ERR_PORT_IN_USE and a message saying what to do', async () => {
    const { target } = await serve(new FakeSource())
    const second = new DataPlaneServer(
      { key, host: '127.0.0.1', port: target.port, uploadSlots: 1 },
      new FakeSource(),
      silentLogger,
    )
    const err = await second.start().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_PORT_IN_USE' })
    expect((err as Error).message).toMatch(/in use by another process.*--data-listen/)
    await second.stop()
  })

  // The stand-in server below speaks plain TCP: these run once, in the open cluster's pass.
  it.runIf(key == null)('declares a connection stalled when a chunk stops mid-body', async () => {
    const target = await fakeServer((socket, text) => {
      const id = Number(/"id":(\d+)/.exec(text)?.[1] ?? 1)
      socket.write(encodeHeader({ t: 'chunk', id, length: CHUNK }))
      socket.write(Buffer.alloc(CHUNK / 2))
    })
    const c = client({ stallMs: 200 })
    const err = await c
      .fetchChunk(target, { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 0, length: CHUNK })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataPlaneStalledError)
    expect(c.pending('fake')).toBe(0)
  })

  it.runIf(key == null)('does not count a silent connection with only a watch as stalled', async () => {
    const target = await fakeServer((socket, text) => {
      const id = Number(/"id":(\d+)/.exec(text)?.[1] ?? 1)
      socket.write(encodeHeader({ t: 'none', id }))
    })
    const c = client({ stallMs: 50 })
    const updates: HaveUpdate[] = []
    const ended: unknown[] = []
    c.watch(
      target,
      'a'.repeat(64),
      CHUNK,
      (u) => updates.push(u),
      (err) => ended.push(err),
    )
    await waitFor('the answer', () => updates.length === 1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(ended).toEqual([])
  })

  it.runIf(key == null)(
    'a request aborted mid-body has the rest of its chunk discarded; the next one on the connection still arrives',
    async () => {
      let socketClosed = false
      let release: () => void = () => {}
      const target = await fakeServer((socket) => {
        socket.on('close', () => {
          socketClosed = true
        })
        socket.write(encodeHeader({ t: 'chunk', id: 1, length: CHUNK }))
        socket.write(Buffer.alloc(CHUNK / 2))
        release = () => {
          socket.write(Buffer.alloc(CHUNK / 2, 1))
          socket.write(encodeHeader({ t: 'chunk', id: 2, length: CHUNK }))
          socket.write(Buffer.alloc(CHUNK, 2))
        }
      })
      const c = client()
      const abort = new AbortController()
      const first = c.fetchChunk(
        target,
        { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 0, length: CHUNK },
        abort.signal,
      )
      const second = c.fetchChunk(target, { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 1, length: CHUNK })
      await waitFor('half the body', () => c.stats().bytesReceived === CHUNK / 2)
      abort.abort()
      await expect(first).rejects.toMatchObject({ name: 'AbortError' })
      release()
      const { data } = await second
      expect(data.equals(Buffer.alloc(CHUNK, 2))).toBe(true)
      expect(socketClosed).toBe(false)
    },
  )

  it.runIf(key == null)(
    'closes the connection on an answer of the wrong length or to no request',
    async () => {
      for (const answer of [
        encodeHeader({ t: 'chunk', id: 1, length: 10 }),
        encodeHeader({ t: 'busy', id: 99 }),
        Buffer.from([0, 0]),
      ]) {
        const target = await fakeServer((socket) => socket.write(answer))
        const c = client()
        await expect(
          c.fetchChunk(target, { blob: 'a'.repeat(64), chunkSize: CHUNK, index: 0, length: CHUNK }),
        ).rejects.toBeInstanceOf(DataPlaneConnectionLostError)
      }
    },
  )
})
