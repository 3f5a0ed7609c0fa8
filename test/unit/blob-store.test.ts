import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BlobStore } from '../../src/artifacts/blob-store.js'
import { digestFile, sha256Hex } from '../../src/artifacts/chunking.js'
import { silentLogger } from '../../src/shared/logger.js'

async function* bytes(data: Uint8Array) {
  yield data.subarray(0, 1000)
  yield data.subarray(1000)
}

describe('BlobStore', () => {
  let dir: string
  let db: Level<string, string>
  const openStore = async (max = 10_000_000) => {
    const store = new BlobStore(
      join(dir, 'blobs'),
      db.sublevel<string, string>('blobs', {}),
      silentLogger,
      max,
    )
    const report = await store.open()
    return { store, report }
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-blobs-'))
    db = new Level(join(dir, 'db'))
    await db.open()
  })
  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('ingests verified uploads and refuses wrong hashes and oversized ones', async () => {
    const { store } = await openStore(5_000)
    const data = randomBytes(3000)
    expect(await store.ingest(bytes(data), sha256Hex(data))).toEqual({ created: true, size: 3000 })
    expect(await store.ingest(bytes(data), sha256Hex(data))).toEqual({ created: false, size: 3000 })
    await expect(store.ingest(bytes(data), 'f'.repeat(64))).rejects.toMatchObject({
      code: 'ERR_ARTIFACT_CORRUPT',
    })
    const big = randomBytes(6000)
    await expect(store.ingest(bytes(big), sha256Hex(big))).rejects.toMatchObject({
      code: 'ERR_ARTIFACT_TOO_LARGE',
    })
    expect(store.list()).toEqual([{ sha256: sha256Hex(data), size: 3000 }])
  })

  it('assembles a download chunk by chunk, refusing chunks that do not match', async () => {
    const { store } = await openStore()
    const data = randomBytes(40_000)
    await writeFile(join(dir, 'src'), data)
    const digest = await digestFile(join(dir, 'src'), 16_384)
    expect(digest.chunks).toHaveLength(3)
    const have = await store.beginPartial(digest)
    await expect(store.writeChunk(digest.sha256, 0, randomBytes(16_384))).rejects.toMatchObject({
      code: 'ERR_ARTIFACT_CORRUPT',
    })
    for (const i of [2, 0, 1])
      await store.writeChunk(digest.sha256, i, data.subarray(i * 16_384, (i + 1) * 16_384))
    expect(have.complete).toBe(true)
    await store.completePartial(digest.sha256)
    expect(await readFile(store.pathOf(digest.sha256))).toEqual(data)
  })

  it('resumes a partial download after a restart with only the chunks that still verify', async () => {
    let { store } = await openStore()
    const data = randomBytes(50_000)
    await writeFile(join(dir, 'src'), data)
    const digest = await digestFile(join(dir, 'src'), 16_384)
    await store.beginPartial(digest)
    await store.writeChunk(digest.sha256, 0, data.subarray(0, 16_384))
    await store.writeChunk(digest.sha256, 1, data.subarray(16_384, 32_768))
    await store.close()
    // Damage chunk 1 on disk while the agent is down.
    const file = await open(join(dir, 'blobs', 'partial', digest.sha256), 'r+')
    await file.write(Buffer.from('garbage'), 0, 7, 20_000)
    await file.close()
    ;({ store } = await openStore())
    const have = await store.beginPartial(digest)
    expect(have.missing()).toEqual([1, 2, 3])
  })

  it('recovers a blob renamed into place just before a crash (journal), and drops truncated ones', async () => {
    let { store } = await openStore()
    const data = randomBytes(5000)
    const hash = sha256Hex(data)
    await store.ingest(bytes(data), hash)
    const other = randomBytes(7000)
    const otherHash = sha256Hex(other)
    await store.ingest(bytes(other), otherHash)
    await store.close()
    // A crash between rename and index update: file in place, journal entry, no index entry.
    const sub = db.sublevel<string, string>('blobs', {})
    await sub.batch([
      { type: 'del', key: `b:${hash}` },
      { type: 'put', key: `j:${hash}`, value: '1' },
    ])
    // And the other blob truncated behind the store's back.
    await writeFile(join(dir, 'blobs', 'sha256', otherHash), other.subarray(0, 100))
    const reopened = await openStore()
    store = reopened.store
    expect(reopened.report.recovered).toEqual([hash])
    expect(reopened.report.dropped).toEqual([otherHash])
    expect(store.has(hash)).toBe(true)
    expect(store.has(otherHash)).toBe(false)
  })

  it('finds and removes corrupt blobs on a full verification', async () => {
    const { store } = await openStore()
    const data = randomBytes(5000)
    const hash = sha256Hex(data)
    await store.ingest(bytes(data), hash)
    const flipped = Buffer.from(data)
    flipped[10] = flipped[10]! ^ 0xff
    await writeFile(store.pathOf(hash), flipped)
    expect(await store.verifyAll()).toEqual({ checked: 1, corrupt: [hash] })
    expect(store.has(hash)).toBe(false)
  })
})
