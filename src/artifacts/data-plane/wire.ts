import { z } from 'zod'
import { BadFrameError, decodeJson, FrameTooLargeError } from '../../shared/index.js'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../constants.js'
import { MAX_BITMAP_BYTES, MAX_HEADER_BYTES, PREAMBLE } from './constants.js'

/**
 * The data plane's wire format: bulk bytes of blobs between agents on a TCP port of
 * their own, beside libp2p (which keeps membership, gossip and control).
 *
 * 1. Dial. The client opens TCP to the host and port the holder announces. In a
 *    closed cluster it runs a TLS 1.3 handshake authenticated by the data-plane key
 *    (HMAC-SHA256 of the cluster secret, key.ts) as an external PSK, its peer id as
 *    the PSK identity, and no certificate; in an open cluster the same bytes go over
 *    plain TCP. Steps 1 and 2 share one timeout (connectTimeoutMs); failing them is
 *    ERR_DATA_UNREACHABLE, and the caller falls back to libp2p streams.
 * 2. Preamble. Each end writes `shoal-data/1\n` first (the server after the TLS
 *    handshake, so nothing is answered to a peer without the key). The client does not
 *    wait for the server's before it writes requests. A wrong preamble closes the
 *    connection.
 * 3. Frames. Every message is a header: a u16 big-endian length (1 to 4096) and that
 *    many bytes of UTF-8 JSON, an object with `t` (its type) and `id`. A `chunk` or
 *    `map` header is followed by a raw body of exactly its `length` bytes.
 * 4. Requests (client to server; no body). `id` is the client's, a positive safe
 *    integer never reused on the connection; `blob` is 64 lowercase hex characters;
 *    `chunkSize` is within MIN_CHUNK_SIZE..MAX_CHUNK_SIZE.
 *    - `get {id, blob, chunkSize, index}`: one chunk.
 *    - `watch {id, blob, chunkSize}`: the holder's map of a blob, then HAVE notices.
 *    - `unwatch {id}`: ends the watch `id` (no answer; pushes already sent may follow).
 *    - `cancel {id}`: a `get` not yet being served is dropped and answered `none`; one
 *      being served completes.
 * 5. Answers (server to client), each with the id of its request:
 *    - to `get`, exactly one of: `chunk {id, length}` and `length` bytes of the chunk;
 *      `busy {id}` (no upload slot free: ask another holder or later); `none {id}`
 *      (not held, index past the end, or unreadable).
 *    - to `watch`: `map {id, size, whole, length}` and `length` bytes of bitmap (bit
 *      i & 7 of byte i >> 3 is chunk i; no bytes when `whole`), or `none {id}` when
 *      nothing of the blob is held in that chunk size. Then, until `unwatch` or the
 *      close, pushes: `have {id, index}` when a chunk becomes servable and
 *      `whole {id}` when the blob is complete.
 * 6. Order. A connection's gets are served in the order sent; `busy` and `none` may
 *    overtake chunks, and pushes go between frames, never inside a body: the reader
 *    matches answers by id.
 * 7. Refusals. A header of length 0 or over 4096 bytes, not JSON, of an unknown type,
 *    or with a field out of range closes the connection with a debug log; the other
 *    end's pending requests fail (ERR_DATA_CONNECTION_LOST).
 * 8. Close. The client closes a connection idle for 30 s (no request pending, no
 *    watch); the server closes one silent for 120 s without a watch.
 */

const id = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)
const blob = z.string().regex(/^[0-9a-f]{64}$/, 'not a sha256 in hex')
const chunkSize = z.number().int().min(MIN_CHUNK_SIZE).max(MAX_CHUNK_SIZE)
/** A chunk index: 2^31 chunks of MIN_CHUNK_SIZE is 32 TiB, beyond any blob. */
const index = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1)

export const dataRequest = z.discriminatedUnion('t', [
  z.object({ t: z.literal('get'), id, blob, chunkSize, index }),
  z.object({ t: z.literal('watch'), id, blob, chunkSize }),
  z.object({ t: z.literal('unwatch'), id }),
  z.object({ t: z.literal('cancel'), id }),
])
export type DataRequest = z.infer<typeof dataRequest>

