/**
 * One simulated agent of the plain Raft simulation: the process adapter of
 * raft-process.ts around a Raft core that replicates a list of commands
 * (state-machine.ts).
 *
 * Clients' commands are proposed on the leader and answered when applied;
 * reads are answered from the lease (leaseRead) once applied that far.
 */
import type { Entry, NodeId, Snapshot } from '../../src/manager/raft/index.js'
import { RaftProcess, type RaftProcessEnv } from './raft-process.js'
import { ListStateMachine } from './state-machine.js'

export type ClientRequest =
  | { readonly kind: 'write'; readonly id: number; readonly client: string; readonly seq: number }
  | { readonly kind: 'read'; readonly id: number; readonly client: string }

export type ClientReply =
  | { readonly kind: 'ok'; readonly id: number; readonly position: number }
  | { readonly kind: 'read-ok'; readonly id: number; readonly count: number }
  /** Not proposed here: try `leader`. Nothing was appended for this attempt. */
  | { readonly kind: 'redirect'; readonly id: number; readonly leader: NodeId | null }
  /** Proposed, then overwritten by another leader's entry: this attempt was not applied. */
  | { readonly kind: 'dropped'; readonly id: number }
  /** Proposed, but it cannot be told whether it applied (a snapshot covered it, or its session expired). */
  | { readonly kind: 'unknown'; readonly id: number }

/** What a host needs from the world around it. */
export interface HostEnv extends RaftProcessEnv {
  reply(from: NodeId, to: string, reply: ClientReply): void
  onApplied(host: SimHost, entry: Entry, position: number | null): void
  onSnapshotRestored(host: SimHost, snapshot: Snapshot): void
  afterEvent(host: SimHost): void
}

export class SimHost extends RaftProcess<ListStateMachine, HostEnv> {
  private writes = new Map<number, { term: number; from: string; id: number }>()
  private reads: Array<{ index: number; from: string; id: number }> = []

  constructor(id: NodeId, env: HostEnv, drift: number) {
    super(id, env, drift)
    this.boot()
  }

  request(from: string, request: ClientRequest): void {
    this.arrive(() => this.onRequest(from, request))
  }

  protected override newMachine(): ListStateMachine {
    return new ListStateMachine()
  }

  protected override afterEvent(): void {
    this.env.afterEvent(this)
  }

  protected override forget(): void {
    this.writes.clear()
    this.reads = []
  }

  protected override afterReady(): void {
    this.answerReads()
  }

  private onRequest(from: string, request: ClientRequest): void {
    if (request.kind === 'read') {
      const read = this.raft.leaseRead()
      if (!read.ok) {
        this.env.reply(this.id, from, {
          kind: 'redirect',
          id: request.id,
          leader: read.leader === this.id ? null : read.leader,
        })
        return
      }
      this.reads.push({ index: read.index, from, id: request.id })
      this.answerReads()
      return
    }
    try {
      const data = new TextEncoder().encode(`${request.client}#${request.seq}`)
      const { index, term } = this.raft.propose(data, { client: request.client, seq: request.seq })
      this.writes.set(index, { term, from, id: request.id })
    } catch {
      this.env.reply(this.id, from, { kind: 'redirect', id: request.id, leader: this.leaderElsewhere() })
    }
  }

  protected override restore(snapshot: Snapshot): void {
    this.machine.restore(snapshot)
    this.env.onSnapshotRestored(this, snapshot)
    // Proposals the snapshot covers may or may not have been applied: their clients retry (and are deduplicated).
    for (const [index, w] of this.writes)
      if (index <= snapshot.meta.index) {
        this.env.reply(this.id, w.from, { kind: 'unknown', id: w.id })
        this.writes.delete(index)
      }
  }

  protected override applyEntry(entry: Entry): void {
    const { position } = this.machine.apply(entry)
    this.env.onApplied(this, entry, position)
    const w = this.writes.get(entry.index)
    if (w === undefined) return
    this.writes.delete(entry.index)
    if (w.term !== entry.term) this.env.reply(this.id, w.from, { kind: 'dropped', id: w.id })
    else if (position == null) this.env.reply(this.id, w.from, { kind: 'unknown', id: w.id })
    else this.env.reply(this.id, w.from, { kind: 'ok', id: w.id, position })
  }

  private answerReads(): void {
    if (this.reads.length === 0) return
    const ready = this.reads.filter((r) => r.index <= this.machine.lastIndex)
    if (ready.length === 0) return
    this.reads = this.reads.filter((r) => r.index > this.machine.lastIndex)
    for (const r of ready)
      this.env.reply(this.id, r.from, { kind: 'read-ok', id: r.id, count: this.machine.applied.length })
  }
}
