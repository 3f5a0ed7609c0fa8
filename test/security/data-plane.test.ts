import { createHash, randomBytes } from 'node:crypto'
import { connect as connectTcp } from 'node:net'
import { connect as connectTls } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkMap } from '../../src/artifacts/chunk-map.js'
import { MIN_CHUNK_SIZE } from '../../src/artifacts/constants.js'
import { PREAMBLE } from '../../src/artifacts/data-plane/constants.js'
import {
  DataPlaneClient,
  DataPlaneServer,
  type DataPlaneSource,
  type DataPlaneTarget,
  DataPlaneUnreachableError,
  dataPlaneKey,
  type HaveUpdate,
} from '../../src/artifacts/data-plane/index.js'
import { encodeHeader } from '../../src/artifacts/data-plane/wire.js'
import { createLogger, silentLogger } from '../../src/shared/logger.js'
import { waitFor } from '../helpers/wait.js'

const CHUNK = MIN_CHUNK_SIZE
const DATA = randomBytes(2 * CHUNK)
const BLOB = createHash('sha256').update(DATA).digest('hex')
const KEY = dataPlaneKey(Buffer.from('the cluster secret'), 'test')
const OTHER_KEY = dataPlaneKey(Buffer.from('a guessed secret'), 'test')

/** One whole blob of two chunks. */
const source: DataPlaneSource = {
  chunkMap: (hash, chunkSize) =>
    hash === BLOB ? { size: DATA.length, have: ChunkMap.full(Math.ceil(DATA.length / chunkSize)) } : null,
  readChunk: async (hash, index, chunkSize) =>
    hash === BLOB ? DATA.subarray(index * chunkSize, (index + 1) * chunkSize) : null,
  onChunk: () => () => {},
}

/** What a client that speaks the protocol by hand writes: preamble, a get and a watch. */
const REQUESTS = Buffer.concat([
  PREAMBLE,
  encodeHeader({ t: 'get', id: 1, blob: BLOB, chunkSize: CHUNK, index: 0 }),
  encodeHeader({ t: 'watch', id: 2, blob: BLOB, chunkSize: CHUNK }),
])

/** Every byte the server sent back before the connection closed (or `wait` ms passed). */
function exchange(
  open: () => import('node:net').Socket,
  bytes: Buffer,
  wait = 60_000,
): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = open()
    const received: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ received: Buffer.concat(received), closed: false })
    }, wait)
    socket.on('data', (data: Buffer) => received.push(data))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ received: Buffer.concat(received), closed: true })
    })
    socket.write(bytes)
  })
}

/** No byte of the blob, its hash, or any answer of the protocol is in `received`. */
function expectNothingLearned(received: Buffer): void {
  expect(received.includes(DATA.subarray(0, 64))).toBe(false)
  expect(received.includes(DATA.subarray(CHUNK, CHUNK + 64))).toBe(false)
  expect(received.includes(Buffer.from(BLOB))).toBe(false)
  expect(received.includes(PREAMBLE)).toBe(false)
  expect(received.toString('latin1')).not.toMatch(/"t":|chunk|shoal/)
}

