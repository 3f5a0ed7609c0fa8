/**
 * The core's output, in the order it must be carried out (etcd's Ready):
 *
 *   1. persist — write `persist` to storage; when `persist.sync`, fsync it;
 *   2. send    — only then send `send`: these messages promise what `persist`
 *                holds (a vote, a term, appended entries), so a crash between
 *                1 and 2 must lose them, never the other way round;
 *   3. apply   — load `apply.snapshot` into the state machine if set, then apply
 *                `apply.entries` in order (committed: durable on a majority);
 *   4. advance — call node.advance(ready). Until then ready() returns null: one
 *                Ready is in flight at a time. step(), tick() and propose() may
 *                be called meanwhile; what they produce waits for the next Ready.
 *
 * handleReady() below is that sequence, for adapters that need nothing else.
 */
import type { Message } from './messages.js'
import type { Entry, HardState, NodeId, Role, Snapshot } from './types.js'

/** One atomic storage write (a level batch). */
export interface PersistBatch {
  /** Replace the stored hard state, when set. */
  readonly hardState: HardState | null
  /** Store this snapshot and drop stored entries at or below its index, when set. */
  readonly snapshot: Snapshot | null
  /** Drop stored entries at or above this index (a conflicting suffix), then write `entries`. */
  readonly truncateFrom: number | null
  readonly entries: readonly Entry[]
  /**
   * fsync before step 2. False only when nothing but the commit hint changed:
   * that may be lost in a crash and the messages need not wait for it.
   */
  readonly sync: boolean
}

export interface ApplyBatch {
  /** A leader's snapshot this node installed: replace the state machine with it first. */
  readonly snapshot: Snapshot | null
  /** Committed entries, in index order, continuing from the last applied one. */
  readonly entries: readonly Entry[]
}

/** The role, leader and term, reported when any of them changed. */
export interface SoftState {
  readonly role: Role
  readonly leader: NodeId | null
  readonly term: number
}

export interface Ready {
  readonly persist: PersistBatch | null
  readonly send: readonly Message[]
  readonly apply: ApplyBatch | null
  readonly changed: SoftState | null
  /**
   * The log grew `snapshotThreshold` entries past the last snapshot: the state
   * machine should save itself (after this Ready's entries) and call
   * node.compact(index, data). Ignoring it only costs memory and disk.
   */
  readonly snapshotRequest: { readonly appliedIndex: number } | null
}

/** What carries a Ready out. */
export interface ReadyIo {
  /** Resolves once the batch is durable (fsynced when `batch.sync`). */
  persist(batch: PersistBatch): Promise<void>
  send(messages: readonly Message[]): void
  apply(batch: ApplyBatch): void | Promise<void>
}

/** Carries out one Ready in the required order; false when there was none. */
export async function handleReady(
  node: { ready(): Ready | null; advance(ready: Ready): void },
  io: ReadyIo,
): Promise<boolean> {
  const ready = node.ready()
  if (ready == null) return false
  if (ready.persist != null) await io.persist(ready.persist)
  if (ready.send.length > 0) io.send(ready.send)
  if (ready.apply != null) await io.apply(ready.apply)
  node.advance(ready)
  return true
}
