import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Agent } from '../../src/bootstrap/index.js'

export type Side = 'a' | 'b'

/**
 * An in-process network split for agents of one test cluster. Every agent gets
 * `gater()` (its own connection gater); while a partition is set, peers on
 * different sides may neither dial nor accept each other. `cut` sets it and
 * hangs up every connection across it; `heal` lifts it (the agents must find
 * each other again on their own).
 */
export class Partition {
  private sides = new Map<string, Side>()

  /** A gater for one agent; `self` names it once it has started (before that, nothing is cut). */
  gater(self: () => string | undefined): ConnectionGater {
    const denied = (peer: PeerId): boolean => this.blocked(self(), peer.toString())
    return {
      denyDialPeer: (peer) => denied(peer),
      denyOutboundConnection: (peer) => denied(peer),
      denyInboundEncryptedConnection: (peer) => denied(peer),
      denyOutboundEncryptedConnection: (peer) => denied(peer),
      denyInboundUpgradedConnection: (peer) => denied(peer),
      denyOutboundUpgradedConnection: (peer) => denied(peer),
    }
  }

  blocked(a: string | undefined, b: string): boolean {
    if (a == null) return false
    const sa = this.sides.get(a)
    const sb = this.sides.get(b)
    return sa != null && sb != null && sa !== sb
  }

  get active(): boolean {
    return this.sides.size > 0
  }

  /** Splits `a` from `b` and closes every connection between them, on both ends. */
  async cut(a: Agent[], b: Agent[]): Promise<void> {
    this.sides = new Map([...a.map((x) => [x.id, 'a'] as const), ...b.map((x) => [x.id, 'b'] as const)])
    const hangUps: Array<Promise<void>> = []
    for (const x of a)
      for (const y of b) {
        hangUps.push(x.node.hangUp(y.node.peerId).catch(() => {}))
        hangUps.push(y.node.hangUp(x.node.peerId).catch(() => {}))
      }
    await Promise.all(hangUps)
  }

  heal(): void {
    this.sides = new Map()
  }

  /** Connections still open across the cut (should be none). */
  crossConnections(a: Agent[], b: Agent[]): number {
    let n = 0
    for (const x of a) for (const y of b) n += x.node.getConnections(y.node.peerId).length
    return n
  }
}
