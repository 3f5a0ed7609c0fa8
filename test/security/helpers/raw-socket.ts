import { connect } from 'node:net'

export interface RawExchange {
  /** Every byte the agent sent back. */
  received: Buffer
  /** The agent closed (or reset) the connection before the deadline. */
  closed: boolean
  ms: number
}

/**
 * Opens a plain TCP connection to `port` on loopback, writes `payload`, and
 * records what comes back until the other side closes, `enough` says so, or
 * `timeoutMs` passes (then the socket is destroyed and `closed` is false).
 */
export function rawExchange(
  port: number,
  payload: Uint8Array,
  { timeoutMs = 15_000, enough }: { timeoutMs?: number; enough?: (received: Buffer) => boolean } = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = Date.now()
    const chunks: Buffer[] = []
    let finished = false
    const finish = (closed: boolean) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ received: Buffer.concat(chunks), closed, ms: Date.now() - started })
    }
    const socket = connect(port, '127.0.0.1', () => socket.write(payload))
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', (data) => {
      chunks.push(data)
      if (enough?.(Buffer.concat(chunks))) finish(false)
    })
    socket.on('error', () => finish(true))
    socket.on('close', () => finish(true))
  })
}

/** A multistream-select message as libp2p writes it: unsigned-varint length, then the line. */
export function multistreamMessage(line: string): Buffer {
  const body = Buffer.from(`${line}\n`)
  if (body.length > 127) throw new Error('only one-byte lengths here')
  return Buffer.concat([Buffer.from([body.length]), body])
}

/** The TCP port of a `/ip4/…/tcp/PORT/…` multiaddr. */
export function tcpPort(addr: string): number {
  const match = /\/tcp\/(\d+)/.exec(addr)
  if (match == null) throw new Error(`no TCP port in ${addr}`)
  return Number(match[1])
}
