/**
 * A node's disk in the simulation: what an fsync made durable, and what was
 * written but not yet synced (lost by a crash). Each PersistBatch is applied
 * atomically, as a level batch is.
 */
import type {
  Entry,
  HardState,
  PersistBatch,
  PersistedState,
  Snapshot,
} from '../../src/manager/raft/index.js'

interface DiskState {
  hardState: HardState
  snapshot: Snapshot
  entries: Entry[]
}

function applyBatch(state: DiskState, batch: PersistBatch): DiskState {
  let { hardState, snapshot, entries } = state
  if (batch.snapshot != null) {
    snapshot = batch.snapshot
    entries = entries.filter((e) => e.index > snapshot.meta.index)
  }
  if (batch.truncateFrom != null) {
    const from = batch.truncateFrom
    entries = entries.filter((e) => e.index < from)
  }
  if (batch.entries.length > 0) {
    const first = batch.entries[0]!.index
    entries = [...entries.filter((e) => e.index < first), ...batch.entries]
  }
  if (batch.hardState != null) hardState = batch.hardState
  return { hardState, snapshot, entries }
}

export class SimDisk {
  private durable: DiskState
  /** Batches written and not yet synced, oldest first. */
  private pending: PersistBatch[] = []

  constructor(genesis: Snapshot) {
    this.durable = { hardState: { term: 0, vote: null, commit: 0 }, snapshot: genesis, entries: [] }
  }

  write(batch: PersistBatch): void {
    this.pending.push(batch)
  }

  /** Everything written so far is durable. */
  sync(): void {
    for (const batch of this.pending) this.durable = applyBatch(this.durable, batch)
    this.pending = []
  }

  /** A crash: unsynced writes are lost, except a prefix of them that happened to reach the platter. */
  crash(keep: number): void {
    for (const batch of this.pending.slice(0, keep)) this.durable = applyBatch(this.durable, batch)
    this.pending = []
  }

  get unsynced(): number {
    return this.pending.length
  }

  load(): PersistedState {
    const { hardState, snapshot, entries } = this.durable
    return { hardState, snapshot, entries: [...entries] }
  }
}
