import type { Connection, DialOptions, DialProtocolOptions, PeerId, Stream } from '@libp2p/interface'
import { type LengthPrefixedStream, lpStream } from 'it-length-prefixed-stream'
import type { Libp2p } from 'libp2p'
import { StreamClosedError } from './errors.js'
import { FrameTooLargeError } from './json-frames.js'
import type { Logger } from './logger.js'

/** What request/response exchanges need of the libp2p node. */
export type StreamNetwork = Pick<Libp2p, 'dialProtocol' | 'handle' | 'unhandle'>

export interface ExchangeLimits {
  /** One deadline for every step of the exchange (ms). */
  timeoutMs: number
  /** Largest frame accepted (bytes). */
  maxBytes: number
  /** Ends the exchange early (the caller is stopping). */
  signal?: AbortSignal
}

/** A length-prefixed message channel over one libp2p stream. */
export interface Channel {
  read(): Promise<Uint8Array>
  write(bytes: Uint8Array): Promise<void>
}

function channel(stream: Stream, signal: AbortSignal, maxBytes: number): Channel {
  const lp: LengthPrefixedStream<Stream> = lpStream(stream, {
    maxDataLength: maxBytes,
    lengthDecoder: boundedVarint(maxBytes),
  })
  return {
    read: async () => {
      try {
        return (await lp.read({ signal })).subarray()
      } catch (err) {
        throw framingError(err, maxBytes)
      }
    },
    write: (bytes) => lp.write(bytes, { signal }),
  }
}

/**
 * Decodes the unsigned varint length prefix, refusing it as soon as it runs longer
 * than any length up to `maxBytes` needs: the library's own decoder reads a prefix
 * of 0xff bytes one at a time until the stream ends or the deadline passes.
 */
export function boundedVarint(maxBytes: number) {
  let prefixBytes = 1
  for (let n = maxBytes; n >= 0x80; n = Math.floor(n / 0x80)) prefixBytes++
  return (data: { byteLength: number; get(index: number): number }): number => {
    let value = 0
    for (let i = 0; i < data.byteLength && i < prefixBytes; i++) {
      const byte = data.get(i)
      value += (byte & 0x7f) * 2 ** (7 * i)
      if (byte < 0x80) return value
    }
    if (data.byteLength >= prefixBytes)
      throw new FrameTooLargeError(`the peer's frame is over ${maxBytes} bytes`)
    // Incomplete: it-length-prefixed-stream reads another byte on a RangeError.
    throw new RangeError('length prefix incomplete')
  }
}

/** it-length-prefixed-stream's refusals of a peer's framing, by error name. */
const BAD_LENGTH = new Set([
  'InvalidDataLengthError',
  'InvalidDataLengthLengthError',
  'InvalidMessageLengthError',
])

/**
 * A peer's bad framing as a coded error: a length prefix over the limit is
 * FrameTooLargeError, a stream that ends inside a frame StreamClosedError. Aborts, timeouts and resets pass through unchanged.
 */
function framingError(err: unknown, maxBytes: number): unknown {
  const name = err instanceof Error ? err.name : ''
  if (BAD_LENGTH.has(name))
    return new FrameTooLargeError(`the peer's frame is over ${maxBytes} bytes`, { cause: err })
  if (name === 'UnexpectedEOFError') {
    const message = 'the peer closed the stream before a whole frame arrived'
    return new StreamClosedError(message, { cause: err })
  }
  return err
}

/**
 * Runs one exchange with `peer` on `protocol`:
 * 1. dial (reusing a connection when there is one) and negotiate the protocol,
 * 2. let `talk` write and read length-prefixed messages,
 * 3. close the stream.
 * All steps share one deadline (`limits.timeoutMs`); on any failure the stream is aborted
 * and the error is thrown to the caller.
 */
export async function exchange<T>(
  network: StreamNetwork,
  peer: PeerId,
  protocol: string,
  limits: ExchangeLimits,
  talk: (channel: Channel) => Promise<T>,
): Promise<T> {
  const deadline = AbortSignal.timeout(Math.max(1, Math.round(limits.timeoutMs)))
  const signal = limits.signal == null ? deadline : AbortSignal.any([deadline, limits.signal])
  const stream = await openStream(network, peer, protocol, signal)
  try {
    const result = await talk(channel(stream, signal, limits.maxBytes))
    await stream.close({ signal })
    return result
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/**
 * Opens a stream to `peer`. libp2p can hand back a connection it still lists but
 * that has closed (or is closing), and every stream on it fails at once: commands
 * to a manager were refused for 20 s that way (docs/reliability-chaos.md, finding 2).
 * Such a failure comes before anything is sent, so one retry on a new connection
 * is safe whatever the protocol.
 */
export async function openStream(
  network: StreamNetwork,
  peer: PeerId,
  protocol: string,
  signal: AbortSignal,
) {
  try {
    return await network.dialProtocol(peer, protocol, { signal })
  } catch (err) {
    if (!isClosedConnection(err) || signal.aborted) throw err
    // libp2p passes these options on to dial(), which honours `force`; the type leaves it out.
    const fresh: DialProtocolOptions & DialOptions = { signal, force: true }
    return await network.dialProtocol(peer, protocol, fresh)
  }
}

function isClosedConnection(err: unknown): boolean {
  return (
    err instanceof Error && (err.name === 'ConnectionClosedError' || err.name === 'ConnectionClosingError')
  )
}

/**
 * Serves `protocol`: every inbound stream gets a channel and `limits.timeoutMs` to finish.
 * A failing handler costs a debug line and the stream, never the agent.
 */
export async function serve(
  network: StreamNetwork,
  protocol: string,
  limits: ExchangeLimits,
  log: Logger,
  handler: (channel: Channel, connection: Connection) => Promise<void>,
): Promise<void> {
  await network.handle(
    protocol,
    ({ stream, connection }) => {
      const signal = AbortSignal.timeout(limits.timeoutMs)
      handler(channel(stream, signal, limits.maxBytes), connection)
        .then(() => stream.close({ signal }))
        .catch((err: unknown) => {
          log.debug('inbound exchange failed', {
            protocol,
            peer: connection.remotePeer.toString(),
            error: String(err),
          })
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        })
    },
    { maxInboundStreams: 256, maxOutboundStreams: 256 },
  )
}
