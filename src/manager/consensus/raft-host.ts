/**
 * The Raft core in a process: its clock, its disk, its network and its state
 * machine. The core (../raft) decides; this carries its decisions out, in the
 * order docs/raft.md requires:
 *
 * 1. ticks come from a monotonic clock (performance.now()); after any stall (GC,
 *    SIGSTOP, a busy event loop) the ticks that were missed are played before
 *    anything else is handled, so a paused leader's lease has expired by the
 *    time it could act on it (lease.ts);
 * 2. one Ready at a time: write it (fsynced when it says so), then send its
 *    messages, then apply its committed entries, then advance; messages and
 *    ticks that arrive during the fsync go to the core meanwhile;
 * 3. a proposal resolves once its entry is applied here, with what applying it
 *    did; it rejects when another leader's entry took its place.
 *
 * A failed disk write stops the host for good (fail-stop): a node that cannot
 * keep its promises must not make more.
 */
import { performance } from 'node:perf_hooks'
import type { Logger } from '../../shared/index.js'
import { messageOf } from '../../shared/index.js'
import { NoManagerError } from '../errors.js'
import {
  type ConfigChange,
  type Entry,
  type Message,
  type NodeId,
  type PersistBatch,
  type PersistedState,
  type RaftInit,
  RaftNode,
  type RaftStatus,
  type Ready,
  type RequestId,
  type Signer,
  type Snapshot,
  type SoftState,
  type Verifier,
} from '../raft/index.js'
import type { ApplyOutcome, ClusterMachine } from './cluster-machine.js'

export interface RaftHostInit {
  cluster: string
  id: NodeId
  /** Tick period, ms (the manager's preset). */
  tickMs: number
  /** Minimum election timeout in ticks. */
  electionTicks: number
  /** Ticks between two heartbeats of the leader. */
  heartbeatTicks: number
  /** Entries applied since the last snapshot before the state machine saves itself. */
  snapshotThreshold?: number
}

export interface RaftHostComponents {
  storage: {
    load(): Promise<PersistedState | null>
    init(snapshot: Snapshot): Promise<void>
    persist(batch: PersistBatch): Promise<void>
    reset(snapshot: Snapshot): Promise<void>
    clear(): Promise<void>
    saveMeta(key: string, value: string): Promise<void>
    loadMeta(key: string): Promise<string | null>
  }
  send(messages: readonly Message[]): void
  signer: Signer
  verifier: Verifier
  machine: ClusterMachine
  logger: Logger
  /** Called after each Ready whose apply or soft state changed something. */
  onChange(): void
}

interface Pending {
  term: number
  resolve(outcome: ApplyOutcome & { index: number }): void
  reject(err: Error): void
}

/** Configuration records a snapshot keeps: a node that joins verifies the leader from genesis through them. */
const CONFIG_HISTORY = 4096
/** The most ticks played at once after a stall (a lease is 8 ticks; more only costs time). */
const MAX_CATCH_UP_TICKS = 10_000

export class RaftHost {
  private node: RaftNode | null = null
  private readonly log: Logger
  private timer: NodeJS.Timeout | undefined
  private startedAt = 0
  private ticksDone = 0
  private pumping = false
  /** Output may be waiting: set by every pump(), cleared by the drain that looks. */
  private wanted = false
  private failed: Error | null = null
  private readonly pending = new Map<number, Pending>()
  private soft: SoftState | null = null

  constructor(
    private readonly init: RaftHostInit,
    private readonly components: RaftHostComponents,
  ) {
    this.log = components.logger.child('raft')
  }

  get booted(): boolean {
    return this.node != null
  }

