import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { BlobLayout } from '../../src/artifacts/blob-store.js'
import { BlobStore } from '../../src/artifacts/blob-store.js'
import { type ChunkSources, fetchBlob } from '../../src/artifacts/chunk-fetcher.js'
import { ChunkMap } from '../../src/artifacts/chunk-map.js'
import { digestFile } from '../../src/artifacts/chunking.js'
import { DataPlaneBusyError } from '../../src/artifacts/data-plane/index.js'
import { DiskFullError } from '../../src/artifacts/errors.js'
import { PeerBudget } from '../../src/artifacts/peer-budget.js'
import { RateLimiter } from '../../src/artifacts/rate-limiter.js'
import { Semaphore } from '../../src/artifacts/semaphore.js'
import { silentLogger } from '../../src/shared/logger.js'

const CHUNK = 16_384

interface FakePeer {
  map: ChunkMap
  seed?: boolean
  /** What a request does before it answers (default: answer at once). */
  serve?: (index: number, signal: AbortSignal) => Promise<void>
}

/** Sources backed by in-memory peers holding the real bytes; records every request. */
function fakeSources(data: Buffer, peers: Record<string, FakePeer>) {
  const requests: Array<{ peer: string; index: number }> = []
  const served: Array<{ peer: string; index: number }> = []
  const sources: ChunkSources = {
    holders: () => new Map(Object.entries(peers).map(([id, p]) => [id, p.map])),
    isSeed: (peer) => peers[peer]?.seed === true,
    fetch: async (peer, _layout, index, signal) => {
      requests.push({ peer, index })
      await peers[peer]!.serve?.(index, signal)
      signal.throwIfAborted()
      served.push({ peer, index })
      return { data: data.subarray(index * CHUNK, (index + 1) * CHUNK) }
    },
    penalise: () => {},
    received: () => {},
    onChange: (listener) => {
      const timer = setInterval(listener, 50)
      return () => clearInterval(timer)
    },
  }
  return { sources, requests, served }
}

describe('fetchBlob: the swarm scheduler', () => {
  let dir: string
  let db: Level<string, string>
  let store: BlobStore
  let data: Buffer
  let layout: BlobLayout

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-fetch-'))
    db = new Level(join(dir, 'db'))
    await db.open()
    store = new BlobStore(join(dir, 'blobs'), db.sublevel<string, string>('blobs', {}), silentLogger, 1e9)
    await store.open()
    data = randomBytes(CHUNK * 12)
    await writeFile(join(dir, 'src'), data)
    layout = await digestFile(join(dir, 'src'), CHUNK)
  })
  afterEach(async () => {
    await store.close()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  const context = (sources: ChunkSources, signal = new AbortController().signal) => ({
    store,
    sources,
    slots: new Semaphore(16),
    budget: new PeerBudget(),
    limiter: new RateLimiter(0),
    log: silentLogger,
    signal,
    idleTimeoutMs: 2_000,
  })

  it('asks a seed only for the chunks no other holder has', async () => {
    const partial = new ChunkMap(12)
    for (let i = 0; i < 8; i++) partial.add(i)
    const { sources, requests } = fakeSources(data, {
      seed: { map: ChunkMap.full(12), seed: true },
      peer: { map: partial },
    })
    await fetchBlob(layout, context(sources))
    expect(await readFile(store.pathOf(layout.sha256))).toEqual(data)
    const fromSeed = requests.filter((r) => r.peer === 'seed').map((r) => r.index)
    expect(new Set(fromSeed)).toEqual(new Set([8, 9, 10, 11]))
  })

  it('requests the rarest chunks first', async () => {
    const common = ChunkMap.full(12)
    common.delete(5)
    const rare = new ChunkMap(12)
    rare.add(5)
    const { sources, requests } = fakeSources(data, {
      a: { map: common },
      b: { map: common },
      c: { map: rare },
    })
    const ctx = context(sources)
    // One request at a time, so the order is the scheduler's choice.
    ctx.slots = new Semaphore(1)
    await fetchBlob(layout, ctx)
    expect(requests[0]).toEqual({ peer: 'c', index: 5 })
  })

  it('leaves a busy peer alone for a while and gets the chunks elsewhere', async () => {
    let busyAnswers = 0
    const { sources, served } = fakeSources(data, {
      busy: {
        map: ChunkMap.full(12),
        serve: async () => {
          busyAnswers++
          throw new DataPlaneBusyError('no upload slot')
        },
      },
      slow: { map: ChunkMap.full(12), serve: () => sleep(5) },
    })
    await fetchBlob(layout, context(sources))
    expect(served.every((r) => r.peer === 'slow')).toBe(true)
    // Back-off: far fewer busy answers than chunks asked.
    expect(busyAnswers).toBeLessThan(12)
  })

  it('endgame: asks another holder for a chunk stuck on a stalled peer, and cancels the loser', async () => {
    let stuckAborted = false
    const { sources } = fakeSources(data, {
      fast: { map: ChunkMap.full(12) },
      stuck: {
        map: ChunkMap.full(12),
        serve: (_index, signal) =>
          new Promise<void>((_, reject) => {
            signal.addEventListener('abort', () => {
              stuckAborted = true
              reject(signal.reason)
            })
          }),
      },
    })
    await fetchBlob(layout, context(sources))
    expect(await readFile(store.pathOf(layout.sha256))).toEqual(data)
    expect(stuckAborted).toBe(true)
  }, 30_000)

  it('stops at once when the disk is full, without asking for the rest', async () => {
    const { sources, requests } = fakeSources(data, { a: { map: ChunkMap.full(12) } })
    const realWrite = store.writeChunk.bind(store)
    let writes = 0
    store.writeChunk = async (...args: Parameters<BlobStore['writeChunk']>) => {
      if (++writes > 2) throw new DiskFullError(dir, 0, 1_000_000, 'a test blob')
      return realWrite(...args)
    }
    const ctx = context(sources)
    ctx.slots = new Semaphore(1)
    await expect(fetchBlob(layout, ctx)).rejects.toMatchObject({ code: 'ERR_DISK_FULL' })
    expect(requests.length).toBeLessThanOrEqual(4)
  })

  it('gives up with ERR_NO_SOURCE when no one holds the missing chunks', async () => {
    const some = new ChunkMap(12)
    some.add(0)
    const { sources } = fakeSources(data, { a: { map: some } })
    const ctx = { ...context(sources), idleTimeoutMs: 300 }
    await expect(fetchBlob(layout, ctx)).rejects.toMatchObject({ code: 'ERR_NO_SOURCE' })
  })
})