describe('data plane of a closed cluster: no key, no bytes and no names', () => {
  const lines: string[] = []
  const server = new DataPlaneServer(
    { key: KEY, host: '127.0.0.1', port: 0, uploadSlots: 2 },
    source,
    createLogger({ level: 'debug', write: (line) => lines.push(line) }),
  )
  let target: DataPlaneTarget
  const clients: DataPlaneClient[] = []

  beforeAll(async () => {
    const { port } = await server.start()
    target = { peer: 'seed', host: '127.0.0.1', port }
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await server.stop()
  })

  const client = (key: Buffer | null, identity = 'intruder') => {
    const c = new DataPlaneClient({ key, identity }, silentLogger)
    clients.push(c)
    return c
  }

  it('a client with another key cannot fetch or watch: unreachable, and the server logs why', async () => {
    const intruder = client(OTHER_KEY)
    const err = await intruder
      .fetchChunk(target, { blob: BLOB, chunkSize: CHUNK, index: 0, length: CHUNK })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataPlaneUnreachableError)
    expect((err as Error).message).toMatch(/keys differ/)
    const updates: HaveUpdate[] = []
    const ended: unknown[] = []
    intruder.watch(
      target,
      BLOB,
      CHUNK,
      (u) => updates.push(u),
      (e) => ended.push(e),
    )
    await waitFor('the watch to end', () => ended.length === 1)
    expect(ended[0]).toBeInstanceOf(DataPlaneUnreachableError)
    expect(updates).toEqual([])
    await waitFor('a debug line', () => lines.some((l) => /DEBUG.*TLS handshake failed/.test(l)))
    expect(server.stats()).toMatchObject({ chunksServed: 0, bytesServed: 0 })
  })

  it('a TLS client with another key learns nothing, and is told no identity hint', async () => {
    const hints: unknown[] = []
    const { received, closed } = await exchange(
      () =>
        connectTls({
          host: '127.0.0.1',
          port: target.port,
          minVersion: 'TLSv1.3',
          ciphers: 'TLS_AES_128_GCM_SHA256',
          checkServerIdentity: () => undefined,
          pskCallback: (hint) => {
            hints.push(hint)
            return { psk: OTHER_KEY, identity: 'intruder' }
          },
        }),
      REQUESTS,
    )
    expect(closed).toBe(true)
    expect(received).toHaveLength(0)
    expect(hints).toEqual([null])
  })

  it('a TLS client with no pre-shared key (certificates only) cannot finish the handshake', async () => {
    const { received, closed } = await exchange(
      () => connectTls({ host: '127.0.0.1', port: target.port, rejectUnauthorized: false }),
      REQUESTS,
    )
    expect(closed).toBe(true)
    expect(received).toHaveLength(0)
  })

  it('a plain TCP client speaking the protocol gets nothing but a TLS alert, and is disconnected', async () => {
    const { received, closed } = await exchange(() => connectTcp(target.port, '127.0.0.1'), REQUESTS)
    expect(closed).toBe(true)
    expectNothingLearned(received)
    // At most a TLS alert record (content type 21).
    if (received.length > 0) expect(received[0]).toBe(21)
  })

  it('a keyed client with a malformed identity is refused', async () => {
    const err = await client(KEY, 'x'.repeat(200))
      .fetchChunk(target, { blob: BLOB, chunkSize: CHUNK, index: 0, length: CHUNK })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DataPlaneUnreachableError)
  })

  it('after all that, a member with the key is served, and only it was', async () => {
    const member = client(KEY, '12D3KooWMember')
    const chunk = await member.fetchChunk(target, { blob: BLOB, chunkSize: CHUNK, index: 1, length: CHUNK })
    expect(chunk.data.equals(DATA.subarray(CHUNK))).toBe(true)
    expect(server.stats()).toMatchObject({ chunksServed: 1, bytesServed: CHUNK, connections: 1 })
  })
})

describe('data plane of an open cluster: open to anyone, closed to TLS', () => {
  const lines: string[] = []
  const server = new DataPlaneServer(
    { key: null, host: '127.0.0.1', port: 0, uploadSlots: 2 },
    source,
    createLogger({ level: 'debug', write: (line) => lines.push(line) }),
  )
  let port: number

  beforeAll(async () => {
    port = (await server.start()).port
  })
  afterAll(() => server.stop())

  it('serves a plain TCP client that speaks the protocol', async () => {
    const { received } = await exchange(
      () => connectTcp(port, '127.0.0.1'),
      REQUESTS,
      // The server keeps the connection open (a watch is on): wait for the bytes, then stop.
      2_000,
    )
    expect(received.subarray(0, PREAMBLE.length).equals(PREAMBLE)).toBe(true)
    expect(received.includes(DATA.subarray(0, CHUNK))).toBe(true)
  })

  it('a closed-cluster client reaching it fails cleanly as unreachable; the server logs a bad preamble', async () => {
    const c = new DataPlaneClient({ key: KEY, identity: 'member' }, silentLogger)
    const err = await c
      .fetchChunk(
        { peer: 'open', host: '127.0.0.1', port },
        { blob: BLOB, chunkSize: CHUNK, index: 0, length: CHUNK },
      )
      .catch((e: unknown) => e)
    await c.close()
    expect(err).toBeInstanceOf(DataPlaneUnreachableError)
    expect((err as Error).message).toMatch(/does not speak TLS/)
    await waitFor('a debug line', () => lines.some((l) => /DEBUG.*connection closed.*preamble/.test(l)))
  })
})
