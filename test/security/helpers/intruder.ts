import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'

/** A new swarm key, in the format `shoal secret new` writes. */
export function newSwarmKey(): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}

/**
 * A plain libp2p node built the way src/bootstrap/libp2p-node.ts builds an
 * agent's (TCP, noise, yamux, identify), but by the test: with no connection
 * protector (`psk: null`) or with a swarm key of its choice. It listens nowhere;
 * it only dials.
 */
export async function startIntruder(psk: Uint8Array | null): Promise<Libp2p> {
  return createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(psk == null ? {} : { connectionProtector: preSharedKey({ psk }) }),
    connectionMonitor: { enabled: false },
    services: { identify: identify() },
  })
}
