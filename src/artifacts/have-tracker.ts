import { messageOf } from '../shared/index.js'
import type { BlobLayout } from './blob-store.js'
import { ChunkMap } from './chunk-map.js'
import { HAVE_POLL_MS } from './constants.js'

/** A change to a peer's chunk map, as its HAVE notices tell it. */
export type HaveNotice =
  | { t: 'map'; size: number; bitmap: string | null }
  | { t: 'have'; index: number }
  | { t: 'whole' }
  | { t: 'none' }

/** How the tracker learns a peer's chunks: pushed notices where the peer offers them, else a poll. */
export interface HaveChannel {
  /** Subscribes to the peer's HAVE notices for the blob; null when the peer cannot push (no data plane). */
  watch(
    peer: string,
    layout: BlobLayout,
    onNotice: (notice: HaveNotice) => void,
    onEnd: (err?: Error) => void,
  ): (() => void) | null
  /** Asks the peer once which chunks it holds (null: it does not answer, or holds none). */
  ask(peer: string, layout: BlobLayout): Promise<ChunkMap | null>
}

interface Tracked {
  map: ChunkMap | null
  stop: (() => void) | null
  /** When the push channel was last asked for (it is asked again RESUBSCRIBE_MS after it ended). */
  subscribedAt: number
  polledAt: number
  polling: boolean
}

/** ms after a push channel ended (a dropped connection) before it is asked for again; polls meanwhile. */
const RESUBSCRIBE_MS = 2_000

/**
 * What the peers that are still fetching a blob hold of it, kept current without
 * polling them all: a peer with a data plane pushes a notice for every chunk it
 * verifies (subscribed while we fetch the blob); the others are asked at most every
 * HAVE_POLL_MS. Every change wakes whoever waits in `changed`.
 */
export class HaveTracker {
  /** Blob → peer → what we know of the peer's chunks of it. */
  private readonly tracked = new Map<string, Map<string, Tracked>>()
  private readonly listeners = new Set<() => void>()

  constructor(
    private readonly channel: HaveChannel,
    private readonly onError: (peer: string, message: string) => void = () => {},
  ) {}

  /** The maps known for `peers` (members fetching a version with the blob); starts tracking new ones, drops the others. */
  maps(layout: BlobLayout, peers: Iterable<string>): Map<string, ChunkMap> {
    const wanted = new Set(peers)
    let byPeer = this.tracked.get(layout.sha256)
    if (byPeer == null) {
      byPeer = new Map()
      this.tracked.set(layout.sha256, byPeer)
    }
    for (const [peer, tracked] of byPeer)
      if (!wanted.has(peer)) {
        tracked.stop?.()
        byPeer.delete(peer)
      }
    const out = new Map<string, ChunkMap>()
    const now = Date.now()
    for (const peer of wanted) {
      let tracked = byPeer.get(peer)
      if (tracked == null) {
        tracked = { map: null, stop: null, subscribedAt: 0, polledAt: 0, polling: false }
        byPeer.set(peer, tracked)
      }
      if (tracked.stop == null && now - tracked.subscribedAt >= RESUBSCRIBE_MS) {
        tracked.subscribedAt = now
        this.subscribe(peer, layout, tracked)
      }
      if (tracked.stop == null && !tracked.polling && now - tracked.polledAt >= HAVE_POLL_MS)
        this.poll(peer, layout, tracked)
      if (tracked.map != null) out.set(peer, tracked.map)
    }
    return out
  }

  /** Calls `listener` at every change; answers how to stop. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Tells the listeners: something else changed (a member now holds a whole version). */
  notify(): void {
    for (const listener of [...this.listeners]) listener()
  }

  /** The download of a blob ended: stop tracking its holders. */
  release(blob: string): void {
    for (const tracked of this.tracked.get(blob)?.values() ?? []) tracked.stop?.()
    this.tracked.delete(blob)
  }

  stop(): void {
    for (const byPeer of this.tracked.values()) for (const tracked of byPeer.values()) tracked.stop?.()
    this.tracked.clear()
    this.notify()
  }

  private subscribe(peer: string, layout: BlobLayout, tracked: Tracked): void {
    const count = layout.chunks.length
    let ended = false
    const stop = this.channel.watch(
      peer,
      layout,
      (notice) => {
        if (notice.t === 'map')
          tracked.map =
            notice.size !== layout.size
              ? null
              : notice.bitmap == null
                ? ChunkMap.full(count)
                : ChunkMap.fromBase64(count, notice.bitmap)
        else if (notice.t === 'have') {
          tracked.map ??= new ChunkMap(count)
          tracked.map.add(notice.index)
        } else if (notice.t === 'whole') tracked.map = ChunkMap.full(count)
        else tracked.map = null
        this.notify()
      },
      (err) => {
        // The push channel dropped: poll until it is asked for again (RESUBSCRIBE_MS).
        if (err != null) this.onError(peer, messageOf(err))
        ended = true
        tracked.stop = null
        tracked.subscribedAt = Date.now()
        tracked.polledAt = 0
      },
    )
    // onEnd may have run already (an address no socket can dial).
    tracked.stop = ended ? null : stop
  }

  private poll(peer: string, layout: BlobLayout, tracked: Tracked): void {
    tracked.polling = true
    tracked.polledAt = Date.now()
    void this.channel
      .ask(peer, layout)
      .then((map) => {
        tracked.map = map
        this.notify()
      })
      .finally(() => {
        tracked.polling = false
      })
  }
}
