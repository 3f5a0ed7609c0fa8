import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractSublevel } from 'abstract-level'
import type { Logger } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import { ChunkMap } from './chunk-map.js'
import { sha256Hex } from './chunking.js'
import { ArtifactCorruptError, ArtifactTooLargeError } from './errors.js'

// biome-ignore lint/suspicious/noExplicitAny: the parent database type does not matter to the store
export type StoreDb = AbstractSublevel<any, any, string, string>

/** The chunk layout of a blob, as a manifest gives it. */
export interface BlobLayout {
  sha256: string
  size: number
  chunkSize: number
  chunks: string[]
}

interface PartialBlob {
  layout: BlobLayout
  have: ChunkMap
  file: FileHandle
  /** Serializes index writes so a newer bitmap is never overwritten by an older one. */
  saving: Promise<void>
}

export interface StoreReport {
  blobs: number
  bytes: number
  dropped: string[]
  recovered: string[]
  partials: number
}

const HASH = /^[0-9a-f]{64}$/

/**
 * Content-addressed blobs in `<data>/blobs`: `sha256/<hash>` for whole, verified
 * blobs, `partial/<hash>` for downloads in progress, `tmp/` for uploads. The index
 * lives in level: `b:<hash>` whole blobs, `p:<hash>` partial ones (layout and the
 * bitmap of verified chunks), `j:<hash>` the journal of blobs written but not yet
 * recorded. Every write goes temp file → fsync → verify → rename, so a crash leaves
 * either no blob or a whole, verified one.
 */
export class BlobStore {
  private readonly whole = new Map<string, number>()
  private readonly partials = new Map<string, PartialBlob>()
  private readonly wholeDir: string
  private readonly partialDir: string
  private readonly tmpDir: string