  /**
   * Starts the core from what the disk holds; a node that never stored anything
   * starts from `genesis` (the cluster's founding voters), or stays unbooted when
   * it has none yet. Returns whether it booted.
   */
  async boot(genesis: Snapshot | null): Promise<boolean> {
    if (this.node != null) return true
    let stored = await this.components.storage.load()
    if (stored == null) {
      if (genesis == null) return false
      await this.components.storage.init(genesis)
      stored = await this.components.storage.load()
      if (stored == null) throw new Error('the Raft storage did not keep its genesis snapshot')
    }
    this.components.machine.restore(stored.snapshot)
    const init: RaftInit = {
      id: this.init.id,
      cluster: this.init.cluster,
      signer: this.components.signer,
      verifier: this.components.verifier,
      random: Math.random,
      electionTicks: this.init.electionTicks,
      heartbeatTicks: this.init.heartbeatTicks,
      configHistory: CONFIG_HISTORY,
      ...(this.init.snapshotThreshold != null ? { snapshotThreshold: this.init.snapshotThreshold } : {}),
    }
    this.node = new RaftNode(init, stored)
    this.startedAt = performance.now()
    this.ticksDone = 0
    this.timer = setInterval(() => this.onTimer(), this.init.tickMs)
    this.log.info('raft started', {
      term: stored.hardState.term,
      entries: stored.entries.length,
      snapshot: stored.snapshot.meta.index,
      voters: this.node.status().config.voters.length,
    })
    this.pump()
    return true
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
    const node = this.node
    this.node = null
    for (const [, p] of this.pending) p.reject(new NoManagerError('the manager is stopping'))
    this.pending.clear()
    void node
  }

  /** Forgets the log and starts again from `snapshot` (a new genesis: `shoal voters reset`). */
  async restartFrom(snapshot: Snapshot): Promise<void> {
    this.stop()
    this.failed = null
    await this.components.storage.reset(snapshot)
    await this.boot(null)
  }

  /** Saves the state machine as a snapshot now: nodes that lack the log before it get the snapshot. */
  compactNow(): void {
    const node = this.live()
    if (node == null) return
    const machine = this.components.machine
    if (machine.lastIndex > node.status().snapshotIndex) node.compact(machine.lastIndex, machine.encode())
    this.pump()
  }

  /** A message from the network (its `from` already checked against the stream's peer). */
  receive(message: Message): void {
    const node = this.live()
    if (node == null) return
    this.catchUp(node)
    node.step(message)
    this.pump()
  }

  status(): RaftStatus | null {
    const node = this.node
    if (node == null) return null
    this.catchUp(node)
    return node.status()
  }

  /** True when this node leads with a valid lease and has applied everything committed before its term. */
  canDecide(): boolean {
    const node = this.live()
    if (node == null) return false
    this.catchUp(node)
    const read = node.leaseRead()
    return read.ok && this.components.machine.lastIndex >= read.index
  }

  /** Waits (up to `timeoutMs`) until canDecide(). */
  async untilCanDecide(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs
    while (!this.canDecide()) {
      if (performance.now() >= deadline || this.live() == null) return false
      await new Promise((r) => setTimeout(r, Math.min(20, this.init.tickMs)))
    }
    return true
  }

  isLeader(): boolean {
    return this.live()?.status().role === 'leader'
  }

  /** Appends a command; resolves once applied here. Throws NotLeaderError when this node does not lead. */
  propose(data: Uint8Array, request: RequestId | null): Promise<ApplyOutcome & { index: number }> {
    const node = this.live()
    if (node == null) return Promise.reject(new NoManagerError('this node takes no part in the manager yet'))
    const { index, term } = node.propose(data, request)
    const done = new Promise<ApplyOutcome & { index: number }>((resolve, reject) =>
      this.pending.set(index, { term, resolve, reject }),
    )
    this.pump()
    return done
  }

  proposeConfigChange(change: ConfigChange): { index: number; term: number } {
    const node = this.live()
    if (node == null) throw new NoManagerError('this node takes no part in the manager yet')
    const at = node.proposeConfigChange(change)
    this.pump()
    return at
  }

  transferLeadership(target: NodeId): void {
    const node = this.live()
    if (node == null) return
    node.transferLeadership(target)
    this.pump()
  }

