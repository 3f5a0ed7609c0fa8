/**
 * One simulated agent process around a Raft core: the adapter the real manager
 * will have, on simulated time.
 *
 * - Ticks come from the process's own clock: a period off the nominal one by
 *   its drift, starting at a random phase. A paused process misses its ticks and
 *   catches up on them when it resumes, before it handles anything else (as the
 *   real adapter must, from a monotonic clock: lease.ts).
 * - Readies are carried out in order: write, fsync (a simulated disk latency;
 *   the process keeps receiving and ticking meanwhile), send, apply, advance; one
 *   Ready at a time. A crash loses what was written and not synced.
 * - Clients' commands are proposed on the leader and answered when applied;
 *   reads are answered from the lease (leaseRead) once applied that far.
 */
import {
  type Entry,
  type Message,
  type NodeId,
  type RaftInit,
  RaftNode,
  type Ready,
  type Snapshot,
} from '../../src/manager/raft/index.js'
import type { EventQueue } from './event-queue.js'
import { fakeSigner, fakeVerifier } from './keys.js'
import { ListStateMachine } from './state-machine.js'
import { SimDisk } from './storage.js'

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
export interface HostEnv {
  readonly queue: EventQueue
  readonly cluster: string
  readonly genesis: Snapshot
  readonly raftInit: Partial<RaftInit>
  /** Nominal tick period, ms. */
  readonly tickMs: number
  random(): number
  /** Sends a Raft message over the simulated network. */
  send(message: Message): void
  reply(from: NodeId, to: string, reply: ClientReply): void
  /** Fsync latency for one batch, ms. */
  fsyncDelay(): number
  compactEvery: number
  onApplied(host: SimHost, entry: Entry, position: number | null): void
  onSnapshotRestored(host: SimHost, snapshot: Snapshot): void
  afterEvent(host: SimHost): void
  /** A deliberate adapter bug, for testing the checker: send a Ready's messages before its fsync. */
  readonly sendBeforeSync?: boolean
}

type Inbound =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'request'; readonly from: string; readonly request: ClientRequest }
  | { readonly kind: 'synced'; readonly ready: Ready; readonly epoch: number }

export class SimHost {
  raft: RaftNode
  machine = new ListStateMachine()
  readonly disk: SimDisk
  state: 'up' | 'paused' | 'down' = 'up'
  /** Bumped by each crash: events of an earlier life are ignored. */
  private epoch = 0
  private busy = false
  private startedAt = 0
  private phase = 0
  private ticksDone = 0
  private readonly inbox: Inbound[] = []
  private writes = new Map<number, { term: number; from: string; id: number }>()
  private reads: Array<{ index: number; from: string; id: number }> = []
  /** Drift of this process's clock: its tick period is tickMs·(1+drift). */
  readonly period: number

  constructor(
    readonly id: NodeId,
    private readonly env: HostEnv,
    drift: number,
  ) {
    this.period = env.tickMs * (1 + drift)
    this.disk = new SimDisk(env.genesis)
    this.raft = this.boot()
  }

  get alive(): boolean {
    return this.state === 'up'
  }

  // ── the world calls these ───────────────────────────────────────────────

  receive(message: Message): void {
    this.arrive({ kind: 'message', message })
  }

  request(from: string, request: ClientRequest): void {
    this.arrive({ kind: 'request', from, request })
  }

  pause(): void {
    if (this.state === 'up') this.state = 'paused'
  }

  /** Resumes: first the ticks the pause hid, then what arrived meanwhile. */
  resume(): void {
    if (this.state !== 'paused') return
    this.state = 'up'
    this.catchUpTicks()
    const pending = this.inbox.splice(0)
    for (const item of pending) {
      if (this.state !== 'up') break
      this.handle(item)
    }
    this.pump()
    this.env.afterEvent(this)
    this.scheduleTick()
  }

  /** The process dies: memory is gone, unsynced writes are lost but for the first `keepUnsynced`. */
  crash(keepUnsynced: number): void {
    if (this.state === 'down') return
    this.state = 'down'
    this.epoch++
    this.disk.crash(keepUnsynced)
    this.inbox.length = 0
    this.writes.clear()
    this.reads = []
    this.busy = false
  }

  /** Calls into the core from outside (an operator's command), then carries out what it produced. */
  act(fn: (raft: RaftNode) => void): boolean {
    if (this.state !== 'up') return false
    try {
      fn(this.raft)
    } catch {
      return false
    } finally {
      this.pump()
      this.env.afterEvent(this)
    }
    return true
  }

