/**
 * The Raft core's durable storage in `level` (docs/raft.md, "Storage keeps what
 * it acknowledged"): the hard state, the snapshot and the log entries after it,
 * each Ready's PersistBatch written as one atomic level batch, synced (fdatasync
 * of LevelDB's log) when the batch asks for it.
 *
 * Keys, in a sublevel with byte values (AgentState.binarySublevel):
 *   e<index, 16 digits>  one entry; zero padding makes key order index order
 *   h                    the hard state
 *   m!<name>             small metadata (saveMeta)
 *   s                    the snapshot
 * Values: a format byte, then node:v8's serialization of the record. It is this
 * node's own disk, read only by this code, and v8 keeps Uint8Array and plain
 * objects as they are; the format byte lets a later encoding be told apart.
 */
import { deserialize, serialize } from 'node:v8'
import {
  CorruptStateError,
  type Entry,
  type HardState,
  type PersistBatch,
  type PersistedState,
  type Snapshot,
} from '../raft/index.js'

/** The format byte of every record this version writes. */
export const RAFT_STORAGE_FORMAT = 1

const HARD_STATE = 'h'
const SNAPSHOT = 's'
const META = 'm!'
const ENTRY = 'e'
/** Number.MAX_SAFE_INTEGER has 16 digits. */
const INDEX_DIGITS = 16
/** Every entry key: 'e' followed by digits sorts between 'e' and 'f'. */
const ENTRY_RANGE = { gte: ENTRY, lt: 'f' } as const

export type RaftStorageOperation =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: string }

export interface RaftStorageRange {
  readonly gte?: string
  readonly lt?: string
  readonly limit?: number
  readonly reverse?: boolean
}

/**
 * What the store uses of its sublevel. `sync` reaches LevelDB through a sublevel's
 * batch (abstract-level forwards the options to the root's batch), though the
 * sublevel typings do not declare it.
 */
export interface RaftStorageDb {
  get(key: string): Promise<Uint8Array | undefined>
  batch(operations: RaftStorageOperation[], options: { sync: boolean }): Promise<void>
  iterator(options: RaftStorageRange): AsyncIterable<[string, Uint8Array]>
  keys(options: RaftStorageRange): AsyncIterable<string>
}

export function entryKey(index: number): string {
  return ENTRY + String(index).padStart(INDEX_DIGITS, '0')
}

/**
 * What is on disk, known after load() or init() so that a write computes its
 * deletes without a scan: the snapshot's index and the stored entries'
 * bounds, `to` being `snapshot` when no entry follows it.
 */
interface Extent {
  readonly snapshot: number
  readonly from: number
  readonly to: number
}

export class RaftStorage {
  /** null: not known (before the first load, or after a failed write); found again with two key lookups. */
  private extent: Extent | null = null
  /** Writes and loads one at a time: each one's deletes depend on the extent the previous one left. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly db: RaftStorageDb) {}

  /**
   * What the core starts from; null when nothing was ever stored (then init()).
   * Throws CorruptStateError when the log has a gap, a record cannot be read, or
   * a part is missing: none of these can come from a crash (every write is one
   * atomic batch), so they mean a damaged disk or a bug. Cutting the log at a
   * gap is not safe: the entries after it may have been acknowledged to a leader
   * and counted in a commit majority, and a node that forgets them can vote for a
   * leader that lacks a committed entry.
   */
  load(): Promise<PersistedState | null> {
    return this.exclusive(async () => {
      const [hardBytes, snapshotBytes] = await Promise.all([this.db.get(HARD_STATE), this.db.get(SNAPSHOT)])
      const stored: Entry[] = []
      for await (const [key, value] of this.db.iterator(ENTRY_RANGE)) stored.push(decodeEntry(value, key))
      if (hardBytes === undefined && snapshotBytes === undefined && stored.length === 0) return null
      if (snapshotBytes === undefined)
        throw new CorruptStateError(
          'a hard state or entries but no snapshot (the first write must be init())',
        )
      if (hardBytes === undefined) throw new CorruptStateError('a snapshot but no hard state')
      const snapshot = decodeSnapshot(snapshotBytes)
      const hardState = decodeHardState(hardBytes)
      const base = snapshot.meta.index
      // Entries the snapshot covers: no batch leaves any (it deletes them with the snapshot); harmless if one did.
      const entries = stored.filter((entry) => entry.index > base)
      let expected = base + 1
      for (const entry of entries) {
        if (entry.index !== expected)
          throw new CorruptStateError(
            `log entry ${expected} is missing (the log after snapshot ${base} jumps to ${entry.index})`,
          )
        expected++
      }
      this.extent = { snapshot: base, from: stored[0]?.index ?? base + 1, to: entries.at(-1)?.index ?? base }
      return { hardState, snapshot, entries }
    })
  }