  constructor(
    dir: string,
    private readonly db: StoreDb,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {
    this.wholeDir = join(dir, 'sha256')
    this.partialDir = join(dir, 'partial')
    this.tmpDir = join(dir, 'tmp')
  }

  /**
   * Opens the store and checks it (fast path): journaled writes are re-hashed and
   * kept or dropped, every indexed blob must exist with its size, partial
   * downloads keep only chunks that still verify.
   */
  async open(): Promise<StoreReport> {
    await Promise.all([this.wholeDir, this.partialDir, this.tmpDir].map((d) => mkdir(d, { recursive: true })))
    await rm(this.tmpDir, { recursive: true, force: true })
    await mkdir(this.tmpDir, { recursive: true })
    const report: StoreReport = { blobs: 0, bytes: 0, dropped: [], recovered: [], partials: 0 }

    for await (const [key] of this.db.iterator({ gte: 'j:', lt: 'j;' })) {
      const hash = key.slice(2)
      const path = this.pathOf(hash)
      const ok = await hashOfFile(path).then(
        (digest) => digest === hash,
        () => false,
      )
      if (ok) {
        await this.db.batch([
          { type: 'put', key: `b:${hash}`, value: JSON.stringify({ size: (await stat(path)).size }) },
          { type: 'del', key },
        ])
        await this.db.del(`p:${hash}`)
        report.recovered.push(hash)
      } else {
        await rm(path, { force: true })
        await this.db.del(key)
      }
    }

    for await (const [key, value] of this.db.iterator({ gte: 'b:', lt: 'b;' })) {
      const hash = key.slice(2)
      const { size } = JSON.parse(value) as { size: number }
      const actual = await stat(this.pathOf(hash)).then(
        (s) => s.size,
        () => -1,
      )
      if (actual !== size) {
        this.log.error('blob missing or truncated; it will be fetched again', {
          blob: hash,
          expected: size,
          actual,
        })
        await this.db.del(key)
        await rm(this.pathOf(hash), { force: true })
        report.dropped.push(hash)
        continue
      }
      this.whole.set(hash, size)
      report.blobs++
      report.bytes += size
    }

    for (const name of await readdir(this.wholeDir)) {
      if (!this.whole.has(name)) await rm(join(this.wholeDir, name), { force: true })
    }

    for await (const [key, value] of this.db.iterator({ gte: 'p:', lt: 'p;' })) {
      const hash = key.slice(2)
      if (this.whole.has(hash)) {
        await this.db.del(key)
        continue
      }
      const saved = JSON.parse(value) as BlobLayout & { have: string }
      await this.resumePartial(saved, ChunkMap.fromBase64(saved.chunks.length, saved.have))
      report.partials++
    }
    for (const name of await readdir(this.partialDir)) {
      if (!this.partials.has(name)) await rm(join(this.partialDir, name), { force: true })
    }
    return report
  }

  async close(): Promise<void> {
    for (const partial of this.partials.values()) {
      await partial.saving
      await partial.file.close().catch(() => {})
    }
    this.partials.clear()
  }

  has(hash: string): boolean {
    return this.whole.has(hash)
  }

  sizeOf(hash: string): number | undefined {
    return this.whole.get(hash)
  }

  list(): Array<{ sha256: string; size: number }> {
    return [...this.whole].map(([sha256, size]) => ({ sha256, size }))
  }

  /** Where a whole blob lives on disk (for readers such as the runtime). */
  pathOf(hash: string): string {
    if (!HASH.test(hash)) throw new ArtifactCorruptError(`"${hash}" is not a sha256`)
    return join(this.wholeDir, hash)
  }

  /**
   * Stores an uploaded blob: streamed to a temp file while hashed, refused past
   * the size limit, kept only if it hashes to `expected`.
   */
  async ingest(
    source: AsyncIterable<Uint8Array>,
    expected: string,
  ): Promise<{ created: boolean; size: number }> {
    if (!HASH.test(expected)) throw new ArtifactCorruptError(`"${expected}" is not a sha256`)
    const temp = join(this.tmpDir, randomBytes(8).toString('hex'))
    const file = await open(temp, 'wx')
    const hash = createHash('sha256')
    let size = 0
    try {
      for await (const chunk of source) {
        size += chunk.byteLength
        if (size > this.maxBytes) throw new ArtifactTooLargeError(size, this.maxBytes)
        hash.update(chunk)
        await file.write(chunk)
      }
      await file.sync()
    } catch (err) {
      await file.close()
      await rm(temp, { force: true })
      throw err
    }
    await file.close()
    const actual = hash.digest('hex')
    if (actual !== expected) {
      await rm(temp, { force: true })
      throw new ArtifactCorruptError(`uploaded bytes hash to ${actual}, not ${expected}`)
    }
    if (this.whole.has(expected)) {
      await rm(temp, { force: true })
      return { created: false, size }
    }
    await this.install(temp, expected, size)
    return { created: true, size }
  }

  /** Starts (or continues) a download of `layout`; returns the chunks already present. */
  async beginPartial(layout: BlobLayout): Promise<ChunkMap> {
    if (layout.size > this.maxBytes) throw new ArtifactTooLargeError(layout.size, this.maxBytes)
    const existing = this.partials.get(layout.sha256)
    if (existing != null) return existing.have
    if (this.whole.has(layout.sha256)) return ChunkMap.full(layout.chunks.length)
    return this.resumePartial(layout, new ChunkMap(layout.chunks.length))
  }

  /** Which chunks of `hash` (in `chunkSize` slices) this node can serve now. */
  chunkMap(hash: string, chunkSize: number): { size: number; have: ChunkMap } | null {
    const size = this.whole.get(hash)
    if (size != null) return { size, have: ChunkMap.full(Math.ceil(size / chunkSize)) }
    const partial = this.partials.get(hash)
    if (partial == null || partial.layout.chunkSize !== chunkSize) return null
    return { size: partial.layout.size, have: partial.have }
  }

  /** Reads one chunk of a whole or partial blob, or null when this node does not have it. */
  async readChunk(hash: string, index: number, chunkSize: number): Promise<Uint8Array | null> {
    const map = this.chunkMap(hash, chunkSize)
    if (map == null || !map.have.has(index)) return null
    const length = Math.min(chunkSize, map.size - index * chunkSize)
    const buffer = Buffer.alloc(length)
    const partial = this.partials.get(hash)
    if (partial != null) {
      await partial.file.read(buffer, 0, length, index * chunkSize)
      return buffer
    }
    const file = await open(this.pathOf(hash), 'r')
    try {
      await file.read(buffer, 0, length, index * chunkSize)
    } finally {
      await file.close()
    }
    return buffer
  }

  /**
   * Writes one chunk of a download after checking it against the layout; the
   * chunk is on disk (fsynced) before the index says it is there.
   */
  async writeChunk(hash: string, index: number, data: Uint8Array): Promise<void> {
    const partial = this.partials.get(hash)
    if (partial == null) return
    const { layout } = partial
    if (sha256Hex(data) !== layout.chunks[index]) {
      throw new ArtifactCorruptError(
        `chunk ${index} of ${hash.slice(0, 12)} does not match its manifest hash`,
      )
    }
    if (partial.have.has(index)) return
    await partial.file.write(data, 0, data.byteLength, index * layout.chunkSize)
    await partial.file.datasync()
    partial.have.add(index)
    await this.savePartial(partial)
  }

  /** Turns a complete download into a whole blob: verify the whole hash, rename, record. */
  async completePartial(hash: string): Promise<void> {
    const partial = this.partials.get(hash)
    if (partial == null || !partial.have.complete) return
    await partial.saving
    await partial.file.sync()
    await partial.file.close()
    this.partials.delete(hash)
    const path = join(this.partialDir, hash)
    const actual = await hashOfFile(path)
    if (actual !== hash) {
      await rm(path, { force: true })
      await this.db.del(`p:${hash}`)
      throw new ArtifactCorruptError(
        `blob ${hash.slice(0, 12)} hashes to ${actual.slice(0, 12)} though every chunk matched: the manifest is inconsistent`,
      )
    }
    await this.install(path, hash, partial.layout.size)
    await this.db.del(`p:${hash}`)
  }

  /** Drops a blob (garbage collection, or a blob found corrupt). */
  async remove(hash: string): Promise<void> {
    this.whole.delete(hash)
    const partial = this.partials.get(hash)
    if (partial != null) {
      this.partials.delete(hash)
      await partial.saving
      await partial.file.close().catch(() => {})
    }
    await this.db.batch([
      { type: 'del', key: `b:${hash}` },
      { type: 'del', key: `p:${hash}` },
    ])
    await rm(join(this.wholeDir, hash), { force: true })
    await rm(join(this.partialDir, hash), { force: true })
  }

  /** Full re-hash of every whole blob (`shoal verify`); corrupt ones are removed so they are fetched again. */
  async verifyAll(
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ checked: number; corrupt: string[] }> {
    const hashes = [...this.whole.keys()]
    const corrupt: string[] = []
    for (const [i, hash] of hashes.entries()) {
      const actual = await hashOfFile(this.pathOf(hash)).catch((err) => `unreadable: ${messageOf(err)}`)
      if (actual !== hash) {
        this.log.error('blob failed verification; removing it so it is fetched again', { blob: hash, actual })
        corrupt.push(hash)
        await this.remove(hash)
      }
      onProgress?.(i + 1, hashes.length)
    }
    return { checked: hashes.length, corrupt }
  }

  createReadStream(hash: string): NodeJS.ReadableStream {
    return createReadStream(this.pathOf(hash))
  }

  private async resumePartial(layout: BlobLayout, have: ChunkMap): Promise<ChunkMap> {
    const path = join(this.partialDir, layout.sha256)
    const file = await open(path, 'a+').then(async (f) => {
      await f.close()
      return open(path, 'r+')
    })
    // Chunks recorded before a crash are re-checked: the index is only a hint until the bytes verify.
    const buffer = Buffer.alloc(layout.chunkSize)
    for (const index of [...Array(layout.chunks.length).keys()]) {
      if (!have.has(index)) continue
      const length = Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)
      const { bytesRead } = await file.read(buffer, 0, length, index * layout.chunkSize)
      if (bytesRead !== length || sha256Hex(buffer.subarray(0, length)) !== layout.chunks[index])
        have.delete(index)
    }
    const partial: PartialBlob = { layout, have, file, saving: Promise.resolve() }
    this.partials.set(layout.sha256, partial)
    await this.savePartial(partial)
    return have
  }

  private savePartial(partial: PartialBlob): Promise<void> {
    const record = JSON.stringify({ ...partial.layout, have: partial.have.toBase64() })
    partial.saving = partial.saving.then(() => this.db.put(`p:${partial.layout.sha256}`, record))
    return partial.saving
  }

  private async install(from: string, hash: string, size: number): Promise<void> {
    await this.db.put(`j:${hash}`, '1')
    await rename(from, join(this.wholeDir, hash))
    await this.db.batch([
      { type: 'put', key: `b:${hash}`, value: JSON.stringify({ size }) },
      { type: 'del', key: `j:${hash}` },
    ])
    this.whole.set(hash, size)
  }
}

async function hashOfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const data of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>)
    hash.update(data)
  return hash.digest('hex')
}