  campaign(): void {
    const node = this.live()
    if (node == null) return
    node.campaign()
    this.pump()
  }

  configChain(index: number) {
    return this.live()?.configChain(index) ?? null
  }

  private live(): RaftNode | null {
    return this.failed == null ? this.node : null
  }

  private onTimer(): void {
    const node = this.live()
    if (node == null) return
    this.catchUp(node)
    this.pump()
  }

  /** Plays every tick the monotonic clock says is due. */
  private catchUp(node: RaftNode): void {
    const due = Math.floor((performance.now() - this.startedAt) / this.init.tickMs)
    let missed = due - this.ticksDone
    if (missed > MAX_CATCH_UP_TICKS) {
      this.ticksDone = due - MAX_CATCH_UP_TICKS
      missed = MAX_CATCH_UP_TICKS
    }
    for (; missed > 0; missed--) {
      this.ticksDone++
      node.tick()
    }
  }

  private pump(): void {
    if (this.live() == null) return
    this.wanted = true
    if (this.pumping) return
    this.pumping = true
    void this.drain().catch((err: unknown) => this.fail(err))
  }

  /**
   * Carries out Readies until the core has none. The flag is cleared with no await
   * between the last empty ready() and it, so a pump() asked meanwhile is never lost.
   */
  private async drain(): Promise<void> {
    try {
      while (this.wanted) {
        this.wanted = false
        for (;;) {
          const node = this.live()
          if (node == null) return
          const ready = node.ready()
          if (ready == null) break
          await this.carryOut(node, ready)
        }
      }
    } finally {
      this.pumping = false
    }
  }

  private async carryOut(node: RaftNode, ready: Ready): Promise<void> {
    if (ready.persist != null) await this.components.storage.persist(ready.persist)
    if (this.node !== node) return
    if (ready.send.length > 0) this.components.send(ready.send)
    let changed = ready.changed != null
    if (ready.apply != null) {
      if (ready.apply.snapshot != null) this.restore(ready.apply.snapshot)
      for (const entry of ready.apply.entries) this.applyEntry(entry)
      changed = true
    }
    node.advance(ready)
    if (ready.changed != null) this.onSoftState(ready.changed)
    if (ready.snapshotRequest != null) {
      const machine = this.components.machine
      if (machine.lastIndex > node.status().snapshotIndex) node.compact(machine.lastIndex, machine.encode())
    }
    if (changed) this.components.onChange()
  }

  private restore(snapshot: Snapshot): void {
    this.components.machine.restore(snapshot)
    for (const [index, p] of this.pending)
      if (index <= snapshot.meta.index) {
        this.pending.delete(index)
        // It may or may not have applied: a retry with the same request id is answered once.
        p.reject(new NoManagerError('the outcome is unknown (a snapshot replaced the log): retry'))
      }
  }

  private applyEntry(entry: Entry): void {
    const outcome = this.components.machine.apply(entry)
    const p = this.pending.get(entry.index)
    if (p === undefined) return
    this.pending.delete(entry.index)
    if (p.term !== entry.term)
      p.reject(new NoManagerError('the manager changed before the command was committed: retry'))
    else p.resolve({ ...outcome, index: entry.index })
  }

  private onSoftState(soft: SoftState): void {
    const before = this.soft
    this.soft = soft
    if (before?.leader !== soft.leader || before?.role !== soft.role)
      this.log.info('raft role', { role: soft.role, leader: soft.leader, term: soft.term })
  }

  private fail(err: unknown): void {
    if (this.failed != null) return
    this.failed = err instanceof Error ? err : new Error(String(err))
    this.log.error('the Raft log could not be written; this node stops taking part in the manager', {
      error: messageOf(err),
    })
    clearInterval(this.timer)
    for (const [, p] of this.pending) p.reject(new NoManagerError('the manager on this node failed'))
    this.pending.clear()
  }
}
