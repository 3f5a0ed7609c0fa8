import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  createMembership,
  type Membership,
  type MembershipNetwork,
  MetadataContract,
} from '../../src/membership/index.js'
import type { Claim } from '../../src/membership/member.js'
import { encode, WIRE_VERSION } from '../../src/membership/messages.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'

/**
 * Regression (docs/reliability-splits.md): after a network split, a member held dead
 * kept its old TCP connection, and a reconnect attempt was handed that connection
 * back by the dialler, so the heal waited for TCP's backed-off retransmissions
 * (7-9 s after a 20 s cut, 28 s after a 32 s one). A reconnect now drops the
 * connections opened before the member was declared dead, and keeps newer ones.
 */

interface FakeConnection {
  timeline: { open: number }
  abort: ReturnType<typeof vi.fn>
}

async function newPeerId() {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

describe('reconnecting to a member declared dead', () => {
  let membership: Membership | undefined
  afterEach(async () => {
    await membership?.stop()
    membership = undefined
  })

  it('drops the connections opened before the dead verdict and dials afresh; keeps newer ones', async () => {
    const self = await newPeerId()
    const other = await newPeerId()
    const cluster = 'reconnect'
    let onGossip: ((evt: CustomEvent) => void) | undefined
    let connections: FakeConnection[] = []
    const calls: string[] = []
    const network = {
      peerId: self,
      getMultiaddrs: () => [multiaddr(`/ip4/10.0.0.1/tcp/7946/p2p/${self}`)],
      handle: vi.fn(async () => {}),
      unhandle: vi.fn(async () => {}),
      dial: vi.fn(async () => {
        calls.push('dial')
        return {}
      }),
      // Every exchange fails at once (nobody answers): only the reconnect path matters here.
      dialProtocol: vi.fn(async () => {
        throw new Error('unreachable')
      }),
      hangUp: vi.fn(async () => {}),
      getConnections: vi.fn(() => connections),
      peerStore: { merge: vi.fn(async () => ({})) },
      addEventListener: vi.fn(),
      removeEventListener: vi.fn(),
      services: {
        pubsub: {
          subscribe: vi.fn(),
          unsubscribe: vi.fn(),
          publish: vi.fn(async () => ({ recipients: [] })),
          addEventListener: vi.fn((_name: string, listener: (evt: CustomEvent) => void) => {
            onGossip = listener
          }),
          removeEventListener: vi.fn(),
        },
      },
    } as unknown as MembershipNetwork
    const gossip = (claims: Claim[]) =>
      onGossip?.(
        new CustomEvent('message', {
          detail: { topic: `/shoal/${cluster}/membership/1`, data: encode({ v: WIRE_VERSION, claims }) },
        }),
      )

    membership = createMembership(
      {
        cluster,
        // Only the reconnect loop runs during the test.
        timers: {
          ...presetTimers('test').membership,
          probeInterval: 60_000,
          syncInterval: 60_000,
          reconnectInterval: 20,
        },
        contract: MetadataContract.of(),
      },
      { network, store: { load: async () => null, save: async () => {} }, logger: silentLogger },
    )
    await membership.start()
    const id = other.toString()
    gossip([{ kind: 'alive', id, incarnation: 1, addrs: [`/ip4/10.0.0.2/tcp/7946/p2p/${id}`], meta: {} }])
    expect(membership.get(id)?.state).toBe('alive')

    // The connection a split left behind: opened while the member was alive.
    const stale: FakeConnection = {
      timeline: { open: Date.now() - 5_000 },
      abort: vi.fn(() => {
        calls.push('abort stale')
        connections = connections.filter((c) => c !== stale)
      }),
    }
    connections = [stale]
    gossip([{ kind: 'dead', id, incarnation: 1, from: self.toString() }])
    expect(membership.get(id)?.state).toBe('dead')

    await vi.waitFor(() => expect(calls).toContain('dial'), { timeout: 10_000 })
    expect(stale.abort).toHaveBeenCalledTimes(1)
    expect(calls.indexOf('abort stale')).toBeLessThan(calls.indexOf('dial'))

    // A connection opened after the verdict (the member dialled in after a heal) is kept.
    const fresh: FakeConnection = {
      timeline: { open: Date.now() + 1 },
      abort: vi.fn(() => calls.push('abort fresh')),
    }
    connections = [fresh]
    const dials = calls.filter((c) => c === 'dial').length
    await vi.waitFor(() => expect(calls.filter((c) => c === 'dial').length).toBeGreaterThan(dials + 1), {
      timeout: 10_000,
    })
    expect(fresh.abort).not.toHaveBeenCalled()
  })
})
