import { createHash, randomBytes } from 'node:crypto'
import { constants, createReadStream } from 'node:fs'
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractBatchOperation, AbstractSublevel } from 'abstract-level'
import type { Logger } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import { ChunkMap } from './chunk-map.js'
import { sha256Hex } from './chunking.js'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './constants.js'
import { ArtifactCorruptError, ArtifactTooLargeError, BlobTruncatedError, DiskFullError } from './errors.js'

// biome-ignore lint/suspicious/noExplicitAny: the parent database type does not matter to the store
export type StoreDb = AbstractSublevel<any, any, string, string>

/** The chunk layout of a blob, as a manifest gives it. */
export interface BlobLayout {
  sha256: string
  size: number
  chunkSize: number
  chunks: string[]
}

/** Tuning of the store; every field has a default (below). */
export interface BlobStoreInit {
  /** ms a written chunk may wait before its datasync and bitmap write (default FLUSH_MS). */
  flushMs?: number
  /** Written chunks that trigger a flush at once (default FLUSH_CHUNKS). */
  flushChunks?: number
  /** Read handles of whole blobs kept open for serving, least recently used closed first (default READ_HANDLES). */
  readHandles?: number
}

/**
 * A received chunk is servable at once but made durable in batches: one datasync
 * and one bitmap write per FLUSH_CHUNKS chunks or FLUSH_MS, whichever comes first
 * (at 1 MiB chunks, 16 MiB or 100 ms of data per sync).
 */
export const FLUSH_MS = 100
export const FLUSH_CHUNKS = 16
/** Open read handles of whole blobs: enough for every blob being served at once by a busy seed. */
export const READ_HANDLES = 32

/** A listener of chunk events: `index` -1 means the blob `hash` became whole. */
export type ChunkListener = (hash: string, index: number) => void

interface PartialBlob {
  layout: BlobLayout
  /** Chunks written and verified (servable); the persisted bitmap may lag behind it. */
  have: ChunkMap
  file: FileHandle
  /** Writes under way, by chunk index (a second writer of the same chunk waits for the first). */
  writing: Map<number, Promise<void>>
  /** Chunks written since the last flush started. */
  unflushed: number
  timer: NodeJS.Timeout | undefined
  /** The tail of the flush chain (never rejects). */
  flushing: Promise<void>
  /** A flush queued behind the running one and not started yet: later requests join it. */
  queued: Promise<void> | undefined
  completion: Promise<void> | undefined
  closed: boolean
}

interface ReadHandle {
  file: Promise<FileHandle>
  users: number
  evicted: boolean
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
 * lives in level: `b:<hash>` whole blobs, `p:<hash>` the layout of a partial one
 * (written once), `h:<hash>` its bitmap of chunks on disk (base64), `j:<hash>` the
 * journal of blobs renamed but not yet recorded. An upload goes temp file → fsync →
 * verify → rename; a download verifies every chunk against the signed manifest
 * before writing it, and is renamed into place once every chunk is there. A crash
 * at any point leaves either no blob or a whole, verified one.
 */
export class BlobStore {
  private readonly whole = new Map<string, number>()
  private readonly partials = new Map<string, PartialBlob>()
  /** Partials being opened, so concurrent beginPartial calls for one blob share one. */
  private readonly opening = new Map<string, Promise<PartialBlob>>()
  /** Open read handles of whole blobs; Map order is the LRU order (oldest first). */
  private readonly readers = new Map<string, ReadHandle>()
  private readonly listeners = new Set<ChunkListener>()
  private readonly wholeDir: string
  private readonly partialDir: string
  private readonly tmpDir: string
  private readonly flushMs: number
  private readonly flushChunks: number
  private readonly readHandles: number

  constructor(
    private readonly dir: string,
    private readonly db: StoreDb,
    private readonly log: Logger,
    private readonly maxBytes: number,
    init: BlobStoreInit = {},
  ) {
    this.wholeDir = join(dir, 'sha256')
    this.partialDir = join(dir, 'partial')
    this.tmpDir = join(dir, 'tmp')
    this.flushMs = init.flushMs ?? FLUSH_MS
    this.flushChunks = init.flushChunks ?? FLUSH_CHUNKS
    this.readHandles = init.readHandles ?? READ_HANDLES
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
          { type: 'del', key: `p:${hash}` },
          { type: 'del', key: `h:${hash}` },
        ])
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

