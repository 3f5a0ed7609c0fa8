/**
 * The replicated log as one node holds it: the latest snapshot, the entries after
 * it, what is committed and applied, and what still has to reach the disk.
 *
 * Index i ≥ 1 holds one entry; index 0 is the genesis snapshot's. Entries up to
 * the snapshot's index are compacted away; the snapshot's term answers for its
 * index so the consistency check works across compaction.
 *
 * Durability is tracked, not performed: `unpersistedFrom` is the first index the
 * next Ready must (re)write, `stable` the last index known durable. Only the
 * leader's commit rule reads `stable` (a leader counts itself towards a majority
 * only for entries on its own disk).
 */
import { CorruptStateError } from './errors.js'
import type { ConfigRecord, Entry, Snapshot, SnapshotMeta } from './types.js'

/** How many configuration records a snapshot keeps behind its own (a lagging node's chain, certificate.ts). */
export const DEFAULT_CONFIG_HISTORY = 64

export function recordOf(entry: Entry & { kind: 'config' }): ConfigRecord {
  return {
    index: entry.index,
    term: entry.term,
    config: entry.config,
    certificate: entry.certificate,
    signature: entry.signature,
  }
}

/** An entry's weight for message batching: its payload plus a fixed overhead. */
export function entrySize(entry: Entry): number {
  return 64 + (entry.kind === 'command' ? entry.data.byteLength : 512)
}

/** What a Ready writes: see PersistBatch in ready.ts. */
export interface LogWrite {
  readonly snapshot: Snapshot | null
  readonly truncateFrom: number | null
  readonly entries: readonly Entry[]
}

export class RaftLog {
  private snap: Snapshot
  private entries: Entry[]
  /** Positions (log indexes) of the config entries in `entries`, ascending. */
  private configIndexes: number[] = []
  committed: number
  applied: number
  /** Last index known to be on this node's disk. */
  stable: number
  private unpersistedFrom = Number.POSITIVE_INFINITY
  /** A snapshot to write (compaction or install), and one to hand to the state machine (install). */
  private snapshotToPersist: Snapshot | null = null
  private snapshotToRestore: Snapshot | null = null
  /** Lowest index truncated since the last hand-out: what was handed out from there on is not durable as such. */
  private truncatedSinceHandOut = Number.POSITIVE_INFINITY
  private handedOutLast = 0

  constructor(
    snapshot: Snapshot,
    entries: readonly Entry[],
    commit: number,
    applied: number,
    private readonly configHistory = DEFAULT_CONFIG_HISTORY,
  ) {
    this.snap = snapshot
    let expected = snapshot.meta.index + 1
    let term = snapshot.meta.term
    for (const entry of entries) {
      if (entry.index !== expected)
        throw new CorruptStateError(`entry ${entry.index} where ${expected} was expected`)
      if (entry.term < term)
        throw new CorruptStateError(`entry ${entry.index} has term ${entry.term} after term ${term}`)
      term = entry.term
      expected++
    }
    this.entries = [...entries]
    this.reindexConfigs()
    this.stable = this.lastIndex()
    this.committed = Math.max(snapshot.meta.index, Math.min(commit, this.lastIndex()))
    this.applied = Math.max(snapshot.meta.index, Math.min(applied, this.committed))
  }

  get snapshot(): Snapshot {
    return this.snap
  }

  firstIndex(): number {
    return this.snap.meta.index + 1
  }

  lastIndex(): number {
    return this.snap.meta.index + this.entries.length
  }

  lastTerm(): number {
    return this.entries.at(-1)?.term ?? this.snap.meta.term
  }

  /** The term at `index`, or undefined when it is compacted away or past the end. */
  term(index: number): number | undefined {
    if (index === this.snap.meta.index) return this.snap.meta.term
    return this.entry(index)?.term
  }

  entry(index: number): Entry | undefined {
    return this.entries[index - this.snap.meta.index - 1]
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term
  }

  /** Raft's "at least as up-to-date" rule (§5.4.1): compare last terms, then lengths. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm()
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex())
  }

  /** Entries [from, through], at most `maxEntries` and about `maxBytes` (always at least one). */
  slice(from: number, through: number, maxEntries: number, maxBytes: number): Entry[] {
    const out: Entry[] = []
    let bytes = 0
    for (let i = from; i <= through && out.length < maxEntries; i++) {
      const entry = this.entry(i)
      if (entry === undefined) break
      bytes += entrySize(entry)
      if (out.length > 0 && bytes > maxBytes) break
      out.push(entry)
    }
    return out
  }

