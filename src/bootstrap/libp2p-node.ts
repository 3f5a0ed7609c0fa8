import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, PeerInfo } from '@libp2p/interface'
import { type PrivateKey, type PubSub, StrictNoSign } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import type { Logger } from '../shared/index.js'
import { PortInUseError } from '../shared/index.js'
import { closeDuplicate } from './duplicate-connections.js'
import { ListenAddressError } from './errors.js'
import { type WireTraffic, wireMeter } from './wire-meter.js'

export type ShoalLibp2p = Libp2p<{ pubsub: PubSub; identify: unknown; ping: unknown }>

export interface NodeInit {
  cluster: string
  privateKey: PrivateKey
  listen: string[]
  bootstrap: string[]
  /** Swarm key bytes; when set, only nodes holding the same key can connect at all. */
  secret: Uint8Array | null
  mdns: boolean
  /**
   * ms between two mDNS queries (when `mdns` is on), from the agent's preset
   * (src/shared/presets.ts); a LAN join should not wait long for the first answer.
   * @default 2_000 (lan; cloud 10_000, test 250)
   */
  mdnsIntervalMs: number
  traffic: WireTraffic
  version: string
  /** Which peers may connect (tests cut the network in two with it; none in production). */
  connectionGater?: ConnectionGater
}

/**
 * Assembles the libp2p 2.x node. Everything libp2p-specific (module choices,
 * option names) lives here so that a move to libp2p 3 stays one contained change.
 */
export async function createNode(init: NodeInit, log: Logger): Promise<ShoalLibp2p> {
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  // @libp2p/bootstrap needs /p2p/ID in each address; the rest are dialled by membership's join loop.
  const withPeerId = init.bootstrap.filter((addr) => multiaddr(addr).getPeerId() != null)
  if (withPeerId.length > 0) peerDiscovery.push(bootstrap({ list: withPeerId, timeout: 0 }))
  // libp2p 2.x dials no discovered peer by itself (notes/stack.md), and it reports
  // every new peer-store entry as `peer:discovery`, members learned by gossip
  // included. Only what mDNS finds is dialled here; membership's probes connect to
  // the other members one at a time, so a mass start is not a handshake storm.
  let dialFound: (peer: PeerInfo) => void = () => {}
  if (init.mdns) {
    const lan = mdns({
      interval: init.mdnsIntervalMs,
      serviceTag: `_shoal-${init.cluster}._udp.local`,
    })
    peerDiscovery.push((components) => {
      const service = lan(components)
      service.addEventListener('peer', (evt) => dialFound(evt.detail))
      return service
    })
  }
  const node = await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(init.secret == null ? {} : { connectionProtector: preSharedKey({ psk: init.secret }) }),
    ...(init.connectionGater == null ? {} : { connectionGater: init.connectionGater }),
    peerDiscovery,
    metrics: wireMeter(init.traffic),
    // Membership's SWIM probes already check every member; libp2p's monitor would
    // also ping every open connection every 10 s, all at once, which grew idle
    // traffic with N (docs/benchmarks.md: flat bytes/node/s without it). yamux's
    // keep-alive still closes dead connections.
    connectionMonitor: { enabled: false },
    connectionManager: {
      maxConnections: 400,
      // libp2p accepts 5 new connections per second per remote host by default; many
      // agents behind one address (the local provider, a NAT, a mass start) would
      // then join five a second.
      inboundConnectionThreshold: 200,
      maxIncomingPendingConnections: 100,
    },
    services: {
      identify: identify({ agentVersion: `shoal/${init.version}` }),
      ping: ping(),
      pubsub: gossipsub({
        // A node alone at boot must be able to announce itself without throwing.
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // Peer exchange would hand our peers to strangers; membership does discovery.
        doPX: false,
        // No per-message signatures: connections are already authenticated (noise) and
        // closed to outsiders (pnet), and signing plus verifying every claim on every
        // node was the largest CPU cost of a busy cluster. Message ids are content
        // hashes, so the same claim published by several members is delivered once.
        globalSignaturePolicy: StrictNoSign,
        // Gossipsub's default score punishes peers that share an IP address (a Sybil
        // defence) until it ignores everything they send: past ~14 agents on one host
        // (the local provider, a NAT) refutations stopped spreading. Membership is
        // closed by the secret; co-located agents are normal here.
        scoreParams: { IPColocationFactorWeight: 0 },
      }) as never,
    },
    start: false,
  })
  // libp2p's start error lists every failed address with a stack trace; callers get one line.
  const start = node.start.bind(node)
  node.start = async () => {
    try {
      await start()
    } catch (err) {
      throw listenFailure(err) ?? err
    }
  }
  node.addEventListener('connection:open', (evt) => closeDuplicate(node, evt.detail, log))
  dialFound = ({ id, multiaddrs }) => {
    if (id.equals(node.peerId) || node.getConnections(id).length > 0) return
    node.dial(multiaddrs.length > 0 ? multiaddrs : id).catch((err: unknown) => {
      log.debug('could not dial a peer found by mDNS', { peer: id.toString(), error: String(err) })
    })
  }
  return node as unknown as ShoalLibp2p
}

/**
 * The first address libp2p could not listen on, as an error an operator can act
 * on: ERR_PORT_IN_USE when another process holds the port, ERR_LISTEN_ADDRESS
 * otherwise. Null when `err` is not libp2p's listen failure. libp2p 2.x keeps the
 * causes only in the message: "  ADDR: Error: listen EADDRINUSE: …" per address.
 */
export function listenFailure(err: unknown): ListenAddressError | PortInUseError | null {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return null
  const failed = /^ {2}(\/\S+): (?:\w*Error: )?(.*)$/m.exec(err.message)
  if (failed == null) {
    return new ListenAddressError(
      'cannot listen on any libp2p listen address; give a TCP address of this machine such as /ip4/0.0.0.0/tcp/7946',
      { cause: err },
    )
  }
  const [, addr, detail] = failed
  const at = `cannot listen on ${addr}`
  if (/\bEADDRINUSE\b/.test(detail!))
    return new PortInUseError(
      `${at}: the port is in use by another process (another agent?); stop it or choose another port`,
      { cause: err },
    )
  const problem = /\bEADDRNOTAVAIL\b/.test(detail!)
    ? "that IP address is not one of this machine's; use one of its addresses, or 0.0.0.0 for all"
    : /\bEACCES\b/.test(detail!)
      ? 'permission denied (ports below 1024 need privileges); choose a port from 1024 up'
      : detail!.trim()
  return new ListenAddressError(`${at}: ${problem}`, { cause: err })
}
