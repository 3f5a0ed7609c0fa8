import type { PubSub } from '@libp2p/interface'
import type { Libp2p } from 'libp2p'

/** What membership needs of the libp2p node: streams, peer store, events and gossipsub. */
export type MembershipNetwork = Pick<
  Libp2p<{ pubsub: PubSub }>,
  | 'peerId'
  | 'getMultiaddrs'
  | 'handle'
  | 'unhandle'
  | 'dial'
  | 'dialProtocol'
  | 'hangUp'
  | 'getConnections'
  | 'peerStore'
  | 'addEventListener'
  | 'removeEventListener'
  | 'services'
>
