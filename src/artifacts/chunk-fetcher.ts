import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import type { BlobLayout, BlobStore } from './blob-store.js'
import type { ChunkMap } from './chunk-map.js'
import { HAVE_REFRESH_MS, PER_PEER_CHUNKS } from './constants.js'
import { ArtifactCorruptError, NoSourceError } from './errors.js'
import type { RateLimiter } from './rate-limiter.js'
import type { Semaphore } from './semaphore.js'

export interface ChunkSources {
  /** Who can serve which chunks of the blob now (penalised peers already left out). */
  holders(layout: BlobLayout, fresh: boolean): Promise<Map<string, ChunkMap>>
  fetch(peer: string, layout: BlobLayout, index: number, signal: AbortSignal): Promise<Uint8Array>
  /** A peer sent bytes that do not match the manifest. */
  penalise(peer: string, reason: string): void
  /** A chunk arrived and verified. */
  received(peer: string, bytes: number): void
}

export interface FetchContext {
  store: BlobStore
  sources: ChunkSources
  slots: Semaphore
  limiter: RateLimiter
  log: Logger
  signal: AbortSignal
  /** ms without any source for the missing chunks before giving up (to be retried later). */
  idleTimeoutMs: number
}

/**
 * Downloads one blob from every peer that has pieces of it: rarest chunks first
 * (random among equals), at most PER_PEER_CHUNKS in flight per peer and the node's
 * shared slots overall, each chunk verified against the manifest before it is
 * written. A peer that sends a bad chunk is penalised and the chunk is fetched
 * elsewhere; a peer that fails is skipped for that chunk until the next refresh.
 * Chunks already on disk (a resumed download) are never fetched again.
 */
export async function fetchBlob(layout: BlobLayout, ctx: FetchContext): Promise<void> {
  const { store, sources, slots, signal } = ctx
  const have = await store.beginPartial(layout)
  const inflight = new Map<number, Promise<void>>()
  const perPeer = new Map<string, number>()
  let skip = new Map<number, Set<string>>()
  let idleSince = Date.now()
  let lastRefresh = 0

  const fetchOne = async (index: number, peer: string): Promise<void> => {
    try {
      const length = Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)
      await ctx.limiter.take(length, signal)
      const data = await sources.fetch(peer, layout, index, signal)
      await store.writeChunk(layout.sha256, index, data)
      sources.received(peer, data.byteLength)
    } catch (err) {
      if (signal.aborted) return
      if (err instanceof ArtifactCorruptError) {
        sources.penalise(peer, `chunk ${index} of ${layout.sha256.slice(0, 12)} failed verification`)
      }
      const peers = skip.get(index) ?? new Set<string>()
      peers.add(peer)
      skip.set(index, peers)
      ctx.log.debug('chunk request failed', {
        blob: layout.sha256.slice(0, 12),
        index,
        peer,
        error: messageOf(err),
      })
    }
  }

  while (!have.complete) {
    signal.throwIfAborted()
    const fresh = Date.now() - lastRefresh >= HAVE_REFRESH_MS
    if (fresh) {
      lastRefresh = Date.now()
      skip = new Map()
    }
    const holders = await sources.holders(layout, fresh)
    const plan = have
      .missing()
      .filter((index) => !inflight.has(index))
      .map((index) => ({
        index,
        peers: [...holders]
          .filter(([peer, map]) => map.has(index) && !skip.get(index)?.has(peer))
          .map(([p]) => p),
        tie: Math.random(),
      }))
      .filter((c) => c.peers.length > 0)
      .sort((a, b) => a.peers.length - b.peers.length || a.tie - b.tie)

    for (const { index, peers } of plan) {
      const open = peers.filter((p) => (perPeer.get(p) ?? 0) < PER_PEER_CHUNKS)
      if (open.length === 0) continue
      let release = slots.tryAcquire()
      if (release == null) {
        if (inflight.size > 0) break
        release = await slots.acquire(signal)
      }
      const least = Math.min(...open.map((p) => perPeer.get(p) ?? 0))
      const choices = open.filter((p) => (perPeer.get(p) ?? 0) === least)
      const peer = choices[Math.floor(Math.random() * choices.length)]!
      perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1)
      const done = release
      inflight.set(
        index,
        fetchOne(index, peer).finally(() => {
          done()
          perPeer.set(peer, (perPeer.get(peer) ?? 1) - 1)
          inflight.delete(index)
        }),
      )
    }

    if (inflight.size > 0) {
      idleSince = Date.now()
      await Promise.race(inflight.values())
      continue
    }
    if (Date.now() - idleSince > ctx.idleTimeoutMs)
      throw new NoSourceError(layout.sha256, have.count - have.size)
    await sleep(HAVE_REFRESH_MS, undefined, { signal })
  }
  await Promise.all(inflight.values())
  await store.completePartial(layout.sha256)
}
