import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  announcement,
  manifestRequest,
  transferAnswer,
  transferRequest,
} from '../../src/artifacts/protocol.js'
import { decodeJson, encodeJson } from '../../src/shared/json-frames.js'
import { silentLogger } from '../../src/shared/logger.js'
import { type Channel, exchange, type StreamNetwork, serve } from '../../src/shared/stream-rpc.js'
import {
  assertCoded,
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  type Json,
  jsonText,
  mutatedBytes,
  nested,
  outcome,
  outcomeAsync,
  randomBytes,
  thrown,
  utf8,
} from './harness.js'

/**
 * Direct streams carry length-prefixed JSON frames (src/shared/stream-rpc.ts and
 * json-frames.ts); the artifacts protocol's requests, answers and announcements
 * are decoded with its schemas (src/artifacts/protocol.ts). Whatever a peer sends:
 * no crash, a refusal is a coded error (a bad frame, a frame over the limit, a
 * stream cut mid-frame), and what is accepted matches the schema and re-encodes.
 */
const target = new FuzzTarget('frames')
const FRAME_CODES = ['ERR_BAD_FRAME', 'ERR_FRAME_TOO_LARGE', 'ERR_STREAM_CLOSED']
const MAX_BYTES = 2048
const PEER = peerIdFromString('12D3KooWC2G8Mq6Pj1u6CmunpwQVugXSDZEFCi38e5AJESCxKJAx')

const blob = 'ab'.repeat(32)
const messages: Record<'request' | 'answer' | 'manifest' | 'announcement', Json[]> = {
  request: [
    { t: 'have', blob, chunkSize: 1_048_576 },
    { t: 'get', blob, chunkSize: 1_048_576, index: 3 },
  ],
  answer: [
    { t: 'have', size: 5_000_000, bitmap: 'AQID' },
    { t: 'have', size: 5_000_000, bitmap: null },
    { t: 'chunk', index: 3, length: 1_048_576 },
    { t: 'none' },
  ],
  manifest: [{ id: 'educa@1.0' }],
  announcement: [{ v: 1, id: 'educa@1.0', digest: blob, from: PEER.toString() }],
}
const schemas = {
  request: transferRequest,
  answer: transferAnswer,
  manifest: manifestRequest,
  announcement,
} as const
type Kind = keyof typeof schemas

/** Bytes of one message of `kind`: a mutated valid one, or random. */
const payload = (kind: Kind) => fc.oneof(...messages[kind].map(mutatedBytes), randomBytes)

function varint(n: number): Uint8Array {
  const out: number[] = []
  let rest = n
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  out.push(rest)
  return Uint8Array.from(out)
}

const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]))

/**
 * What a peer writes on a stream: one proper frame, a frame whose length lies (too
 * long, over the limit, a runaway varint), raw bytes, or nothing; cut into chunks.
 */
const wire = (kind: Kind): fc.Arbitrary<Uint8Array[]> =>
  fc
    .oneof(
      { weight: 4, arbitrary: payload(kind).map((p) => concat([varint(p.length), p])) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(
            payload(kind),
            fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(2 ** 31, 2 ** 53 - 1)),
          )
          .map(([p, length]) => concat([varint(length), p])),
      },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ minLength: 1, maxLength: 16 })
          .map((b) => concat([b.fill(0xff, 0, Math.min(b.length, 12)), b])),
      },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    )
    .chain((bytes) =>
      fc.array(fc.nat(), { maxLength: 4 }).map((cuts) => {
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
        const chunks: Uint8Array[] = []
        let from = 0
        for (const at of [...points, bytes.length]) {
          if (at > from) chunks.push(bytes.subarray(from, at))
          from = at
        }
        return chunks
      }),
    )

/** A stream that delivers `incoming` and records what happened to it. */
function fakeStream(incoming: Uint8Array[]) {
  const events: string[] = []
  let settle!: () => void
  const settled = new Promise<void>((resolve) => {
    settle = resolve
  })
  const stream = {
    source: (async function* () {
      for (const chunk of incoming) yield chunk
    })(),
    sink: async (source: AsyncIterable<unknown>) => {
      for await (const _ of source) events.push('write')
    },
    close: async () => {
      events.push('close')
      settle()
    },
    abort: (err: Error) => {
      events.push('abort')
      abortedWith = err
      settle()
    },
  }
  let abortedWith: Error | undefined
  return { stream: stream as unknown as Stream, events, settled, abortError: () => abortedWith }
}

/** A network whose every dial gets `stream`, and which keeps the handler it is given. */
function fakeNetwork(stream?: Stream) {
  let handler: ((data: { stream: Stream; connection: unknown }) => void) | undefined
  const network = {
    dialProtocol: async () => stream!,
    handle: async (_protocol: string, h: typeof handler) => {
      handler = h
    },
    unhandle: async () => {},
  }
  return { network: network as unknown as StreamNetwork, handler: () => handler! }
}

