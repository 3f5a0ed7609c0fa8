import type { Logger } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import type { BlobLayout, BlobStore } from './blob-store.js'
import type { ChunkMap } from './chunk-map.js'
import { ENDGAME_SLOW_FACTOR, HAVE_REFRESH_MS } from './constants.js'
import { ChunkElsewhereError, DataPlaneBusyError } from './data-plane/index.js'
import { ArtifactCorruptError, DiskFullError, NoSourceError } from './errors.js'
import type { PeerBudget } from './peer-budget.js'
import type { RateLimiter } from './rate-limiter.js'
import type { Semaphore } from './semaphore.js'

/** One chunk as a source delivered it: `sha256` when the source hashed the bytes as they arrived. */
export interface FetchedChunk {
  data: Uint8Array
  sha256?: string
  /** ms from the request to the first byte of its answer, when the source measured it. */
  firstByteMs?: number
  /** Hands `data`'s buffer back to the source's pool once the chunk is written (or dropped). */
  release?: () => void
}

export interface ChunkSources {
  /** Who holds which chunks of the blob, as last told (HAVE notices, metadata): no network call. */
  holders(layout: BlobLayout): Map<string, ChunkMap>
  /** The original holders (the publisher, the seeds): asked for a chunk only when no one else has it. */
  isSeed(peer: string): boolean
  fetch(peer: string, layout: BlobLayout, index: number, signal: AbortSignal): Promise<FetchedChunk>
  /** A peer sent bytes that do not match the manifest. */
  penalise(peer: string, reason: string): void
  /** A chunk arrived and verified. */
  received(peer: string, bytes: number): void
  /** Calls `listener` at each change of who holds what (a HAVE notice, a member update); answers how to stop. */
  onChange(listener: () => void): () => void
}

export interface FetchContext {
  store: BlobStore
  sources: ChunkSources
  /** Chunk requests in flight on this node, every blob together. */
  slots: Semaphore
  /** Requests in flight per peer, every blob together, and each peer's pipeline depth. */
  budget: PeerBudget
  limiter: RateLimiter
  log: Logger
  signal: AbortSignal
  /** ms without any source for the missing chunks before giving up (to be retried later). */
  idleTimeoutMs: number
}

/** ms a peer that failed a chunk request is not asked for that chunk again. */
const SKIP_MS = 2_000
/** Expected chunk time assumed for a peer not measured yet (endgame). */
const UNMEASURED_CHUNK_MS = 5_000
/** ms a holder that answered `elsewhere` is not asked for that chunk again. */
const ELSEWHERE_SKIP_MS = 300
/** ms between two plans woken by holdings changes. */
const PLAN_GAP_MS = 50
/** A request younger than this is never duplicated by the endgame, however fast its peer usually is. */
const ENDGAME_MIN_MS = 1_000

interface Request {
  peer: string
  controller: AbortController
  started: number
}

/**
 * Downloads one blob from every peer that holds pieces of it, as BitTorrent does:
 * - rarest chunks first (random among equals), so pieces spread and every peer soon
 *   has something to give;
 * - a seed (the publisher, the first holders) is asked for a chunk only when no
 *   other holder has it, so it uploads few copies and its slots go to new pieces;
 * - each peer gets requests up to its budget (PeerBudget: the bandwidth-delay
 *   product, shared by every blob), a `busy` peer is left alone for a back-off;
 * - endgame: once every missing chunk is requested, a request much slower than its
 *   peer's usual pace is also asked of another holder, and the loser is cancelled;
 * - each chunk is verified against the manifest before it is written (a peer that
 *   sends a bad one is penalised), and chunks already on disk are never fetched.
 * A full disk (ERR_DISK_FULL) ends the fetch at once: the distributor pauses.
 */
