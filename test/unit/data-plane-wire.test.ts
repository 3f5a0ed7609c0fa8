import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../../src/artifacts/constants.js'
import { MAX_BITMAP_BYTES, MAX_HEADER_BYTES, PREAMBLE } from '../../src/artifacts/data-plane/constants.js'
import { dataPlaneKey } from '../../src/artifacts/data-plane/index.js'
import {
  type DataAnswer,
  type DataRequest,
  decodeAnswer,
  decodeRequest,
  encodeHeader,
  FrameReader,
} from '../../src/artifacts/data-plane/wire.js'

const BLOB = 'ab'.repeat(32)

/** A reader of requests that records what it read. */
function requestReader() {
  const headers: DataRequest[] = []
  const reader = new FrameReader(decodeRequest, {
    header: (h) => {
      headers.push(h)
      return 0
    },
    body: () => {},
  })
  return { reader, headers }
}

/** A reader of answers whose chunk and map headers announce bodies; records headers and body bytes. */
function answerReader() {
  const events: Array<DataAnswer | { body: string; rest: number }> = []
  let ready = false
  const reader = new FrameReader(decodeAnswer, {
    preamble: () => {
      ready = true
    },
    header: (h) => {
      events.push(h)
      return h.t === 'chunk' || h.t === 'map' ? h.length : 0
    },
    body: (bytes, rest) => events.push({ body: bytes.toString(), rest }),
  })
  return { reader, events, ready: () => ready }
}

/** A raw header: length prefix and the given text, whatever it is. */
function rawHeader(text: string): Buffer {
  const json = Buffer.from(text)
  const prefix = Buffer.alloc(2)
  prefix.writeUInt16BE(json.length)
  return Buffer.concat([prefix, json])
}