    const saved: Array<[string, string]> = []
    for await (const entry of this.db.iterator({ gte: 'p:', lt: 'p;' })) saved.push(entry)
    for (const [key, value] of saved) {
      const hash = key.slice(2)
      if (this.whole.has(hash)) {
        await this.db.batch([
          { type: 'del', key },
          { type: 'del', key: `h:${hash}` },
        ])
        continue
      }
      // Before the layout was written once, `p:` held the layout and the bitmap (`have`) together.
      const record = JSON.parse(value) as BlobLayout & { have?: string }
      const layout = layoutOf(record)
      const bitmap = record.have ?? (await this.db.get(`h:${hash}`)) ?? ''
      await this.resumePartial(layout, ChunkMap.fromBase64(layout.chunks.length, bitmap))
      report.partials++
    }
    for (const name of await readdir(this.partialDir)) {
      if (!this.partials.has(name)) await rm(join(this.partialDir, name), { force: true })
    }
    return report
  }

  /** Flushes and closes every partial download and read handle; safe to call twice. */
  async close(): Promise<void> {
    await Promise.allSettled(this.opening.values())
    for (const partial of [...this.partials.values()]) {
      await Promise.allSettled(partial.writing.values())
      await this.flush(partial).catch((err) =>
        this.log.warn('could not record the chunks of a download at close', {
          blob: partial.layout.sha256,
          error: messageOf(err),
        }),
      )
      await this.closePartial(partial)
    }
    this.partials.clear()
    for (const hash of [...this.readers.keys()]) this.evictReader(hash)
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
   * Calls `listener` for every chunk that becomes servable (`index` ≥ 0) and with
   * index -1 when a blob becomes whole (a download completed or an upload stored).
   * A listener that throws is logged, never thrown into the store. Returns the
   * unsubscribe function.
   */
  onChunk(listener: ChunkListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
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
    const file = await open(temp, 'wx').catch(async (err: unknown) => {
      throw await this.diskFull(
        err,
        0,
        `the upload of blob ${expected.slice(0, 12)}…; free space and upload again`,
      )
    })
    const hash = createHash('sha256')
    let size = 0
    try {
      for await (const chunk of source) {
        if (size + chunk.byteLength > this.maxBytes)
          throw new ArtifactTooLargeError(size + chunk.byteLength, this.maxBytes)
        hash.update(chunk)
        try {
          await file.write(chunk)
        } catch (err) {
          throw await this.diskFull(
            err,
            chunk.byteLength,
            `the upload of blob ${expected.slice(0, 12)}… (at least; ${size} bytes written); free space and upload again`,
          )
        }
        size += chunk.byteLength
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
    await this.install(temp, expected, size, [])
    this.emit(expected, -1)
    return { created: true, size }
  }

  /**
   * Starts (or continues) a download of `layout`; returns the chunks already
   * present. Concurrent calls for one blob share one download: they get the same
   * map, which every writeChunk of the blob updates.
   */
  async beginPartial(layout: BlobLayout): Promise<ChunkMap> {
    if (layout.size > this.maxBytes) throw new ArtifactTooLargeError(layout.size, this.maxBytes)
    if (this.whole.has(layout.sha256)) return ChunkMap.full(layout.chunks.length)
    const existing = this.partials.get(layout.sha256)
    if (existing != null) return this.sameLayout(existing, layout).have
    let opening = this.opening.get(layout.sha256)
    if (opening == null) {
      opening = this.resumePartial(layoutOf(layout), new ChunkMap(layout.chunks.length)).finally(() =>
        this.opening.delete(layout.sha256),
      )
      this.opening.set(layout.sha256, opening)
    }
    return this.sameLayout(await opening, layout).have
  }

  /**
   * Which chunks of `hash` (in `chunkSize` slices) this node can serve now; null
   * when it has none, or for a chunk size outside MIN_CHUNK_SIZE..MAX_CHUNK_SIZE
   * (a peer's request is never allowed to size a map).
   */
  chunkMap(hash: string, chunkSize: number): { size: number; have: ChunkMap } | null {
    if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) return null
    const size = this.whole.get(hash)
    if (size != null) return { size, have: ChunkMap.full(Math.ceil(size / chunkSize)) }
    const partial = this.partials.get(hash)
    if (partial == null || partial.layout.chunkSize !== chunkSize) return null
    return { size: partial.layout.size, have: partial.have }
  }

  /**
   * Reads one chunk of a whole or partial blob, or null when this node does not
   * have it. A whole blob whose file turns out shorter than recorded is dropped
   * (so it is fetched again) and BlobTruncatedError thrown: never served as zeros.
   */
  async readChunk(
    hash: string,
    index: number,
    chunkSize: number,
    /** A buffer to read into (a server's pool) instead of a new one; what is answered is a view of it. */
    into?: Buffer,
  ): Promise<Uint8Array | null> {
    const bufferOf = (length: number) =>
      into != null && into.byteLength >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
    if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) return null
    if (!Number.isInteger(index) || index < 0) return null
    const size = this.whole.get(hash)
    if (size != null) {
      const position = index * chunkSize
      if (position >= size) return null
      const length = Math.min(chunkSize, size - position)
      const reader = this.reader(hash)
      let read: number
      const buffer = bufferOf(length)
      try {
        read = await reader.file.then(
          (file) => readFully(file, buffer, position),
          (err: unknown) => {
            // A file gone from disk is served by no one: the same as truncated to nothing.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
            throw err
          },
        )
      } finally {
        this.release(reader)
      }
      if (read < length) await this.truncated(hash, size, position + read)
      return buffer
    }
    const partial = this.partials.get(hash)
    if (partial == null || partial.layout.chunkSize !== chunkSize || !partial.have.has(index)) return null
    const position = index * chunkSize
    const length = Math.min(chunkSize, partial.layout.size - position)
    const buffer = bufferOf(length)
    const read = await readFully(partial.file, buffer, position)
    if (read < length) {
      partial.have.delete(index)
      this.log.error('chunk of a download is truncated on disk; it will be fetched again', {
        blob: hash,
        index,
        expected: length,
        actual: read,
      })
      throw new BlobTruncatedError(hash, partial.layout.size, position + read)
    }
    return buffer
  }

  /**
   * Writes one chunk of a download after checking it against the layout: `sha256`
   * is the chunk's digest when the caller hashed the bytes as they arrived (then
   * the store does not hash them again), otherwise the store hashes them. Resolves
   * once the chunk is written (one positional write) and servable; its datasync
   * and bitmap are batched (FLUSH_CHUNKS or FLUSH_MS), and the persisted bitmap
   * only names chunks synced before it was written. Disk full: DiskFullError, and
   * the chunk is not marked present.
   */
  async writeChunk(hash: string, index: number, data: Uint8Array, sha256?: string): Promise<void> {
    const partial = this.partials.get(hash)
    if (partial == null || partial.completion != null) return
    const { layout } = partial
    const expected = layout.chunks[index]
    if (!Number.isInteger(index) || expected == null)
      throw new ArtifactCorruptError(`blob ${hash.slice(0, 12)}… has no chunk ${index}`)
    const length = Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)
    if (data.byteLength !== length || (sha256 ?? sha256Hex(data)) !== expected) {
      throw new ArtifactCorruptError(
        `chunk ${index} of ${hash.slice(0, 12)} does not match its manifest hash`,
      )
    }
    if (partial.have.has(index)) return
    const under = partial.writing.get(index)
    if (under != null) return under
    const write = this.writeAt(partial, index, data).finally(() => partial.writing.delete(index))
    partial.writing.set(index, write)
    return write
  }

  /**
   * Turns a complete download into a whole blob: flush, rename, record. Every
   * chunk was verified against the signed manifest as it arrived, so the file is
   * not hashed again here (docs/decisions.md). Concurrent calls share one completion.
   */
  async completePartial(hash: string): Promise<void> {
    const partial = this.partials.get(hash)
    if (partial == null || !partial.have.complete) return
    if (partial.completion == null) {
      partial.completion = this.finishPartial(partial).catch((err: unknown) => {
        partial.completion = undefined
        throw err
      })
    }
    return partial.completion
  }

  /** Drops a blob (garbage collection, or a blob found corrupt). */
  async remove(hash: string): Promise<void> {
    this.whole.delete(hash)
    this.evictReader(hash)
    const partial = this.partials.get(hash)
    if (partial != null) {
      this.partials.delete(hash)
      await this.closePartial(partial)
    }
    await this.db.batch([
      { type: 'del', key: `b:${hash}` },
      { type: 'del', key: `p:${hash}` },
      { type: 'del', key: `h:${hash}` },
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

  // --- downloads -----------------------------------------------------------------------

  private sameLayout(partial: PartialBlob, layout: BlobLayout): PartialBlob {
    if (partial.layout.chunkSize !== layout.chunkSize || partial.layout.size !== layout.size) {
      throw new ArtifactCorruptError(
        `blob ${layout.sha256.slice(0, 12)}… is already being fetched in ${partial.layout.chunkSize}-byte chunks, not ${layout.chunkSize}; it is fetched once that download ends`,
      )
    }
    return partial
  }

  private async resumePartial(layout: BlobLayout, have: ChunkMap): Promise<PartialBlob> {
    const path = join(this.partialDir, layout.sha256)
    const file = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644).catch(async (err: unknown) => {
      throw await this.diskFull(
        err,
        layout.size,
        `blob ${layout.sha256.slice(0, 12)}…; free space, the download resumes on its own`,
      )
    })
    try {
      // Chunks recorded before a crash are re-checked: the index is only a hint until the bytes verify.
      const buffer = Buffer.allocUnsafe(layout.chunkSize)
      for (let index = 0; index < layout.chunks.length; index++) {
        if (!have.has(index)) continue
        const length = Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)
        const read = await readFully(file, buffer.subarray(0, length), index * layout.chunkSize)
        if (read !== length || sha256Hex(buffer.subarray(0, length)) !== layout.chunks[index])
          have.delete(index)
      }
      await this.db.batch([
        { type: 'put', key: `p:${layout.sha256}`, value: JSON.stringify(layout) },
        { type: 'put', key: `h:${layout.sha256}`, value: have.toBase64() },
      ])
    } catch (err) {
      await file.close().catch(() => {})
      throw err
    }
    const partial: PartialBlob = {
      layout,
      have,
      file,
      writing: new Map(),
      unflushed: 0,
      timer: undefined,
      flushing: Promise.resolve(),
      queued: undefined,
      completion: undefined,
      closed: false,
    }
    this.partials.set(layout.sha256, partial)
    return partial
  }

  private async writeAt(partial: PartialBlob, index: number, data: Uint8Array): Promise<void> {
    const { layout } = partial
    try {
      let done = 0
      while (done < data.byteLength) {
        const { bytesWritten } = await partial.file.write(
          data,
          done,
          data.byteLength - done,
          index * layout.chunkSize + done,
        )
        done += bytesWritten
      }
    } catch (err) {
      throw await this.diskFull(
        err,
        layout.size - bytesPresent(partial),
        `blob ${layout.sha256.slice(0, 12)}…; free space, the download resumes on its own`,
      )
    }
    if (partial.closed) return
    partial.have.add(index)
    this.emit(layout.sha256, index)
    partial.unflushed++
    if (partial.unflushed >= this.flushChunks) {
      this.flushInBackground(partial)
    } else if (partial.timer == null) {
      partial.timer = setTimeout(() => this.flushInBackground(partial), this.flushMs)
      partial.timer.unref()
    }
  }

  private flushInBackground(partial: PartialBlob): void {
    this.flush(partial).catch((err: unknown) =>
      this.log.warn('could not record the chunks of a download; they are recorded at the next flush', {
        blob: partial.layout.sha256,
        error: messageOf(err),
      }),
    )
  }

  /**
   * Makes every chunk written so far durable, then records it: datasync first,
   * then the bitmap, whose snapshot is taken before the sync (so it names only
   * chunks the sync covered). Flushes run one at a time; a request made while one
   * is queued joins it.
   */
  private flush(partial: PartialBlob): Promise<void> {
    clearTimeout(partial.timer)
    partial.timer = undefined
    if (partial.queued != null) return partial.queued
    const run = partial.flushing.then(async () => {
      partial.queued = undefined
      if (partial.closed) return
      partial.unflushed = 0
      const bitmap = partial.have.toBase64()
      await partial.file.datasync()
      if (partial.closed) return
      await this.db.put(`h:${partial.layout.sha256}`, bitmap)
    })
    partial.queued = run
    partial.flushing = run.catch(() => {})
    return run
  }

  private async finishPartial(partial: PartialBlob): Promise<void> {
    const { sha256: hash, size } = partial.layout
    await this.flush(partial)
    // The handle stays open across the rename (same inode), so reads of the partial go on until it is whole.
    await this.install(join(this.partialDir, hash), hash, size, [
      { type: 'del', key: `p:${hash}` },
      { type: 'del', key: `h:${hash}` },
    ])
    this.partials.delete(hash)
    await this.closePartial(partial)
    this.emit(hash, -1)
  }

  private async closePartial(partial: PartialBlob): Promise<void> {
    if (partial.closed) return
    partial.closed = true
    clearTimeout(partial.timer)
    partial.timer = undefined
    await Promise.allSettled(partial.writing.values())
    await partial.flushing
    await partial.file.close().catch(() => {})
  }

  private async install(
    from: string,
    hash: string,
    size: number,
    more: AbstractBatchOperation<StoreDb, string, string>[],
  ): Promise<void> {
    await this.db.put(`j:${hash}`, '1')
    await rename(from, join(this.wholeDir, hash))
    await this.db.batch([
      { type: 'put', key: `b:${hash}`, value: JSON.stringify({ size }) },
      { type: 'del', key: `j:${hash}` },
      ...more,
    ])
    this.whole.set(hash, size)
  }

  // --- serving --------------------------------------------------------------------------

  /** The pooled read handle of a whole blob, opened on first use; the caller releases it. */
  private reader(hash: string): ReadHandle {
    let reader = this.readers.get(hash)
    if (reader != null) {
      this.readers.delete(hash)
    } else {
      const created: ReadHandle = { file: open(this.pathOf(hash), 'r'), users: 0, evicted: false }
      // A handle whose open failed is not kept: the next read tries again.
      created.file.catch(() => {
        if (this.readers.get(hash) === created) this.readers.delete(hash)
      })
      reader = created
    }
    this.readers.set(hash, reader)
    reader.users++
    if (this.readers.size > this.readHandles) {
      const [oldest] = this.readers.keys()
      if (oldest != null) this.evictReader(oldest)
    }
    return reader
  }

  private release(reader: ReadHandle): void {
    reader.users--
    if (reader.evicted && reader.users === 0) void closeHandle(reader.file)
  }

  private evictReader(hash: string): void {
    const reader = this.readers.get(hash)
    if (reader == null) return
    this.readers.delete(hash)
    reader.evicted = true
    if (reader.users === 0) void closeHandle(reader.file)
  }

  private async truncated(hash: string, expected: number, actual: number): Promise<never> {
    // Only the first reader to notice logs and drops it; the others just fail.
    if (this.whole.get(hash) === expected) {
      this.log.error('blob is truncated on disk; dropping it, it will be fetched again', {
        blob: hash,
        expected,
        actual,
      })
      await this.remove(hash)
    }
    throw new BlobTruncatedError(hash, expected, actual)
  }

  // --- events and errors ------------------------------------------------------------------

  private emit(hash: string, index: number): void {
    for (const listener of this.listeners) {
      try {
        listener(hash, index)
      } catch (err) {
        this.log.warn('chunk listener failed', { blob: hash, index, error: messageOf(err) })
      }
    }
  }

  /** `err` as DiskFullError when it is ENOSPC or EDQUOT (with the space free now), else `err` itself. */
  private async diskFull(err: unknown, needed: number, what: string): Promise<unknown> {
    const code = (err as NodeJS.ErrnoException | null)?.code
    if (code !== 'ENOSPC' && code !== 'EDQUOT') return err
    const free = await statfs(this.dir).then(
      (s) => s.bavail * s.bsize,
      () => -1,
    )
    return new DiskFullError(this.dir, free, needed, what, { cause: err })
  }
}

function layoutOf(layout: BlobLayout): BlobLayout {
  return { sha256: layout.sha256, size: layout.size, chunkSize: layout.chunkSize, chunks: layout.chunks }
}

/** Bytes of a download already written. */
function bytesPresent({ layout, have }: PartialBlob): number {
  const last = layout.chunks.length - 1
  const tail = have.has(last) ? layout.chunkSize * layout.chunks.length - layout.size : 0
  return have.size * layout.chunkSize - tail
}

/** Reads until `buffer` is full or the file ends; returns the bytes read. */
async function readFully(file: FileHandle, buffer: Uint8Array, position: number): Promise<number> {
  let done = 0
  while (done < buffer.byteLength) {
    const { bytesRead } = await file.read(buffer, done, buffer.byteLength - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

async function closeHandle(file: Promise<FileHandle>): Promise<void> {
  await file.then(
    (f) => f.close(),
    () => {},
  )
}

async function hashOfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const data of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>)
    hash.update(data)
  return hash.digest('hex')
}