  /**
   * Writes one Ready's batch as one level batch, in the contract's order:
   * the snapshot (and deletes the entries it covers), deletes from
   * `truncateFrom`, puts `entries` (replacing any stored from their first
   * index), puts the hard state. Synced when `batch.sync`. Refuses, before
   * writing anything, entries that would leave a gap.
   */
  persist(batch: PersistBatch): Promise<void> {
    return this.exclusive(async () => {
      let { snapshot, from, to } = this.extent ?? (await this.findExtent())
      const ops: RaftStorageOperation[] = []
      if (batch.snapshot != null) {
        const index = batch.snapshot.meta.index
        ops.push({ type: 'put', key: SNAPSHOT, value: encode(batch.snapshot) })
        for (let i = from; i <= Math.min(to, index); i++) ops.push({ type: 'del', key: entryKey(i) })
        snapshot = index
        from = Math.max(from, index + 1)
        to = Math.max(to, index)
      }
      const first = batch.entries[0]?.index
      const cut = Math.min(batch.truncateFrom ?? Number.POSITIVE_INFINITY, first ?? Number.POSITIVE_INFINITY)
      if (cut <= to) {
        for (let i = Math.max(cut, from); i <= to; i++) ops.push({ type: 'del', key: entryKey(i) })
        to = Math.max(snapshot, cut - 1)
      }
      if (first !== undefined) {
        if (first !== to + 1 || first <= snapshot)
          throw new Error(
            `persist: entries from ${first} would not continue the stored log (snapshot ${snapshot}, last entry ${to})`,
          )
        for (const entry of batch.entries) {
          if (entry.index !== to + 1)
            throw new Error(`persist: entry ${entry.index} where ${to + 1} was expected`)
          ops.push({ type: 'put', key: entryKey(entry.index), value: encode(entry) })
          to = entry.index
        }
      }
      if (batch.hardState != null) ops.push({ type: 'put', key: HARD_STATE, value: encode(batch.hardState) })
      if (ops.length === 0) return
      await this.write(ops, batch.sync, { snapshot, from: Math.min(from, to + 1), to })
    })
  }

  /**
   * Stores the first snapshot (the genesis) of a node that has no Raft state,
   * with a hard state of its term and no vote, synced. Throws if anything is
   * stored: it never overwrites a log.
   */
  init(snapshot: Snapshot): Promise<void> {
    return this.exclusive(async () => {
      const [hard, snap] = await Promise.all([this.db.get(HARD_STATE), this.db.get(SNAPSHOT)])
      if (hard !== undefined || snap !== undefined || (await this.edgeIndex(false)) !== null)
        throw new Error('Raft state is already stored; init() is only for a node that has none')
      const { index, term } = snapshot.meta
      const hardState: HardState = { term, vote: null, commit: index }
      const ops: RaftStorageOperation[] = [
        { type: 'put', key: SNAPSHOT, value: encode(snapshot) },
        { type: 'put', key: HARD_STATE, value: encode(hardState) },
      ]
      await this.write(ops, true, { snapshot: index, from: index + 1, to: index })
    })
  }

  /**
   * Forgets the whole log and starts again from `snapshot`, in one synced batch
   * (`shoal voters reset`, or following a cluster that was reset: a new genesis).
   */
  reset(snapshot: Snapshot): Promise<void> {
    return this.exclusive(async () => {
      const ops: RaftStorageOperation[] = [{ type: 'del', key: HARD_STATE }]
      for await (const key of this.db.keys(ENTRY_RANGE)) ops.push({ type: 'del', key })
      const { index, term } = snapshot.meta
      const hardState: HardState = { term, vote: null, commit: index }
      ops.push({ type: 'put', key: SNAPSHOT, value: encode(snapshot) })
      ops.push({ type: 'put', key: HARD_STATE, value: encode(hardState) })
      await this.write(ops, true, { snapshot: index, from: index + 1, to: index })
    })
  }