const limits = { timeoutMs: 5_000, maxBytes: MAX_BYTES }

describe('frames fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('decodeJson with the artifacts schemas: mutated and random frames', async () => {
    const kinds = Object.keys(schemas) as Kind[]
    await target.check(
      fc.property(
        fc.constantFrom(...kinds).chain((kind) => fc.tuple(fc.constant(kind), payload(kind))),
        ([kind, bytes]) => {
          const schema = schemas[kind] as (typeof schemas)['request']
          const result = outcome(() => decodeJson(schema, bytes, kind), ['ERR_BAD_FRAME'])
          if (result == null) return
          expect(schema.safeParse(result.value).success).toBe(true)
          // What is accepted can be written back out (forwarded, logged, stored).
          expect(decodeJson(schema, encodeJson(result.value), kind)).toEqual(result.value)
        },
      ),
    )
  })

  it('exchange: whatever a peer answers, the caller gets a valid answer or a coded error', async () => {
    await target.check(
      fc.asyncProperty(wire('answer'), async (incoming) => {
        const { stream, events } = fakeStream(incoming)
        const { network } = fakeNetwork(stream)
        const result = await outcomeAsync(
          () =>
            exchange(network, PEER, '/fuzz/1', limits, async (ch: Channel) => {
              await ch.write(encodeJson(messages.request[1]))
              return decodeJson(transferAnswer, await ch.read(), 'answer')
            }),
          FRAME_CODES,
        )
        if (result != null) {
          expect(transferAnswer.safeParse(result.value).success).toBe(true)
          expect(events).toContain('close')
        } else expect(events).toContain('abort')
      }),
    )
  })

  it('serve: whatever a peer asks, the handler answers or the stream is aborted with a coded error', async () => {
    await target.check(
      fc.asyncProperty(wire('request'), async (incoming) => {
        const { network, handler } = fakeNetwork()
        let answered = false
        await serve(network, '/fuzz/1', limits, silentLogger, async (ch) => {
          const request = decodeJson(transferRequest, await ch.read(), 'transfer request')
          await ch.write(
            encodeJson(request.t === 'get' ? { t: 'none' } : { t: 'have', size: 0, bitmap: null }),
          )
          answered = true
        })
        const { stream, events, settled, abortError } = fakeStream(incoming)
        handler()({ stream, connection: { remotePeer: PEER } })
        await settled
        if (answered) expect(events).toEqual(['write', 'close'])
        else {
          expect(events).toEqual(['abort'])
          assertCoded(abortError(), FRAME_CODES)
        }
      }),
    )
  })

  describe('regressions (counterexamples the fuzzer found)', () => {
    const exchangeWith = (incoming: Uint8Array[]) =>
      exchange(fakeNetwork(fakeStream(incoming).stream).network, PEER, '/fuzz/1', limits, async (ch) =>
        decodeJson(transferAnswer, await ch.read(), 'answer'),
      )

    it('a length prefix over the limit is ERR_FRAME_TOO_LARGE (was InvalidDataLengthError, uncoded)', async () => {
      assertCoded(await exchangeWith([varint(MAX_BYTES + 1)]).catch((e: unknown) => e), [
        'ERR_FRAME_TOO_LARGE',
      ])
    })

    it('a runaway varint is ERR_FRAME_TOO_LARGE (was InvalidDataLengthLengthError, uncoded)', async () => {
      assertCoded(await exchangeWith([new Uint8Array(12).fill(0xff)]).catch((e: unknown) => e), [
        'ERR_FRAME_TOO_LARGE',
      ])
    })

    it('a stream that ends mid-frame is ERR_STREAM_CLOSED (was UnexpectedEOFError, uncoded)', async () => {
      assertCoded(await exchangeWith([varint(10), utf8('{"t"')]).catch((e: unknown) => e), [
        'ERR_STREAM_CLOSED',
      ])
      assertCoded(await exchangeWith([]).catch((e: unknown) => e), ['ERR_STREAM_CLOSED'])
    })

    it('a frame that is not the expected JSON is a ShoalError (FrameError was a plain Error)', () => {
      assertCoded(
        thrown(() => decodeJson(transferAnswer, utf8('{"t":"chunk"'), 'answer')),
        ['ERR_BAD_FRAME'],
      )
    })

    it('a frame nested deeper than JSON.stringify can write is refused (was accepted by z.unknown fields)', () => {
      const bytes = utf8(jsonText({ signed: nested(5000) }))
      assertCoded(
        thrown(() => decodeJson(announcement.passthrough(), bytes, 'x')),
        ['ERR_BAD_FRAME'],
      )
    })
  })
})