  restart(): void {
    if (this.state !== 'down') return
    this.state = 'up'
    this.raft = this.boot()
    this.env.afterEvent(this)
    this.pump()
  }

  // ── inside the process ──────────────────────────────────────────────────

  private boot(): RaftNode {
    const { queue } = this.env
    this.startedAt = queue.now
    this.phase = this.env.random() * this.period
    this.ticksDone = 0
    const stored = this.disk.load()
    this.machine = new ListStateMachine()
    this.machine.restore(stored.snapshot)
    const raft = new RaftNode(
      {
        id: this.id,
        cluster: this.env.cluster,
        signer: fakeSigner(this.id),
        verifier: fakeVerifier,
        random: this.env.random,
        ...this.env.raftInit,
      },
      stored,
    )
    this.raft = raft
    this.scheduleTick()
    return raft
  }

  private tickTime(k: number): number {
    return this.startedAt + this.phase + k * this.period
  }

  private scheduleTick(): void {
    const epoch = this.epoch
    const k = this.ticksDone + 1
    this.env.queue.schedule(this.tickTime(k), () => {
      if (this.epoch !== epoch || this.state !== 'up' || this.ticksDone >= k) return
      this.ticksDone = k
      this.raft.tick()
      this.pump()
      this.env.afterEvent(this)
      this.scheduleTick()
    })
  }

  private catchUpTicks(): void {
    const now = this.env.queue.now
    while (this.tickTime(this.ticksDone + 1) <= now) {
      this.ticksDone++
      this.raft.tick()
    }
  }

  private arrive(item: Inbound): void {
    if (this.state === 'down') return
    if (this.state === 'paused') {
      this.inbox.push(item)
      return
    }
    this.handle(item)
    this.pump()
    this.env.afterEvent(this)
  }

  private handle(item: Inbound): void {
    switch (item.kind) {
      case 'message':
        this.raft.step(item.message)
        return
      case 'request':
        this.onRequest(item.from, item.request)
        return
      case 'synced':
        if (item.epoch === this.epoch) this.finish(item.ready)
        return
    }
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
      const leader = this.raft.status().leader
      this.env.reply(this.id, from, {
        kind: 'redirect',
        id: request.id,
        leader: leader === this.id ? null : leader,
      })
    }
  }

  /** Carries out Readies until there is none, or one waits for its fsync. */
  private pump(): void {
    while (this.state === 'up' && !this.busy) {
      const ready = this.raft.ready()
      if (ready == null) return
      const persist = ready.persist
      if (persist != null) this.disk.write(persist)
      if (persist?.sync === true) {
        this.busy = true
        if (this.env.sendBeforeSync === true) for (const message of ready.send) this.env.send(message)
        const epoch = this.epoch
        this.env.queue.after(this.env.fsyncDelay(), () => {
          if (this.epoch !== epoch) return
          // The kernel finishes the fsync even while the process is stopped; the process goes on when it runs.
          this.disk.sync()
          this.arrive({ kind: 'synced', ready, epoch })
        })
        return
      }
      this.finish(ready)
    }
  }

  private finish(ready: Ready): void {
    const sentEarly = this.busy && this.env.sendBeforeSync === true
    this.busy = false
    if (!sentEarly) for (const message of ready.send) this.env.send(message)
    if (ready.apply != null) {
      if (ready.apply.snapshot != null) this.restore(ready.apply.snapshot)
      for (const entry of ready.apply.entries) this.applyEntry(entry)
    }
    this.raft.advance(ready)
    const status = this.raft.status()
    if (ready.snapshotRequest != null || status.applied - status.snapshotIndex >= this.env.compactEvery)
      if (this.machine.lastIndex > status.snapshotIndex)
        this.raft.compact(this.machine.lastIndex, this.machine.encode())
    this.answerReads()
  }

  private restore(snapshot: Snapshot): void {
    this.machine.restore(snapshot)
    this.env.onSnapshotRestored(this, snapshot)
    // Proposals the snapshot covers may or may not have been applied: their clients retry (and are deduplicated).
    for (const [index, w] of this.writes)
      if (index <= snapshot.meta.index) {
        this.env.reply(this.id, w.from, { kind: 'unknown', id: w.id })
        this.writes.delete(index)
      }
  }

  private applyEntry(entry: Entry): void {
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
