import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type BlobLayout, BlobStore, type BlobStoreInit } from '../../src/artifacts/blob-store.js'
import { ChunkMap } from '../../src/artifacts/chunk-map.js'
import { digestFile, sha256Hex } from '../../src/artifacts/chunking.js'
import { transferRequest } from '../../src/artifacts/protocol.js'
import { silentLogger } from '../../src/shared/logger.js'

const CHUNK = 16_384

async function* bytes(data: Uint8Array) {
  yield data.subarray(0, 1000)
  yield data.subarray(1000)
}

/** Polls `check` until it holds (the store flushes in the background). */
async function until(check: () => Promise<boolean> | boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const openFds = async () => (await readdir('/proc/self/fd')).length

describe('BlobStore receiving path (issue 20)', () => {
  let dir: string
  let db: Level<string, string>
  const sub = () => db.sublevel<string, string>('blobs', {})
  const openStore = async (init: BlobStoreInit = {}, blobs = join(dir, 'blobs'), max = 3 * 1024 ** 3) => {
    const store = new BlobStore(blobs, sub(), silentLogger, max, init)
    const report = await store.open()
    return { store, report }
  }
  const layoutOf = async (data: Uint8Array, chunkSize = CHUNK): Promise<BlobLayout> => {
    const path = join(dir, `src-${randomBytes(4).toString('hex')}`)
    await writeFile(path, data)
    return digestFile(path, chunkSize)
  }
  const chunkOf = (data: Uint8Array, layout: BlobLayout, i: number) =>
    data.subarray(i * layout.chunkSize, Math.min(layout.size, (i + 1) * layout.chunkSize))

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-receive-'))
    db = new Level(join(dir, 'db'))
    await db.open()
  })
  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('concurrent beginPartial of one blob share one download that both callers see complete', async () => {
    const { store } = await openStore()
    const data = randomBytes(10 * CHUNK + 123)
    const layout = await layoutOf(data)
    const [a, b] = await Promise.all([store.beginPartial(layout), store.beginPartial({ ...layout })])
    // Each caller writes every other chunk, interleaved, and a few of the other's too.
    const writes: Promise<void>[] = []
    for (let i = 0; i < layout.chunks.length; i++) {
      writes.push(store.writeChunk(layout.sha256, i, chunkOf(data, layout, i)))
      if (i % 3 === 0) writes.push(store.writeChunk(layout.sha256, i, chunkOf(data, layout, i)))
    }
    await Promise.all(writes)
    expect(a!.complete).toBe(true)
    expect(b!.complete).toBe(true)
    expect(a).toBe(b)
    await Promise.all([store.completePartial(layout.sha256), store.completePartial(layout.sha256)])
    expect(store.has(layout.sha256)).toBe(true)
    expect(await readFile(store.pathOf(layout.sha256))).toEqual(data)
    expect(await readdir(join(dir, 'blobs', 'partial'))).toEqual([])
    await store.close()
  })

  it('writes the layout once and the bitmap apart, and migrates an old-format record', async () => {
    const data = randomBytes(4 * CHUNK)
    const layout = await layoutOf(data)
    // The old format: layout and bitmap together in p:, with chunk 0 on disk.
    await mkdir(join(dir, 'blobs', 'partial'), { recursive: true })
    await writeFile(join(dir, 'blobs', 'partial', layout.sha256), chunkOf(data, layout, 0))
    const have = new ChunkMap(4)
    have.add(0)
    await sub().put(`p:${layout.sha256}`, JSON.stringify({ ...layout, have: have.toBase64() }))

    const { store, report } = await openStore({ flushChunks: 1 })
    expect(report.partials).toBe(1)
    const record = JSON.parse((await sub().get(`p:${layout.sha256}`))!) as Record<string, unknown>
    expect(record).toEqual(layout)
    expect(ChunkMap.fromBase64(4, (await sub().get(`h:${layout.sha256}`))!).missing()).toEqual([1, 2, 3])

    // From here on, chunks touch only h:.
    const keys: string[] = []
    const db = sub()
    const put = db.put.bind(db)
    const batch = db.batch.bind(db)
    Object.assign(db, {
      put: (key: string, value: string) => {
        keys.push(key.slice(0, 2))
        return put(key, value)
      },
      batch: (ops: Array<{ key: string }>) => {
        keys.push(...ops.map((o) => o.key.slice(0, 2)))
        return (batch as (o: unknown) => Promise<void>)(ops)
      },
    })
    const resumed = await store.beginPartial(layout)
    expect(resumed.missing()).toEqual([1, 2, 3])
    for (const i of [1, 2, 3]) await store.writeChunk(layout.sha256, i, chunkOf(data, layout, i))
    await store.close()
    expect(keys.filter((k) => k === 'p:')).toEqual([])
    const reopened = await openStore()
    expect((await reopened.store.beginPartial(layout)).complete).toBe(true)
    await reopened.store.completePartial(layout.sha256)
    expect(await readFile(reopened.store.pathOf(layout.sha256))).toEqual(data)
    expect(await sub().get(`p:${layout.sha256}`)).toBeUndefined()
    expect(await sub().get(`h:${layout.sha256}`)).toBeUndefined()
    await reopened.store.close()
  })

  it('takes the caller’s digest instead of hashing again, serves a chunk at once and records it in batches', async () => {
    const { store } = await openStore({ flushChunks: 3, flushMs: 60_000 })
    const data = randomBytes(5 * CHUNK)
    const layout = await layoutOf(data)
    await store.beginPartial(layout)
    // A digest that is not the layout's is refused, whatever the bytes.
    await expect(
      store.writeChunk(layout.sha256, 0, chunkOf(data, layout, 0), 'e'.repeat(64)),
    ).rejects.toMatchObject({ code: 'ERR_ARTIFACT_CORRUPT' })
    await expect(store.writeChunk(layout.sha256, 9, chunkOf(data, layout, 0))).rejects.toMatchObject({
      code: 'ERR_ARTIFACT_CORRUPT',
    })
    await store.writeChunk(layout.sha256, 0, chunkOf(data, layout, 0), layout.chunks[0])
    // Servable at once, not yet recorded (1 chunk of a batch of 3, timer of a minute).
    expect(Buffer.from((await store.readChunk(layout.sha256, 0, CHUNK))!)).toEqual(chunkOf(data, layout, 0))
    expect(store.chunkMap(layout.sha256, CHUNK)!.have.has(0)).toBe(true)
    const recorded = async () => ChunkMap.fromBase64(5, (await sub().get(`h:${layout.sha256}`)) ?? '')
    expect((await recorded()).size).toBe(0)
    await store.writeChunk(layout.sha256, 1, chunkOf(data, layout, 1), layout.chunks[1])
    await store.writeChunk(layout.sha256, 2, chunkOf(data, layout, 2), layout.chunks[2])
    await until(async () => (await recorded()).size === 3)
    await store.close()
  })

  it('flushes a batch after flushMs', async () => {
    const { store } = await openStore({ flushChunks: 100, flushMs: 20 })
    const data = randomBytes(3 * CHUNK)
    const layout = await layoutOf(data)
    await store.beginPartial(layout)
    await store.writeChunk(layout.sha256, 1, chunkOf(data, layout, 1))
    await until(async () => ChunkMap.fromBase64(3, (await sub().get(`h:${layout.sha256}`)) ?? '').has(1))
    await store.close()
  })

  it('tells listeners of every servable chunk and of whole blobs; a throwing listener does not break the store', async () => {
    const { store } = await openStore()
    const events: Array<[string, number]> = []
    store.onChunk(() => {
      throw new Error('listener bug')
    })
    const off = store.onChunk((hash, index) => events.push([hash.slice(0, 8), index]))
    const data = randomBytes(3 * CHUNK - 10)
    const layout = await layoutOf(data)
    await store.beginPartial(layout)
    for (const i of [2, 0, 1]) await store.writeChunk(layout.sha256, i, chunkOf(data, layout, i))
    await store.completePartial(layout.sha256)
    const h = layout.sha256.slice(0, 8)
    expect(events).toEqual([
      [h, 2],
      [h, 0],
      [h, 1],
      [h, -1],
    ])
    const upload = randomBytes(2000)
    await store.ingest(bytes(upload), sha256Hex(upload))
    expect(events.at(-1)).toEqual([sha256Hex(upload).slice(0, 8), -1])
    off()
    const other = randomBytes(3000)
    await store.ingest(bytes(other), sha256Hex(other))
    expect(events).toHaveLength(5)
    await store.close()
  })

  it('serves whole blobs through a bounded pool of read handles, closed on remove and close', async () => {
    const { store } = await openStore({ readHandles: 2 })
    const blobs = Array.from({ length: 5 }, () => randomBytes(2 * CHUNK + 7))
    for (const b of blobs) await store.ingest(bytes(b), sha256Hex(b))
    const before = await openFds()
    for (const b of blobs) {
      const last = await store.readChunk(sha256Hex(b), 2, CHUNK)
      expect(Buffer.from(last!)).toEqual(b.subarray(2 * CHUNK))
      expect(Buffer.from((await store.readChunk(sha256Hex(b), 0, CHUNK))!)).toEqual(b.subarray(0, CHUNK))
    }
    expect(await store.readChunk(sha256Hex(blobs[0]!), 3, CHUNK)).toBeNull()
    await until(async () => (await openFds()) <= before + 2)
    await store.remove(sha256Hex(blobs[4]!))
    await store.close()
    await until(async () => (await openFds()) <= before)
  })

  it('a whole blob truncated on disk is not served as zeros: ERR_BLOB_TRUNCATED, and dropped to be fetched again', async () => {
    const { store } = await openStore()
    const data = randomBytes(3 * CHUNK)
    const hash = sha256Hex(data)
    await store.ingest(bytes(data), hash)
    expect(Buffer.from((await store.readChunk(hash, 0, CHUNK))!)).toEqual(data.subarray(0, CHUNK))
    await truncate(store.pathOf(hash), CHUNK + 100)
    await expect(store.readChunk(hash, 2, CHUNK)).rejects.toMatchObject({ code: 'ERR_BLOB_TRUNCATED' })
    expect(store.has(hash)).toBe(false)
    expect(store.chunkMap(hash, CHUNK)).toBeNull()
    expect(await sub().get(`b:${hash}`)).toBeUndefined()
    await store.close()
  })

  it('chunkMap refuses a chunk size outside the manifest bounds at once, and the wire refuses it too', async () => {
    const hash = 'ab'.repeat(32)
    const size = 2 * 1024 ** 3
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
    await writeFile(join(dir, 'blobs', 'sha256', hash), '')
    await truncate(join(dir, 'blobs', 'sha256', hash), size) // sparse: costs no disk
    await sub().put(`b:${hash}`, JSON.stringify({ size }))
    const { store } = await openStore()
    expect(store.sizeOf(hash)).toBe(size)
    const started = performance.now()
    expect(store.chunkMap(hash, 1)).toBeNull()
    expect(await store.readChunk(hash, 5, 1)).toBeNull()
    expect(store.chunkMap(hash, 16 * 1024 * 1024)).toBeNull()
    expect(performance.now() - started).toBeLessThan(50)
    expect(store.chunkMap(hash, CHUNK)!.have.complete).toBe(true)
    expect(store.chunkMap(hash, CHUNK)!.have.count).toBe(size / CHUNK)

    const blob = hash
    expect(transferRequest.safeParse({ t: 'have', blob, chunkSize: 1 }).success).toBe(false)
    expect(transferRequest.safeParse({ t: 'get', blob, chunkSize: 1, index: 0 }).success).toBe(false)
    expect(transferRequest.safeParse({ t: 'get', blob, chunkSize: CHUNK, index: 2 ** 24 }).success).toBe(
      false,
    )
    expect(transferRequest.safeParse({ t: 'get', blob, chunkSize: CHUNK, index: 3 }).success).toBe(true)
    await store.close()
  })

  it('ChunkMap.full equals a map filled one chunk at a time', () => {
    for (const count of [0, 1, 7, 8, 9, 17, 131_072]) {
      const slow = new ChunkMap(count)
      for (let i = 0; i < count; i++) slow.add(i)
      const full = ChunkMap.full(count)
      expect(full.toBase64()).toBe(slow.toBase64())
      expect(full.size).toBe(count)
      expect(full.complete).toBe(true)
    }
  })

  describe('on a full disk', () => {
    const isRoot = process.getuid?.() === 0
    let mount: string
    beforeAll(async () => {
      if (!isRoot) return
      mount = await mkdtemp(join(tmpdir(), 'shoal-full-'))
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount])
    })
    afterAll(async () => {
      if (!isRoot) return
      execFileSync('umount', [mount])
      await rm(mount, { recursive: true, force: true })
    })

    it.skipIf(!isRoot)(
      'a download or an upload that fills the disk fails with ERR_DISK_FULL, the space needed and free',
      async () => {
        const blobs = join(mount, 'blobs')
        const { store } = await openStore({}, blobs)
        const data = randomBytes(8 * 1024 * 1024)
        const layout = await layoutOf(data, 1024 * 1024)
        const have = await store.beginPartial(layout)
        let failure: unknown
        let failed = -1
        for (let i = 0; i < layout.chunks.length && failure == null; i++) {
          await store
            .writeChunk(layout.sha256, i, chunkOf(data, layout, i), layout.chunks[i])
            .catch((err) => {
              failure = err
              failed = i
            })
        }
        expect(failure).toMatchObject({ code: 'ERR_DISK_FULL' })
        const err = failure as { needed: number; free: number; message: string }
        expect(err.needed).toBe(layout.size - failed * 1024 * 1024)
        expect(err.free).toBeGreaterThanOrEqual(0)
        expect(err.free).toBeLessThan(1024 * 1024)
        expect(err.message).toContain(`the disk holding ${blobs} is full`)
        expect(err.message).toContain('the download resumes on its own')
        expect(have.has(failed)).toBe(false)
        expect(store.chunkMap(layout.sha256, layout.chunkSize)!.have.has(failed)).toBe(false)
        expect(await store.readChunk(layout.sha256, failed, layout.chunkSize)).toBeNull()

        // The partial takes the space; an upload now fails the same way and leaves no temp file.
        await expect(store.ingest(bytes(randomBytes(2 * 1024 * 1024)), 'c'.repeat(64))).rejects.toMatchObject(
          {
            code: 'ERR_DISK_FULL',
          },
        )
        expect(await readdir(join(blobs, 'tmp'))).toEqual([])
        await store.remove(layout.sha256)
        await store.close()
      },
    )
  })
})
