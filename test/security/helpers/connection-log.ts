import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * A connection gater that denies nothing and writes down what it is asked:
 * raw inbound connections (before any handshake), peers whose connection got
 * through the secret and noise (encrypted), and addresses this node dialled.
 * Given to an agent through its hooks, it shows how far an intruder got.
 */
export class ConnectionLog {
  rawInbound = 0
  readonly encrypted = new Set<string>()
  readonly dials: string[] = []

  gater(): ConnectionGater {
    return {
      denyInboundConnection: () => {
        this.rawInbound++
        return false
      },
      denyInboundEncryptedConnection: (peer: PeerId) => {
        this.encrypted.add(peer.toString())
        return false
      },
      denyOutboundEncryptedConnection: (peer: PeerId) => {
        this.encrypted.add(peer.toString())
        return false
      },
      denyDialMultiaddr: (addr: Multiaddr) => {
        this.dials.push(addr.toString())
        return false
      },
    }
  }

  /** Dials so far to an address on TCP `port`. */
  dialsTo(port: number): number {
    return this.dials.filter((addr) => addr.includes(`/tcp/${port}`)).length
  }
}