export async function fetchBlob(layout: BlobLayout, ctx: FetchContext): Promise<void> {
  const { store, sources, slots, budget, signal } = ctx
  const have = await store.beginPartial(layout)
  const inflight = new Map<number, Request[]>()
  const running = new Set<Promise<void>>()
  const skip = new Map<string, number>()
  let fatal: unknown = null
  let idleSince = Date.now()
  let plannedAt = 0
  // The loop sleeps until a request ends, holdings change or a timer fires. Plain
  // callbacks: an AbortSignal per turn cost a DOMException (a stack trace) per chunk.
  let wakeUp: (() => void) | null = null
  const wake = () => {
    const resolve = wakeUp
    wakeUp = null
    resolve?.()
  }
  /** `changes`: also wake when holdings change (pointless while every holder's pipe is full). */
  const pause = async (ms: number, changes: boolean) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let changeTimer: ReturnType<typeof setTimeout> | undefined
    let off = () => {}
    await new Promise<void>((resolve) => {
      wakeUp = resolve
      timer = setTimeout(wake, ms)
      // Changes come in bursts (a HAVE per chunk per peer): plan at most every PLAN_GAP_MS for them.
      if (changes)
        off = sources.onChange(() => {
          changeTimer ??= setTimeout(wake, Math.max(0, plannedAt + PLAN_GAP_MS - Date.now()))
        })
      signal.addEventListener('abort', wake, { once: true })
    })
    clearTimeout(timer)
    clearTimeout(changeTimer)
    off()
    signal.removeEventListener('abort', wake)
  }

  const lengthOf = (index: number) => Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)

  const start = (index: number, peer: string, release: () => void): void => {
    const controller = new AbortController()
    const onAbort = () => controller.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    const request: Request = { peer, controller, started: Date.now() }
    inflight.set(index, [...(inflight.get(index) ?? []), request])
    const end = budget.begin(peer)
    // Assigned before its body's first await returns, so its `finally` always sees it.
    let task: Promise<void> | undefined
    task = (async () => {
      try {
        await ctx.limiter.take(lengthOf(index), controller.signal)
        const chunk = await sources.fetch(peer, layout, index, controller.signal)
        end({
          kind: 'ok',
          bytes: chunk.data.byteLength,
          ...(chunk.firstByteMs == null ? {} : { firstByteMs: chunk.firstByteMs }),
        })
        try {
          if (have.has(index)) return // another holder's copy won the endgame race
          await store.writeChunk(layout.sha256, index, chunk.data, chunk.sha256)
        } finally {
          chunk.release?.()
        }
        sources.received(peer, chunk.data.byteLength)
        // The chunk is ours: cancel the other requests for it.
        for (const other of inflight.get(index) ?? []) if (other !== request) other.controller.abort()
      } catch (err) {
        const busy = err instanceof DataPlaneBusyError
        end(busy ? { kind: 'busy' } : { kind: 'failed' })
        if (controller.signal.aborted || busy) return
        if (err instanceof ChunkElsewhereError) {
          // Another peer is getting it from this holder: get it from that peer, or wait a moment.
          skip.set(`${peer}/${index}`, Date.now() + ELSEWHERE_SKIP_MS)
          return
        }
        if (err instanceof DiskFullError) {
          fatal ??= err
          return
        }
        if (err instanceof ArtifactCorruptError)
          sources.penalise(peer, `chunk ${index} of ${layout.sha256.slice(0, 12)} failed verification`)
        skip.set(`${peer}/${index}`, Date.now() + SKIP_MS)
        ctx.log.debug('chunk request failed', {
          blob: layout.sha256.slice(0, 12),
          index,
          peer,
          error: messageOf(err),
        })
      } finally {
        signal.removeEventListener('abort', onAbort)
        release()
        const left = (inflight.get(index) ?? []).filter((r) => r !== request)
        if (left.length > 0) inflight.set(index, left)
        else inflight.delete(index)
        // Out of `running` before the loop wakes, or it would wait for a task already over.
        if (task != null) running.delete(task)
        wake()
      }
    })()
    running.add(task)
  }

  /** Holders that may be asked for `index` now: not skipped, not seeds when others have it. */
  const eligible = (
    index: number,
    holders: Map<string, ChunkMap>,
    exclude: ReadonlySet<string>,
  ): string[] => {
    const now = Date.now()
    const all = [...holders]
      .filter(
        ([peer, map]) => map.has(index) && !exclude.has(peer) && (skip.get(`${peer}/${index}`) ?? 0) <= now,
      )
      .map(([peer]) => peer)
    const others = all.filter((peer) => !sources.isSeed(peer))
    return others.length > 0 ? others : all
  }

  /** The eligible peer with the most room left, at random among equals; null when all are full. */
  const pick = (peers: string[]): string | null => {
    let best: string[] = []
    let most = 0
    for (const peer of peers) {
      const room = budget.room(peer, layout.chunkSize)
      if (room > most) {
        most = room
        best = [peer]
      } else if (room === most && room > 0) best.push(peer)
    }
    return best.length === 0 ? null : best[Math.floor(Math.random() * best.length)]!
  }

  while (!have.complete) {
    if (fatal != null) break
    signal.throwIfAborted()
    plannedAt = Date.now()
    const holders = sources.holders(layout)
    const plan: Array<{ index: number; holding: number; tie: number }> = []
    // Missing chunks nobody holds yet: a HAVE notice may bring a source for them.
    let unheld = 0
    for (const index of have.missing()) {
      if (inflight.has(index)) continue
      let holding = 0
      for (const map of holders.values()) if (map.has(index)) holding++
      if (holding === 0) unheld++
      else plan.push({ index, holding, tie: Math.random() })
    }
    // Planning costs chunks × holders: skip it while every holder's pipe is full.
    const anyRoom = [...holders.keys()].some((peer) => budget.room(peer, layout.chunkSize) > 0)
    let started = 0
    if (anyRoom) {
      plan.sort((a, b) => a.holding - b.holding || a.tie - b.tie)
      for (const { index } of plan) {
        const peer = pick(eligible(index, holders, new Set()))
        if (peer == null) continue
        const release = slots.tryAcquire()
        if (release == null) break
        start(index, peer, release)
        started++
      }
    }
    // Holdings changes matter only when they may give a source to a chunk that has none.
    const listen = unheld > 0 && anyRoom

    // Endgame: nothing left to request, so duplicate the requests that lag.
    if (plan.length === 0 && inflight.size > 0) {
      const now = Date.now()
      for (const [index, requests] of inflight) {
        if (requests.length > 1) continue
        const first = requests[0]!
        // A pipelined request waits behind the others sent to its peer.
        const queued = Math.max(1, budget.inflight(first.peer))
        const pace =
          budget.expectedMs(first.peer, lengthOf(index)) ??
          fastest([...holders.keys()].map((p) => budget.expectedMs(p, lengthOf(index)))) ??
          UNMEASURED_CHUNK_MS
        const expected = pace * queued
        if (now - first.started < Math.max(ENDGAME_MIN_MS, ENDGAME_SLOW_FACTOR * expected)) continue
        const peer = pick(eligible(index, holders, new Set([first.peer])))
        if (peer == null) continue
        const release = slots.tryAcquire()
        if (release == null) break
        start(index, peer, release)
      }
    }

    if (running.size > 0) {
      idleSince = Date.now()
      // A chunk some holder has but whose pipes are full waits for a request to end.
      await pause(started > 0 ? HAVE_REFRESH_MS : 250, listen)
      continue
    }
    // Holders exist but their pipes or this node's slots are full (other blobs use
    // them): that is waiting for room, not for a source.
    if (plan.length > 0) idleSince = Date.now()
    if (Date.now() - idleSince > ctx.idleTimeoutMs)
      throw new NoSourceError(layout.sha256, have.count - have.size)
    await pause(HAVE_REFRESH_MS, true)
  }
  for (const requests of inflight.values()) for (const r of requests) if (fatal != null) r.controller.abort()
  await Promise.all(running)
  if (fatal != null) throw fatal
  signal.throwIfAborted()
  await store.completePartial(layout.sha256)
}

function fastest(values: Array<number | null>): number | null {
  const known = values.filter((v): v is number => v != null)
  return known.length === 0 ? null : Math.min(...known)
}
