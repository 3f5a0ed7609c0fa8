import type { Connection, Libp2p } from '@libp2p/interface'
import type { Logger } from '../shared/index.js'

/** Two connections opened further apart than this were not a simultaneous dial. */
export const DIAL_RACE_MS = 1_000

/** What closeDuplicate needs to know of a connection. */
export interface ConnectionAge {
  direction: 'inbound' | 'outbound'
  timeline: { open: number }
}

/**
 * Two members that learn of each other at the same moment both dial, and each
 * pair would carry two connections (double encryption, muxing, identify and
 * gossip streams). Both sides keep the connection dialled by the smaller peer id,
 * so they agree without talking.
 *
 * A connection opened well after the other is no race: libp2p reuses an open
 * connection, so the dialler had none left, most likely because it dropped one
 * a network cut had silenced (membership does that on a dead verdict). The old
 * one is then stale on this side too, and keeping it would refuse every fresh
 * dial until TCP's backed-off retransmissions got through: the newest is kept.
 */
export function connectionToKeep<C extends ConnectionAge>(open: C[], weDial: boolean): C {
  const byAge = [...open].sort((a, b) => a.timeline.open - b.timeline.open)
  const newest = byAge.at(-1)!
  const racing = byAge.filter((c) => newest.timeline.open - c.timeline.open < DIAL_RACE_MS)
  if (racing.length < 2) return newest
  return racing.find((c) => c.direction === (weDial ? 'outbound' : 'inbound')) ?? newest
}

/**
 * Closes every connection to `opened`'s peer but the one connectionToKeep picks. A
 * racing duplicate closes gracefully (its streams finish first); an older one is
 * aborted, as its graceful close would wait on its silenced streams.
 */
export function closeDuplicate(node: Libp2p, opened: Connection, log: Logger): void {
  const peer = opened.remotePeer
  const connections = node.getConnections(peer).filter((c) => c.status === 'open')
  if (connections.length < 2) return
  const keep = connectionToKeep(connections, node.peerId.toString() < peer.toString())
  for (const connection of connections) {
    if (connection === keep) continue
    if (keep.timeline.open - connection.timeline.open >= DIAL_RACE_MS) {
      connection.abort(new Error('superseded by a newer connection to the same peer'))
      continue
    }
    connection
      .close()
      .catch((err: unknown) => log.debug('closing a duplicate connection failed', { error: String(err) }))
  }
}
