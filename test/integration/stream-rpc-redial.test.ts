import { generateKeyPair } from '@libp2p/crypto/keys'
import { ConnectionClosedError, ConnectionClosingError } from '@libp2p/interface'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createNode, type ShoalLibp2p } from '../../src/bootstrap/libp2p-node.js'
import { decodeJson, encodeJson } from '../../src/shared/json-frames.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { exchange, type StreamNetwork, serve } from '../../src/shared/stream-rpc.js'
import { VERSION } from '../../src/shared/version.js'

/**
 * libp2p's dial hands back the first connection it lists for a peer, even one that
 * has closed or is closing; every stream on it then fails at once ("the connection
 * is closed": chaos finding 2, commands to the manager refused for 20 s). An
 * exchange retries once on a new connection. Here the stale connection is played
 * by the first dial; the retry goes through real libp2p nodes.
 */
const PROTOCOL = '/shoal-test/echo/1'
const answer = z.object({ echo: z.string() })
const limits = { timeoutMs: 5_000, maxBytes: 1024 }

async function node(): Promise<ShoalLibp2p> {
  const created = await createNode(
    {
      cluster: 'redial',
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      secret: null,
      mdns: false,
      mdnsIntervalMs: presetTimers('test').mdns.intervalMs,
      traffic: { sentBytes: 0, receivedBytes: 0 },
      version: VERSION,
    },
    silentLogger,
  )
  await created.start()
  return created
}

/** `real`'s network, whose first dials fail with `failure` unless they force a new connection. */
function failingFirst(real: ShoalLibp2p, failure: Error, failures = 1) {
  const calls: Array<{ force: boolean }> = []
  let left = failures
  const network: StreamNetwork = {
    dialProtocol: (async (peer, protocols, options) => {
      const force = (options as { force?: boolean } | undefined)?.force === true
      calls.push({ force })
      if (!force && left-- > 0) throw failure
      return real.dialProtocol(peer, protocols, options)
    }) as StreamNetwork['dialProtocol'],
    handle: real.handle.bind(real),
    unhandle: real.unhandle.bind(real),
  }
  return { network, calls }
}

const ask = (network: StreamNetwork, peer: ShoalLibp2p, text: string) =>
  exchange(network, peer.peerId, PROTOCOL, limits, async (ch) => {
    await ch.write(encodeJson({ echo: text }))
    return decodeJson(answer, await ch.read(), 'echo')
  })

describe('exchange over a connection libp2p still lists but that has closed', () => {
  let a: ShoalLibp2p
  let b: ShoalLibp2p

  beforeAll(async () => {
    ;[a, b] = await Promise.all([node(), node()])
    await serve(b, PROTOCOL, limits, silentLogger, async (ch) => {
      const request = decodeJson(answer, await ch.read(), 'echo')
      await ch.write(encodeJson({ echo: request.echo.toUpperCase() }))
    })
  })

  // Each case starts unconnected: the forced dial makes the only connection (a stale
  // one would not count as open, so closeDuplicate in libp2p-node.ts keeps the new one).
  beforeEach(async () => {
    await a.hangUp(b.peerId)
    a.peerStore.merge(b.peerId, { multiaddrs: b.getMultiaddrs() })
  })

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it.each([
    ['closed', new ConnectionClosedError('the connection is closed')],
    ['closing', new ConnectionClosingError('the connection is being closed')],
  ])('a %s connection: the exchange opens a new one and completes', async (_, failure) => {
    const { network, calls } = failingFirst(a, failure)
    expect(await ask(network, b, 'hello')).toEqual({ echo: 'HELLO' })
    expect(calls).toEqual([{ force: false }, { force: true }])
    expect(a.getConnections(b.peerId)).toHaveLength(1)
  })

  it('any other dial failure is not retried', async () => {
    const { network, calls } = failingFirst(a, new Error('connection refused'))
    await expect(ask(network, b, 'hello')).rejects.toThrow('connection refused')
    expect(calls).toEqual([{ force: false }])
  })

  it('one retry only: when the new connection fails too, the caller gets that failure', async () => {
    const failure = new ConnectionClosedError('the connection is closed')
    const { network, calls } = failingFirst(a, failure)
    // The forced dial goes to a peer that is gone: its failure is the caller's.
    const gone = await node()
    const goneId = gone.peerId
    await a.dial(gone.getMultiaddrs()[0]!)
    await gone.stop()
    await expect(
      exchange(network, goneId, PROTOCOL, { ...limits, timeoutMs: 2_000 }, async () => 'never'),
    ).rejects.toThrow()
    expect(calls).toEqual([{ force: false }, { force: true }])
  })
})
