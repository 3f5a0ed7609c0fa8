/**
 * The Raft core's level storage on a real database: what persist() writes is what
 * load() gives back (after a reopen too), conflicting suffixes and compacted
 * entries leave the disk, a damaged log is refused, and a writer SIGKILLed at a
 * random moment leaves every batch it saw acknowledged.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fakeSigner, fakeVerifier } from '../../bench/raft-sim/keys.js'
import { SimDisk } from '../../bench/raft-sim/storage.js'
import { intBetween, mulberry32 } from '../../bench/random.js'
import { AgentState } from '../../src/bootstrap/agent-state.js'
import { entryKey, RaftStorage } from '../../src/manager/consensus/raft-storage.js'
import {
  type Entry,
  genesisSnapshot,
  handleReady,
  type PersistBatch,
  RaftNode,
  type Snapshot,
} from '../../src/manager/raft/index.js'
import { GENESIS, RaftBatches } from '../helpers/raft-batches.js'

const ROOT = resolve(import.meta.dirname, '../..')

const command = (index: number, term: number, text = `cmd ${index}`): Entry => ({
  kind: 'command',
  index,
  term,
  request: null,
  data: new TextEncoder().encode(text),
})

const batch = (fields: Partial<PersistBatch>): PersistBatch => ({
  hardState: null,
  snapshot: null,
  truncateFrom: null,
  entries: [],
  sync: true,
  ...fields,
})

const snapshotAt = (index: number, term: number): Snapshot => ({
  meta: { ...GENESIS.meta, index, term },
  data: new Uint8Array([index, term, 7]),
})

const text = (value: unknown) =>
  JSON.stringify(value, (_, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v))

let dir: string
let state: AgentState

async function open(): Promise<{ storage: RaftStorage; sub: ReturnType<AgentState['binarySublevel']> }> {
  state = new AgentState(join(dir, 'state'), dir)
  await state.open()
  const sub = state.binarySublevel('raft')
  return { storage: new RaftStorage(sub), sub }
}

async function entryKeys(sub: ReturnType<AgentState['binarySublevel']>): Promise<string[]> {
  const keys: string[] = []
  for await (const key of sub.keys({ gte: 'e', lt: 'f' })) keys.push(key)
  return keys
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-raft-storage-'))
})

afterEach(async () => {
  await state?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('RaftStorage', () => {
  it('has nothing before init(), then gives back hard state, snapshot and entries', async () => {
    const { storage } = await open()
    expect(await storage.load()).toBeNull()
    await storage.init(GENESIS)
    expect(await storage.load()).toEqual({
      hardState: { term: 0, vote: null, commit: 0 },
      snapshot: GENESIS,
      entries: [],
    })
    const hardState = { term: 2, vote: 'b', commit: 1 }
    const entries = [command(1, 1), command(2, 2), command(3, 2, '')]
    await storage.persist(batch({ hardState, truncateFrom: 1, entries }))
    const loaded = await storage.load()
    expect(loaded).toEqual({ hardState, snapshot: GENESIS, entries })
    expect(loaded!.entries[0]).toMatchObject({ data: expect.any(Uint8Array) })
    await expect(storage.init(GENESIS)).rejects.toThrow(/already stored/)
  })

  it('drops a conflicting suffix and writes the new entries in its place', async () => {
    const { storage, sub } = await open()
    await storage.init(GENESIS)
    await storage.persist(batch({ entries: [1, 2, 3, 4, 5].map((i) => command(i, 1)) }))
    const replacement = [command(3, 2, 'new 3'), command(4, 2, 'new 4')]
    await storage.persist(
      batch({ hardState: { term: 2, vote: null, commit: 2 }, truncateFrom: 3, entries: replacement }),
    )
    expect((await storage.load())!.entries).toEqual([command(1, 1), command(2, 1), ...replacement])
    expect(await entryKeys(sub)).toEqual([1, 2, 3, 4].map(entryKey))
    // A truncation with nothing after it.
    await storage.persist(batch({ truncateFrom: 2 }))
    expect((await storage.load())!.entries).toEqual([command(1, 1)])
  })

  it('stores a snapshot and drops the entries it covers', async () => {
    const { storage, sub } = await open()
    await storage.init(GENESIS)
    await storage.persist(batch({ entries: [1, 2, 3, 4, 5].map((i) => command(i, 1)) }))
    await storage.persist(batch({ snapshot: snapshotAt(3, 1) }))
    expect(await storage.load()).toMatchObject({
      snapshot: snapshotAt(3, 1),
      entries: [command(4, 1), command(5, 1)],
    })
    expect(await entryKeys(sub)).toEqual([4, 5].map(entryKey))
    // A leader's snapshot past the end replaces the whole log.
    await storage.persist(batch({ snapshot: snapshotAt(9, 2), truncateFrom: 10 }))
    expect(await storage.load()).toMatchObject({ snapshot: snapshotAt(9, 2), entries: [] })
    expect(await entryKeys(sub)).toEqual([])
    await storage.persist(batch({ entries: [command(10, 2)] }))
    expect((await storage.load())!.entries).toEqual([command(10, 2)])
  })

  it('gives the same state after a reopen, and keeps writing correctly without a load()', async () => {
    let { storage } = await open()
    await storage.init(GENESIS)
    await storage.persist(batch({ entries: [1, 2, 3, 4].map((i) => command(i, 1)) }))
    await storage.persist(batch({ snapshot: snapshotAt(2, 1), hardState: { term: 1, vote: 'a', commit: 4 } }))
    await storage.saveMeta('genesis-voters', 'a,b,c')
    const before = await storage.load()
    await state.close()
    ;({ storage } = await open())
    expect(await storage.load()).toEqual(before)
    expect(await storage.loadMeta('genesis-voters')).toBe('a,b,c')
    expect(await storage.loadMeta('nothing')).toBeNull()
    // A store that never loaded finds the log's extent on its first write.
    const fresh = new RaftStorage(state.binarySublevel('raft'))
    await fresh.persist(batch({ snapshot: snapshotAt(3, 1), truncateFrom: 4, entries: [command(4, 3)] }))
    expect(await fresh.load()).toMatchObject({ snapshot: snapshotAt(3, 1), entries: [command(4, 3)] })
  })

  it('refuses a batch that would leave a gap, and writes none of it', async () => {
    const { storage } = await open()
    await storage.init(GENESIS)
    await storage.persist(batch({ entries: [command(1, 1)] }))
    await expect(
      storage.persist(batch({ hardState: { term: 5, vote: null, commit: 0 }, entries: [command(3, 1)] })),
    ).rejects.toThrow(/would not continue/)
    expect(await storage.load()).toMatchObject({ hardState: { term: 0 }, entries: [command(1, 1)] })
  })

  it('refuses a log with a gap or a record it cannot read (ERR_RAFT_STATE_CORRUPT)', async () => {
    const { storage, sub } = await open()
    await storage.init(GENESIS)
    await storage.persist(batch({ entries: [1, 2, 3].map((i) => command(i, 1)) }))
    await sub.del(entryKey(2))
    await expect(storage.load()).rejects.toMatchObject({
      code: 'ERR_RAFT_STATE_CORRUPT',
      message: expect.stringContaining('log entry 2 is missing'),
    })
    await sub.put(entryKey(2), new Uint8Array([99, 1, 2]))
    await expect(storage.load()).rejects.toMatchObject({
      code: 'ERR_RAFT_STATE_CORRUPT',
      message: expect.stringContaining('format 99'),
    })
    await sub.del('s')
    await expect(storage.load()).rejects.toMatchObject({ code: 'ERR_RAFT_STATE_CORRUPT' })
  })

  it('matches the simulator disk over a long random sequence of batches', async () => {
    const { storage } = await open()
    await storage.init(GENESIS)
    const model = new SimDisk(GENESIS)
    const batches = new RaftBatches(42)
    for (let n = 1; n <= 400; n++) {
      const next = batches.next()
      await storage.persist(next)
      model.write(next)
      model.sync()
      // Compared as text first: a deep toEqual of the 64 KiB payloads after every batch takes a minute.
      const [loaded, expected] = [await storage.load(), model.load()]
      if (text(loaded) !== text(expected)) expect(loaded, `batch ${n}`).toEqual(expected)
    }
  })

  it('restarts a Raft node from what its Ready loop persisted', async () => {
    const { storage } = await open()
    const genesis = genesisSnapshot(['a'])
    await storage.init(genesis)
    const init = {
      id: 'a',
      cluster: 'c',
      signer: fakeSigner('a'),
      verifier: fakeVerifier,
      random: mulberry32(1),
    }
    const io = { persist: (b: PersistBatch) => storage.persist(b), send: () => {}, apply: () => {} }
    let node = new RaftNode(init, (await storage.load())!)
    const drain = async () => {
      while (await handleReady(node, io)) {}
    }
    for (let i = 0; i < 40 && node.status().role !== 'leader'; i++) {
      node.tick()
      await drain()
    }
    for (let i = 1; i <= 6; i++) {
      node.propose(new TextEncoder().encode(`k${i}`))
      await drain()
    }
    node.compact(4, new Uint8Array([4]))
    await drain()
    const before = node.status()
    node = new RaftNode(init, (await storage.load())!)
    expect(node.status()).toMatchObject({ term: before.term, snapshotIndex: 4, lastIndex: before.lastIndex })
    expect(node.entryAt(before.lastIndex)).toMatchObject({ data: new TextEncoder().encode('k6') })
  })
})

describe('RaftStorage under SIGKILL', () => {
  // Process death keeps the page cache, so this checks atomicity and acknowledged
  // writes, not fsync itself (an strace shows one fdatasync per synced batch).
  it('reopens to a contiguous log holding every batch the killed writer saw persisted', async () => {
    const random = mulberry32(Date.now() >>> 0)
    for (let round = 0; round < 4; round++) {
      const seed = intBetween(random, 1, 1_000_000)
      const folder = join(dir, `crash-${round}`)
      const child = spawn(
        process.execPath,
        [
          '--experimental-transform-types',
          '--no-warnings',
          '--import',
          join(ROOT, 'test/helpers/ts-hooks.mjs'),
          join(ROOT, 'test/helpers/raft-storage-writer.ts'),
          folder,
          String(seed),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let stderr = ''
      child.stderr.on('data', (chunk) => {
        stderr += chunk
      })
      const exited = new Promise<void>((done) => child.once('exit', () => done()))
      let acknowledged = 0
      const lines = createInterface({ input: child.stdout })
      lines.on('line', (line) => {
        acknowledged = Number(line)
      })
      // Every line the writer got out before it died, read to the end of the pipe: a loaded
      // machine can leave several unread at the kill (CI saw the log hold more than "acknowledged").
      const drained = new Promise<void>((done) => lines.once('close', () => done()))
      const first = new Promise<void>((done, fail) => {
        lines.once('line', () => done())
        void exited.then(() => fail(new Error(`writer exited before its first batch: ${stderr}`)))
      })
      await first
      await new Promise((done) => setTimeout(done, intBetween(random, 0, 400)))
      child.kill('SIGKILL')
      await exited
      await drained

      state = new AgentState(folder, folder)
      await state.open()
      const loaded = await new RaftStorage(state.binarySublevel('raft')).load()
      await state.close()
      // Durable: every acknowledged batch; maybe the one in flight too.
      const model = new SimDisk(GENESIS)
      const batches = new RaftBatches(seed)
      for (let n = 1; n <= acknowledged; n++) model.write(batches.next())
      model.sync()
      const acked = model.load()
      model.write(batches.next())
      model.sync()
      const inFlight = model.load()
      const context = `seed ${seed}, ${acknowledged} batches acknowledged`
      expect([acked, inFlight], context).toContainEqual(loaded)
    }
  })
})