  /** Forgets everything (a node gives up a log it founded alone), synced: load() answers null again. */
  clear(): Promise<void> {
    return this.exclusive(async () => {
      const ops: RaftStorageOperation[] = [
        { type: 'del', key: HARD_STATE },
        { type: 'del', key: SNAPSHOT },
      ]
      for await (const key of this.db.keys(ENTRY_RANGE)) ops.push({ type: 'del', key })
      this.extent = null
      await this.db.batch(ops, { sync: true })
    })
  }

  /** A small value kept beside the log (e.g. the cluster's genesis voters), synced. */
  async saveMeta(key: string, value: string): Promise<void> {
    await this.db.batch([{ type: 'put', key: META + key, value: encode(value) }], { sync: true })
  }

  async loadMeta(key: string): Promise<string | null> {
    const bytes = await this.db.get(META + key)
    if (bytes === undefined) return null
    const value = decode(bytes, `metadata ${key}`)
    if (typeof value !== 'string') throw new CorruptStateError(`metadata ${key} is not a string`)
    return value
  }

  private async write(ops: RaftStorageOperation[], sync: boolean, after: Extent): Promise<void> {
    this.extent = null
    await this.db.batch(ops, { sync })
    this.extent = after
  }

  /** The extent without load(): the snapshot's index and the first and last entry keys. */
  private async findExtent(): Promise<Extent> {
    const bytes = await this.db.get(SNAPSHOT)
    if (bytes === undefined) throw new Error('persist: no Raft state is stored; call init() first')
    const snapshot = decodeSnapshot(bytes).meta.index
    const first = await this.edgeIndex(false)
    const last = await this.edgeIndex(true)
    return first === null || last === null
      ? { snapshot, from: snapshot + 1, to: snapshot }
      : { snapshot, from: first, to: Math.max(last, snapshot) }
  }

  private async edgeIndex(reverse: boolean): Promise<number | null> {
    for await (const key of this.db.keys({ ...ENTRY_RANGE, limit: 1, reverse })) return indexOfKey(key)
    return null
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task)
    this.queue = run.catch(() => {})
    return run
  }
}

function encode(record: unknown): Uint8Array {
  const body = serialize(record)
  const bytes = new Uint8Array(1 + body.byteLength)
  bytes[0] = RAFT_STORAGE_FORMAT
  bytes.set(body, 1)
  return bytes
}

function decode(bytes: Uint8Array, what: string): unknown {
  if (bytes[0] !== RAFT_STORAGE_FORMAT)
    throw new CorruptStateError(
      `${what} has format ${bytes[0] ?? 'none'}, this Shoal reads format ${RAFT_STORAGE_FORMAT} (written by a newer Shoal?)`,
    )
  try {
    return deserialize(bytes.subarray(1))
  } catch (err) {
    throw new CorruptStateError(`${what} cannot be decoded (${(err as Error).message})`)
  }
}

function indexOfKey(key: string): number {
  const index = Number(key.slice(ENTRY.length))
  if (key.length !== ENTRY.length + INDEX_DIGITS || !Number.isSafeInteger(index))
    throw new CorruptStateError(`unexpected key ${JSON.stringify(key)} among the log entries`)
  return index
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null

function decodeEntry(bytes: Uint8Array, key: string): Entry {
  const index = indexOfKey(key)
  const entry = decode(bytes, `log entry ${index}`)
  if (
    !isRecord(entry) ||
    entry.index !== index ||
    typeof entry.term !== 'number' ||
    typeof entry.kind !== 'string'
  )
    throw new CorruptStateError(`log entry ${index} is not an entry of that index`)
  return entry as unknown as Entry
}

function decodeSnapshot(bytes: Uint8Array): Snapshot {
  const snapshot = decode(bytes, 'the snapshot')
  if (
    !isRecord(snapshot) ||
    !isRecord(snapshot.meta) ||
    typeof snapshot.meta.index !== 'number' ||
    typeof snapshot.meta.term !== 'number' ||
    !(snapshot.data instanceof Uint8Array)
  )
    throw new CorruptStateError('the snapshot record is not a snapshot')
  return snapshot as unknown as Snapshot
}

function decodeHardState(bytes: Uint8Array): HardState {
  const hard = decode(bytes, 'the hard state')
  if (
    !isRecord(hard) ||
    typeof hard.term !== 'number' ||
    typeof hard.commit !== 'number' ||
    !(hard.vote === null || typeof hard.vote === 'string')
  )
    throw new CorruptStateError('the hard state record is not a hard state')
  return hard as unknown as HardState
}
