/**
 * A seeded sequence of PersistBatches of the kinds the Raft core writes: appends,
 * a new leader's conflicting suffix, compaction snapshots, an installed snapshot
 * past the log's end, vote and term changes, unsynced commit hints. The same seed
 * gives the same batches, so a test can replay what a killed writer wrote.
 */
import { intBetween, mulberry32, type Random } from '../../bench/random.js'
import {
  type Entry,
  genesisSnapshot,
  type HardState,
  type PersistBatch,
  type Snapshot,
} from '../../src/manager/raft/index.js'

export const GENESIS = genesisSnapshot(['a', 'b', 'c'])

function bytes(random: Random, size: number): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = Math.floor(random() * 256)
  return out
}

export class RaftBatches {
  private readonly random: Random
  private snapshot = GENESIS.meta.index
  /** Terms of the entries after the snapshot, in index order. */
  private terms: number[] = []
  private hard: HardState = { term: 0, vote: null, commit: 0 }

  constructor(seed: number) {
    this.random = mulberry32(seed)
  }

  private get last(): number {
    return this.snapshot + this.terms.length
  }

  private termAt(index: number): number {
    return this.terms[index - this.snapshot - 1]!
  }

  private entries(from: number, count: number, term: number): Entry[] {
    // Mostly small commands, now and then a large one so LevelDB flushes its memtable mid-run.
    return Array.from({ length: count }, (_, i) => ({
      kind: 'command' as const,
      index: from + i,
      term,
      request: { client: 'c', seq: from + i },
      data: bytes(this.random, this.random() < 0.05 ? 64 * 1024 : intBetween(this.random, 0, 300)),
    }))
  }

  private snapshotAt(index: number, term: number): Snapshot {
    return {
      meta: { ...GENESIS.meta, index, term },
      data: bytes(this.random, intBetween(this.random, 1, 2000)),
    }
  }

  next(): PersistBatch {
    const roll = this.random()
    const { term } = this.hard
    if (roll < 0.08 || term === 0) {
      // A new term and a vote.
      this.hard = { term: term + 1, vote: this.random() < 0.5 ? 'a' : 'b', commit: this.hard.commit }
      return { hardState: this.hard, snapshot: null, truncateFrom: null, entries: [], sync: true }
    }
    if (roll < 0.16 && this.last > this.hard.commit) {
      // A new leader overwrites an uncommitted suffix.
      const from = intBetween(this.random, Math.max(this.snapshot, this.hard.commit) + 1, this.last)
      this.hard = { term: term + 1, vote: null, commit: this.hard.commit }
      const entries = this.entries(from, intBetween(this.random, 0, 3), term + 1)
      this.terms = [...this.terms.slice(0, from - this.snapshot - 1), ...entries.map((e) => e.term)]
      return { hardState: this.hard, snapshot: null, truncateFrom: from, entries, sync: true }
    }
    if (roll < 0.24 && this.hard.commit > this.snapshot) {
      // Compaction up to a committed index.
      const index = intBetween(this.random, this.snapshot + 1, this.hard.commit)
      const snapshot = this.snapshotAt(index, this.termAt(index))
      this.terms = this.terms.slice(index - this.snapshot)
      this.snapshot = index
      return { hardState: null, snapshot, truncateFrom: null, entries: [], sync: true }
    }
    if (roll < 0.27) {
      // A leader's snapshot past this log's end: the whole log is replaced.
      const index = this.last + intBetween(this.random, 1, 5)
      const snapshot = this.snapshotAt(index, term)
      this.snapshot = index
      this.terms = []
      this.hard = { ...this.hard, commit: index }
      return { hardState: this.hard, snapshot, truncateFrom: index + 1, entries: [], sync: true }
    }
    if (roll < 0.32 && this.hard.commit < this.last) {
      // Only the commit hint moved: unsynced.
      this.hard = { ...this.hard, commit: this.last }
      return { hardState: this.hard, snapshot: null, truncateFrom: null, entries: [], sync: false }
    }
    // Append, committing part of what was there.
    const entries = this.entries(this.last + 1, intBetween(this.random, 1, 4), term)
    const truncateFrom = entries[0]!.index
    this.terms.push(...entries.map((e) => e.term))
    this.hard = {
      ...this.hard,
      commit: intBetween(this.random, this.hard.commit, this.last - entries.length),
    }
    return { hardState: this.hard, snapshot: null, truncateFrom, entries, sync: true }
  }
}
