/**
 * One simulated process around a Raft core: the adapter the real manager has,
 * on simulated time. host.ts (the plain Raft simulation's agent) and
 * rollout-host.ts (a manager process with the real ClusterMachine) add what
 * they replicate and what they answer.
 *
 * - Ticks come from the process's own clock: a period off the nominal one by
 *   its drift, starting at a random phase. A paused process misses its ticks and
 *   catches up on them when it resumes, before it handles anything else (as the
 *   real adapter must, from a monotonic clock: lease.ts).
 * - Readies are carried out in order: write, fsync (a simulated disk latency;
 *   the process keeps receiving and ticking meanwhile), send, apply, advance; one
 *   Ready at a time. A crash loses what was written and not synced.
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
import { SimDisk } from './storage.js'

/** What every simulated process needs from the world around it. */
export interface RaftProcessEnv {
  readonly queue: EventQueue
  readonly cluster: string
  readonly genesis: Snapshot
  readonly raftInit: Partial<RaftInit>
  /** Nominal tick period, ms. */
  readonly tickMs: number
  /** Entries applied since the last snapshot that make the process compact its log. */
  readonly compactEvery: number
  random(): number
  /** Sends a Raft message over the simulated network. */
  send(message: Message): void
  /** Fsync latency for one batch, ms. */
  fsyncDelay(): number
  /** A deliberate adapter bug, for testing the checker: send a Ready's messages before its fsync. */
  readonly sendBeforeSync?: boolean
}

/** The state a process replicates: what the adapter needs of it to restore and compact. */
export interface ReplicatedMachine {
  readonly lastIndex: number
  restore(snapshot: Snapshot): void
  encode(): Uint8Array
}

export abstract class RaftProcess<Machine extends ReplicatedMachine, Env extends RaftProcessEnv> {
  /** Set by boot(), which every subclass's constructor calls. */
  raft!: RaftNode
  machine!: Machine
  readonly disk: SimDisk
  state: 'up' | 'paused' | 'down' = 'up'
  /** Bumped by each crash: events of an earlier life are ignored. */
  protected epoch = 0
  private busy = false
  private startedAt = 0
  private phase = 0
  private ticksDone = 0
  /** What arrived while the process was paused, handled in order when it resumes. */
  private readonly inbox: Array<() => void> = []
  /** Drift of this process's clock: its tick period is tickMs·(1+drift). */
  readonly period: number

  constructor(
    readonly id: NodeId,
    protected readonly env: Env,
    drift: number,
  ) {
    this.period = env.tickMs * (1 + drift)
    this.disk = new SimDisk(env.genesis)
  }

  get alive(): boolean {
    return this.state === 'up'
  }

  // ── the world calls these ───────────────────────────────────────────────

  receive(message: Message): void {
    this.arrive(() => this.raft.step(message))
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
    for (const handle of pending) {
      if (this.state !== 'up') break
      handle()
    }
    this.settle()
    this.scheduleTick()
  }

  /** The process dies: memory is gone, unsynced writes are lost but for the first `keepUnsynced`. */
  crash(keepUnsynced: number): void {
    if (this.state === 'down') return
    this.state = 'down'
    this.epoch++
    this.disk.crash(keepUnsynced)
    this.inbox.length = 0
    this.busy = false
    this.forget()
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
      this.afterEvent()
    }
    return true
  }

  restart(): void {
    if (this.state !== 'down') return
    this.state = 'up'
    this.boot()
    this.afterEvent()
    this.pump()
  }

  /** The leader to redirect a client to: null when unknown, or when it is this process (it cannot serve yet). */
  protected leaderElsewhere(): NodeId | null {
    const leader = this.raft.status().leader
    return leader === this.id ? null : leader
  }

  // ── what a subclass adds ────────────────────────────────────────────────

  /** A fresh, empty state machine (boot restores the snapshot into it). */
  protected abstract newMachine(): Machine
  /** Restores the state machine from a snapshot the core installed; answers for what it covered. */
  protected abstract restore(snapshot: Snapshot): void
  /** Applies one committed entry to the state machine and answers for it. */
  protected abstract applyEntry(entry: Entry): void
  /** Every event this process handled ends here (the checker runs). */
  protected abstract afterEvent(): void
  /** The core is booted and ticking: start whatever else the process runs. */
  protected booted(): void {}
  /** A crash: drop what lived in memory only. */
  protected forget(): void {}
  /** An input, a tick or a resume was handled and its Readies carried out. */
  protected afterInput(): void {}
  /** A Ready was carried out to the end. */
  protected afterReady(_ready: Ready): void {}

  // ── inside the process ──────────────────────────────────────────────────

  protected boot(): void {
    const { queue } = this.env
    this.startedAt = queue.now
    this.phase = this.env.random() * this.period
    this.ticksDone = 0
    const stored = this.disk.load()
    this.machine = this.newMachine()
    this.machine.restore(stored.snapshot)
    this.raft = new RaftNode(
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
    this.scheduleTick()
    this.booted()
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
      this.settle()
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

  /** Something reaches the process: handled now, kept while it is paused, lost while it is down. */
  protected arrive(handle: () => void): void {
    if (this.state === 'down') return
    if (this.state === 'paused') {
      this.inbox.push(handle)
      return
    }
    handle()
    this.settle()
  }

  /** After an input, a tick or a resume: carry out the Readies, then let the subclass and the checker look. */
  private settle(): void {
    this.pump()
    this.afterInput()
    this.afterEvent()
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
          this.arrive(() => {
            if (this.epoch === epoch) this.finish(ready)
          })
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
    this.afterReady(ready)
  }
}

/** A process of either simulation, as the faults and the checks see it. */
export type AnyRaftProcess = RaftProcess<ReplicatedMachine, RaftProcessEnv>