  /** The leader appends its own entries at the end. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    const first = entries[0]!.index
    if (first !== this.lastIndex() + 1)
      throw new Error(`append at ${first} to a log ending at ${this.lastIndex()}`)
    for (const entry of entries) this.push(entry)
    this.unpersistedFrom = Math.min(this.unpersistedFrom, first)
  }

  /**
   * A follower takes a leader's entries after (prevIndex, prevTerm). Returns the
   * index of the last entry the leader sent (what now matches it), or null when
   * the log does not hold (prevIndex, prevTerm).
   */
  tryAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | null {
    // The committed prefix matches every leader's log: skip what overlaps it.
    if (prevIndex < this.committed) {
      const skip = this.committed - prevIndex
      if (skip >= entries.length) return this.committed
      entries = entries.slice(skip)
      prevIndex = this.committed
      prevTerm = this.term(prevIndex)!
    } else if (!this.matchTerm(prevIndex, prevTerm)) return null
    const lastNew = prevIndex + entries.length
    for (const entry of entries) {
      const mine = this.term(entry.index)
      if (mine === entry.term) continue
      if (mine !== undefined) {
        // Log Matching: a conflict below the commit index means a second leader wrote there.
        if (entry.index <= this.committed)
          throw new Error(`conflict at committed index ${entry.index} (commit ${this.committed})`)
        this.truncateFrom(entry.index)
      }
      const at = entries.indexOf(entry)
      const rest = entries.slice(at)
      for (const e of rest) this.push(e)
      this.unpersistedFrom = Math.min(this.unpersistedFrom, entry.index)
      break
    }
    return lastNew
  }

  /** Where a leader should look after this node refused (prevIndex, ·): fast back-off (§5.3). */
  conflictHint(prevIndex: number): { conflictIndex: number; conflictTerm: number | null } {
    if (prevIndex > this.lastIndex()) return { conflictIndex: this.lastIndex() + 1, conflictTerm: null }
    const term = this.term(prevIndex)
    if (term === undefined) return { conflictIndex: this.firstIndex(), conflictTerm: null }
    let first = prevIndex
    while (first - 1 > this.snap.meta.index && this.term(first - 1) === term) first--
    return { conflictIndex: first, conflictTerm: term }
  }

  /** The last index at or below `atMost` whose term is `term`, or null when the log has no entry of that term there. */
  lastIndexOfTerm(term: number, atMost: number): number | null {
    let i = Math.min(atMost, this.lastIndex())
    while (i > this.snap.meta.index && this.term(i)! > term) i--
    return this.term(i) === term ? i : null
  }

  commitTo(index: number): boolean {
    const to = Math.min(index, this.lastIndex())
    if (to <= this.committed) return false
    this.committed = to
    return true
  }

  latestConfig(): ConfigRecord {
    const at = this.configIndexes.at(-1)
    return at === undefined ? this.snap.meta.config : recordOf(this.entry(at) as Entry & { kind: 'config' })
  }

  committedConfig(): ConfigRecord {
    for (let k = this.configIndexes.length - 1; k >= 0; k--) {
      const at = this.configIndexes[k]!
      if (at <= this.committed) return recordOf(this.entry(at) as Entry & { kind: 'config' })
    }
    return this.snap.meta.config
  }

  /** Index of the newest config entry not yet committed, or null. */
  pendingConfigIndex(): number | null {
    const at = this.configIndexes.at(-1)
    return at !== undefined && at > this.committed ? at : null
  }

  /** The configuration records after `index`, oldest first, as far back as this node keeps them. */
  configChainAfter(index: number): ConfigRecord[] {
    const records = [...this.snap.meta.history, this.snap.meta.config]
    for (const at of this.configIndexes) records.push(recordOf(this.entry(at) as Entry & { kind: 'config' }))
    return records.filter((r) => r.index > index)
  }