export const dataAnswer = z.discriminatedUnion('t', [
  z.object({ t: z.literal('chunk'), id, length: z.number().int().min(0).max(MAX_CHUNK_SIZE) }),
  z.object({ t: z.literal('busy'), id }),
  z.object({ t: z.literal('none'), id }),
  /** The chunk was just sent to another peer: fetch it from that peer (or another chunk from us). */
  z.object({ t: z.literal('elsewhere'), id }),
  z.object({
    t: z.literal('map'),
    id,
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    whole: z.boolean(),
    length: z.number().int().min(0).max(MAX_BITMAP_BYTES),
  }),
  z.object({ t: z.literal('have'), id, index }),
  z.object({ t: z.literal('whole'), id }),
])
export type DataAnswer = z.infer<typeof dataAnswer>

/** One header as it goes on the wire: length prefix and JSON. */
export function encodeHeader(header: DataRequest | DataAnswer): Buffer {
  const json = JSON.stringify(header)
  const length = Buffer.byteLength(json)
  // Our own headers are a few fields: over the limit is a bug here, not a peer's fault.
  if (length > MAX_HEADER_BYTES) throw new RangeError(`data-plane header of ${length} bytes`)
  const frame = Buffer.allocUnsafe(2 + length)
  frame.writeUInt16BE(length, 0)
  frame.write(json, 2)
  return frame
}

export function decodeRequest(bytes: Uint8Array): DataRequest {
  return decodeJson(dataRequest, bytes, 'data-plane request')
}

export function decodeAnswer(bytes: Uint8Array): DataAnswer {
  return decodeJson(dataAnswer, bytes, 'data-plane answer')
}

/** Where a FrameReader delivers what it reads. */
export interface FrameSink<H> {
  /** The other end's preamble arrived: it speaks this protocol. */
  preamble?(): void
  /** A header arrived; answers the length of the body that follows it (0: none). */
  header(header: H): number
  /** The next bytes of the body announced by the last header; `rest` more are still to come. */
  body(bytes: Buffer, rest: number): void
}

/**
 * Reads the preamble, then frames, from the pieces a socket hands over, whatever
 * their boundaries. Headers are gathered into a small buffer of their own; body bytes
 * are passed on as slices of the socket's buffers, never copied here, so a receiver
 * can copy them once into their destination and hash them on the way.
 * `feed` throws a FrameError on a bad preamble or header (the caller closes the
 * connection); after `stop()` it ignores everything.
 */
export class FrameReader<H> {
  private state: 'preamble' | 'length' | 'header' | 'body' = 'preamble'
  private readonly gathered = Buffer.allocUnsafe(MAX_HEADER_BYTES)
  private filled = 0
  private need = PREAMBLE.length
  private bodyLeft = 0
  private stopped = false

  constructor(
    private readonly parse: (bytes: Uint8Array) => H,
    private readonly sink: FrameSink<H>,
  ) {}

  stop(): void {
    this.stopped = true
  }

  feed(data: Buffer): void {
    let at = 0
    while (at < data.length && !this.stopped) {
      if (this.state === 'body') {
        const take = Math.min(this.bodyLeft, data.length - at)
        this.bodyLeft -= take
        if (this.bodyLeft === 0) this.expect('length', 2)
        this.sink.body(data.subarray(at, at + take), this.bodyLeft)
        at += take
        continue
      }
      const take = Math.min(this.need - this.filled, data.length - at)
      data.copy(this.gathered, this.filled, at, at + take)
      this.filled += take
      at += take
      if (this.filled === this.need) this.complete()
    }
  }

  private complete(): void {
    const bytes = this.gathered.subarray(0, this.need)
    switch (this.state) {
      case 'preamble':
        if (!bytes.equals(PREAMBLE)) throw new BadFrameError('not a Shoal data-plane peer (wrong preamble)')
        this.expect('length', 2)
        this.sink.preamble?.()
        return
      case 'length': {
        const length = bytes.readUInt16BE(0)
        if (length === 0) throw new BadFrameError('data-plane header of length 0')
        if (length > MAX_HEADER_BYTES)
          throw new FrameTooLargeError(`data-plane header of ${length} bytes exceeds ${MAX_HEADER_BYTES}`)
        this.expect('header', length)
        return
      }
      case 'header': {
        const header = this.parse(bytes)
        this.expect('length', 2)
        const body = this.sink.header(header)
        if (body > 0) {
          this.state = 'body'
          this.bodyLeft = body
        }
        return
      }
      case 'body':
        return
    }
  }

  private expect(state: 'length' | 'header', bytes: number): void {
    this.state = state
    this.need = bytes
    this.filled = 0
  }
}