/** Feeds a preamble and `frame`, answering the error code thrown (or null). */
function refusal(frame: Buffer): string | null {
  const { reader } = requestReader()
  try {
    reader.feed(Buffer.concat([PREAMBLE, frame]))
    return null
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

const get = (fields: Record<string, unknown>) =>
  rawHeader(JSON.stringify({ t: 'get', id: 1, blob: BLOB, chunkSize: 1024 * 1024, index: 0, ...fields }))

describe('data-plane key', () => {
  it('is HMAC-SHA256 of the cluster secret over the data-plane label of the cluster: same secret and cluster same key, else not', () => {
    const secret = Buffer.from('cluster secret')
    const key = dataPlaneKey(secret, 'prod')
    expect(key).toHaveLength(32)
    expect(key.equals(createHmac('sha256', secret).update('shoal/prod/data-plane/v1').digest())).toBe(true)
    expect(dataPlaneKey(Buffer.from('cluster secret'), 'prod').equals(key)).toBe(true)
    expect(dataPlaneKey(Buffer.from('another secret'), 'prod').equals(key)).toBe(false)
    expect(dataPlaneKey(secret, 'staging').equals(key)).toBe(false)
  })
})

describe('data-plane framing', () => {
  it('reads the preamble then headers and bodies, whatever the pieces the socket hands over', () => {
    const wire = Buffer.concat([
      PREAMBLE,
      encodeHeader({ t: 'chunk', id: 1, length: 5 }),
      Buffer.from('hello'),
      encodeHeader({ t: 'busy', id: 2 }),
      encodeHeader({ t: 'map', id: 3, size: 100_000, whole: false, length: 1 }),
      Buffer.from('x'),
      encodeHeader({ t: 'have', id: 3, index: 4 }),
    ])
    for (const piece of [1, 2, 3, 7, wire.length]) {
      const { reader, events, ready } = answerReader()
      for (let at = 0; at < wire.length; at += piece) reader.feed(wire.subarray(at, at + piece))
      expect(ready()).toBe(true)
      const bodies = events.filter((e) => 'body' in e) as Array<{ body: string; rest: number }>
      expect(bodies.map((b) => b.body).join('')).toBe('hellox')
      expect(bodies.at(-1)?.rest).toBe(0)
      expect(events.filter((e) => !('body' in e))).toEqual([
        { t: 'chunk', id: 1, length: 5 },
        { t: 'busy', id: 2 },
        { t: 'map', id: 3, size: 100_000, whole: false, length: 1 },
        { t: 'have', id: 3, index: 4 },
      ])
    }
  })

  it('hands body bytes over as they come, with what is still to come', () => {
    const { reader, events } = answerReader()
    reader.feed(Buffer.concat([PREAMBLE, encodeHeader({ t: 'chunk', id: 1, length: 6 }), Buffer.from('abc')]))
    reader.feed(Buffer.from('def'))
    expect(events.slice(1)).toEqual([
      { body: 'abc', rest: 3 },
      { body: 'def', rest: 0 },
    ])
  })

  it('reads every request type, and nothing after stop()', () => {
    const { reader, headers } = requestReader()
    const requests: DataRequest[] = [
      { t: 'get', id: 1, blob: BLOB, chunkSize: MIN_CHUNK_SIZE, index: 3 },
      { t: 'watch', id: 2, blob: BLOB, chunkSize: MAX_CHUNK_SIZE },
      { t: 'unwatch', id: 2 },
      { t: 'cancel', id: 1 },
    ]
    reader.feed(Buffer.concat([PREAMBLE, ...requests.map((r) => encodeHeader(r))]))
    expect(headers).toEqual(requests)
    reader.stop()
    reader.feed(encodeHeader({ t: 'cancel', id: 9 }))
    expect(headers).toHaveLength(4)
  })

  it('refuses a peer that does not start with the preamble (HTTP, a TLS ClientHello)', () => {
    for (const start of ['GET / HTTP/1.1\r\n', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00']) {
      const { reader } = requestReader()
      expect(() => reader.feed(Buffer.from(start, 'latin1'))).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_FRAME' }),
      )
    }
  })

  it('refuses a header of length 0 or over the limit before reading it', () => {
    expect(refusal(Buffer.from([0, 0]))).toBe('ERR_BAD_FRAME')
    const over = Buffer.alloc(2)
    over.writeUInt16BE(MAX_HEADER_BYTES + 1)
    expect(refusal(over)).toBe('ERR_FRAME_TOO_LARGE')
    expect(refusal(Buffer.from([0xff, 0xff]))).toBe('ERR_FRAME_TOO_LARGE')
  })

  it('refuses headers that are not JSON objects of a known type', () => {
    expect(refusal(rawHeader('not json'))).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader('[1,2]'))).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader('"get"'))).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader(JSON.stringify({ t: 'list', id: 1 })))).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader(JSON.stringify({ t: 'chunk', id: 1, length: 5 })))).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader(`{"t":"get","id":1,"x":${'['.repeat(1000)}${']'.repeat(1000)}}`))).toBe(
      'ERR_BAD_FRAME',
    )
  })

  it('refuses every field out of range: chunk size (1 among them), hash, index, id', () => {
    expect(refusal(get({}))).toBeNull()
    for (const chunkSize of [1, 0, -1, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, 1.5, '1048576', null])
      expect(refusal(get({ chunkSize })), `chunkSize ${chunkSize}`).toBe('ERR_BAD_FRAME')
    for (const blob of ['ab', BLOB.toUpperCase(), `${BLOB}00`, `../${BLOB.slice(3)}`, 42])
      expect(refusal(get({ blob })), `blob ${blob}`).toBe('ERR_BAD_FRAME')
    for (const index of [-1, 0.5, 2 ** 31, Number.MAX_SAFE_INTEGER, '0'])
      expect(refusal(get({ index })), `index ${index}`).toBe('ERR_BAD_FRAME')
    for (const id of [0, -3, 1.5, 2 ** 53, '1', null])
      expect(refusal(get({ id })), `id ${id}`).toBe('ERR_BAD_FRAME')
    expect(refusal(rawHeader(JSON.stringify({ t: 'watch', id: 1, blob: BLOB, chunkSize: 1 })))).toBe(
      'ERR_BAD_FRAME',
    )
  })

  it('refuses answers announcing a body over the limits', () => {
    const answer = (fields: Record<string, unknown>) => () =>
      answerReader().reader.feed(Buffer.concat([PREAMBLE, rawHeader(JSON.stringify(fields))]))
    expect(answer({ t: 'chunk', id: 1, length: MAX_CHUNK_SIZE + 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_FRAME' }),
    )
    expect(answer({ t: 'map', id: 1, size: 10, whole: false, length: MAX_BITMAP_BYTES + 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_FRAME' }),
    )
    expect(answer({ t: 'map', id: 1, size: -1, whole: true, length: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_FRAME' }),
    )
  })

  it('never writes a header over the limit', () => {
    expect(() =>
      encodeHeader({ t: 'get', id: 1, blob: 'a'.repeat(MAX_HEADER_BYTES), chunkSize: 1, index: 0 }),
    ).toThrow(RangeError)
  })
})