  /**
   * The state machine saved itself as of `index` (≤ applied): keep that as the
   * snapshot and drop the entries it covers. Returns false when there is nothing to compact.
   */
  compact(index: number, data: Uint8Array): boolean {
    if (index <= this.snap.meta.index) return false
    if (index > this.applied) throw new Error(`cannot compact to ${index}: only ${this.applied} applied`)
    const meta = this.metaAt(index)
    this.entries = this.entries.slice(index - this.snap.meta.index)
    this.snap = { meta, data }
    this.snapshotToPersist = this.snap
    this.reindexConfigs()
    return true
  }

  /**
   * A leader's snapshot for an index past this node's commit. The entries after
   * it are kept when the log agrees with the snapshot at its index; otherwise the
   * whole log is replaced. The state machine must restore it (Ready.apply).
   */
  restore(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta
    if (this.matchTerm(index, term)) {
      this.entries = this.entries.slice(index - this.snap.meta.index)
    } else {
      this.truncatedSinceHandOut = Math.min(this.truncatedSinceHandOut, index + 1)
      this.entries = []
      this.unpersistedFrom = Math.min(this.unpersistedFrom, index + 1)
      this.stable = Math.min(this.stable, index)
    }
    this.snap = snapshot
    this.snapshotToPersist = snapshot
    this.snapshotToRestore = snapshot
    this.committed = Math.max(this.committed, index)
    this.applied = Math.max(this.applied, index)
    this.reindexConfigs()
  }

  hasUnpersisted(): boolean {
    return (
      this.snapshotToPersist != null || this.unpersistedFrom <= this.lastIndex() || this.pendingTruncation()
    )
  }

  /** Hands out what must be written now; `markDurable` later confirms it reached the disk. */
  takeWrite(): LogWrite | null {
    if (!this.hasUnpersisted()) return null
    const from = Math.max(this.unpersistedFrom, this.firstIndex())
    const entries = from <= this.lastIndex() ? this.entries.slice(from - this.firstIndex()) : []
    const write: LogWrite = {
      snapshot: this.snapshotToPersist,
      truncateFrom: Number.isFinite(this.unpersistedFrom) ? from : null,
      entries,
    }
    this.snapshotToPersist = null
    this.unpersistedFrom = Number.POSITIVE_INFINITY
    this.truncatedSinceHandOut = Number.POSITIVE_INFINITY
    this.handedOutLast = this.lastIndex()
    return write
  }

  /** The write handed out last is durable. */
  markDurable(): void {
    this.stable = Math.min(this.handedOutLast, this.truncatedSinceHandOut - 1, this.lastIndex())
  }

  /** A snapshot the state machine must load before the next entries, once. */
  takeSnapshotToRestore(): Snapshot | null {
    const snapshot = this.snapshotToRestore
    this.snapshotToRestore = null
    return snapshot
  }

  /** Committed entries not yet handed to the state machine, at most `max`. */
  nextToApply(max: number): Entry[] {
    const from = this.applied + 1
    const through = Math.min(this.committed, this.applied + max)
    return through >= from
      ? this.entries.slice(from - this.firstIndex(), through - this.firstIndex() + 1)
      : []
  }

  private pendingTruncation(): boolean {
    return Number.isFinite(this.unpersistedFrom) && this.unpersistedFrom > this.lastIndex()
  }

  private push(entry: Entry): void {
    this.entries.push(entry)
    if (entry.kind === 'config') this.configIndexes.push(entry.index)
  }

  private truncateFrom(index: number): void {
    this.entries.length = index - this.firstIndex()
    while ((this.configIndexes.at(-1) ?? -1) >= index) this.configIndexes.pop()
    this.unpersistedFrom = Math.min(this.unpersistedFrom, index)
    this.truncatedSinceHandOut = Math.min(this.truncatedSinceHandOut, index)
    this.stable = Math.min(this.stable, index - 1)
  }

  private reindexConfigs(): void {
    this.configIndexes = []
    for (const entry of this.entries) if (entry.kind === 'config') this.configIndexes.push(entry.index)
  }

  private metaAt(index: number): SnapshotMeta {
    const term = this.term(index)
    if (term === undefined) throw new Error(`no entry at ${index}`)
    const history = [...this.snap.meta.history]
    let config = this.snap.meta.config
    for (const at of this.configIndexes) {
      if (at > index) break
      history.push(config)
      config = recordOf(this.entry(at) as Entry & { kind: 'config' })
    }
    return { index, term, config, history: history.slice(-this.configHistory) }
  }
}
