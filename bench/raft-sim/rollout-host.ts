/**
 * One simulated manager process for the rollout simulation: the process adapter
 * of raft-process.ts (ticks on its own drifting clock, one Ready at a time:
 * write, fsync, send, apply, advance; a crash loses unsynced writes) around a
 * Raft core, with
 * the REAL state machine (ClusterMachine) and, on the leader, the manager's
 * decision loop as src/manager/manager.ts runs it:
 *
 * - decisions run one at a time, in order (operator commands and the loop's
 *   reconcile alike), each only when the node can decide (leaseRead ok and
 *   applied that far: RaftHost.canDecide);
 * - a decision reads the applied state, computes the next one with the real
 *   code (startRollout / controlRollout for commands; step() and targetsOf for
 *   the loop, over observe() of this process's membership view), and proposes
 *   ClusterMachine.diff as one entry (encodeChange); a conflict (the state moved
 *   under it) is decided again, up to three times; an entry another leader
 *   overwrote, or one a snapshot covered, fails the decision (a command's client
 *   retries with the same request id);
 * - the loop runs every `loopMs`, after every applied entry and after every
 *   change a member announces; `readySince` lives in the process (lost by a
 *   crash, kept across terms, as Manager keeps it).
 */
import {
  ClusterMachine,
  type CommandAnswer,
  encodeChange,
} from '../../src/manager/consensus/cluster-machine.js'
import { controlRollout, observe, type RolloutRequest, startRollout } from '../../src/manager/decisions.js'
import { isEligible } from '../../src/manager/election.js'
import type { Entry, NodeId, Ready, RequestId, Snapshot } from '../../src/manager/raft/index.js'
import type { ClusterState, RolloutRecord } from '../../src/manager/record.js'
import { isFinished, mayStep, ReadyClock, step, targetsOf } from '../../src/manager/rollout-engine.js'
import { RaftProcess, type RaftProcessEnv } from './raft-process.js'
import { MemberView, type Report } from './rollout-nodes.js'

export type OperatorCommand =
  | {
      readonly op: 'rollout'
      readonly distribution: string
      readonly maxUnavailable: number
      readonly minReadyMs: number
      readonly failureThreshold: number
    }
  | { readonly op: 'pause' | 'resume'; readonly id: string }

export interface OperatorRequest {
  /** This attempt (replies name it). */
  readonly id: number
  /** The command's request id, the same for every attempt. */
  readonly request: RequestId
  readonly command: OperatorCommand
}

export type OperatorReply =
  | { readonly kind: 'ok'; readonly id: number; readonly index: number; readonly rollout: string }
  /** Not the leader (or not able to decide): try `leader`. */
  | { readonly kind: 'redirect'; readonly id: number; readonly leader: NodeId | null }
  /** Not applied here, or its outcome is unknown: try again with the same request id. */
  | { readonly kind: 'retry'; readonly id: number; readonly why: string }
  /** A refusal of the command itself (ERR_…): it will not apply. */
  | { readonly kind: 'refused'; readonly id: number; readonly code: string; readonly message: string }

export interface RolloutHostEnv extends RaftProcessEnv {
  /** The manager loop's period (ManagerInit.tickMs). */
  readonly loopMs: number
  /** Nodes dead for less than this still hold the end of a rollout (StepContext.lostAfterMs). */
  readonly lostAfterMs: number
  readonly suspectMs: number
  readonly deadMs: number
  /** A deliberate bug, for testing the checker: the loop lets one node more than maxUnavailable go. */
  readonly overAdmit?: boolean
  reply(from: NodeId, to: string, reply: OperatorReply): void
  onApplied(host: RolloutHost, entry: Entry): void
  onSnapshotRestored(host: RolloutHost, snapshot: Snapshot): void
  /** A decision was proposed at (index, term): the newest rollout before and after it. */
  onDecided(
    host: RolloutHost,
    before: { id: string; progress: Record<string, string> } | null,
    after: RolloutRecord | undefined,
    at: { index: number; term: number },
  ): void
  onDeclaredDead(host: RolloutHost, node: string): void
  /**
   * A process that starts joins: it pulls the membership view of one peer it
   * reaches (late), or hears nothing (it tries again a second later).
   */
  join(host: RolloutHost, done: (view: MemberView) => void): void
  afterEvent(host: RolloutHost): void
}

type Decision =
  | { readonly kind: 'reconcile' }
  | {
      readonly kind: 'command'
      readonly from: string
      readonly id: number
      readonly request: RequestId
      readonly command: OperatorCommand
      /** A leader that cannot decide yet keeps the command this long (Manager.mustLead). */
      readonly waitUntil: number
      readonly attempt: number
    }

/** How long a proposal may stay unapplied before its decision gives up (COMMAND_TIMEOUT_MS). */
const PROPOSAL_TIMEOUT_MS = 10_000
/** How long a leader that cannot decide yet holds a command (MANAGER_WAIT_MS). */
const MANAGER_WAIT_MS = 3000

export class RolloutHost extends RaftProcess<ClusterMachine, RolloutHostEnv> {
  view: MemberView
  readonly counters = { proposed: 0, conflicts: 0, overwritten: 0, commands: 0 }
  private readySince = new ReadyClock()
  /** Manager.leading: the term this process leads, and since when (its clock). */
  private leading = { term: -1, since: 0 }
  private decisions: Decision[] = []
  private inFlight: {
    index: number
    term: number
    at: number
    decision: Decision
    answer: CommandAnswer | null
  } | null = null
  private reconcileQueued = false
  /** The manager's loop is due: it runs once the event at hand has been handled. */
  private wake = false
  private wakeTimerAt = Number.POSITIVE_INFINITY

  constructor(
    id: NodeId,
    env: RolloutHostEnv,
    drift: number,
    /** This process's wall clock is off true time by this much, ms. */
    private readonly clockOffset: number,
  ) {
    super(id, env, drift)
    this.view = this.newView()
    this.boot()
  }

  /** The process's wall clock (Date.now()). */
  clock(): number {
    return this.env.queue.now + this.clockOffset
  }

  // ── the world calls these ───────────────────────────────────────────────

  request(from: string, request: OperatorRequest): void {
    this.arrive(() => this.onRequest(from, request))
  }

  /** A member's announcement reaches this process: the manager runs its loop on a change (member:update). */
  hear(report: Report): void {
    this.arrive(() => {
      if (this.view.hear(report, this.clock())) this.wake = true
    })
  }

  /** The loop's interval fired while the process was paused: it runs as the process resumes. */
  override resume(): void {
    if (this.state === 'paused') this.wake = true
    super.resume()
  }

  /** RaftHost.canDecide: leader with a valid lease that has applied everything committed. */
  canDecide(): boolean {
    if (this.state !== 'up') return false
    const read = this.raft.leaseRead()
    return read.ok && this.machine.lastIndex >= read.index
  }

  // ── inside the process ──────────────────────────────────────────────────

  protected override newMachine(): ClusterMachine {
    return new ClusterMachine()
  }

  /** A booted process starts with an empty membership view, its manager loop, and a join. */
  protected override booted(): void {
    this.view = this.newView()
    this.scheduleLoop()
    this.scheduleJoin(0)
  }

  protected override forget(): void {
    this.decisions = []
    this.inFlight = null
    this.reconcileQueued = false
    this.readySince = new ReadyClock()
    this.leading = { term: -1, since: 0 }
    this.wakeTimerAt = Number.POSITIVE_INFINITY
  }

  protected override afterInput(): void {
    if (this.wake) this.runLoop()
  }

  protected override afterReady(ready: Ready): void {
    // Applied entries are a reason to run the loop.
    if (ready.apply != null) this.wake = true
  }

  protected override afterEvent(): void {
    this.env.afterEvent(this)
  }

  private newView(): MemberView {
    return new MemberView(this.env.suspectMs, this.env.deadMs, (node) => this.env.onDeclaredDead(this, node))
  }

  /** membership.ts joinIfAlone: until a peer's view is pulled, every joinRetryInterval. */
  private scheduleJoin(delay: number): void {
    const epoch = this.epoch
    this.env.queue.after(delay, () => {
      if (this.epoch !== epoch || this.state === 'down') return
      let joined = false
      this.env.join(this, (view) => {
        if (this.epoch !== epoch || this.state === 'down') return
        joined = true
        this.arrive(() => {
          if (this.view.merge(view, this.clock())) this.wake = true
        })
      })
      this.env.queue.after(1000, () => {
        if (!joined) this.scheduleJoin(0)
      })
    })
  }

  /** The manager's interval timer; a paused process runs it when it resumes. */
  private scheduleLoop(): void {
    const epoch = this.epoch
    this.env.queue.after(this.env.loopMs, () => {
      if (this.epoch !== epoch || this.state === 'down') return
      if (this.state === 'up') {
        this.runLoop()
        this.afterEvent()
      }
      this.scheduleLoop()
    })
  }

  private onRequest(from: string, request: OperatorRequest): void {
    this.counters.commands++
    const leads = this.raft.status().role === 'leader'
    if (!this.canDecide() && !leads) {
      this.env.reply(this.id, from, { kind: 'redirect', id: request.id, leader: this.leaderElsewhere() })
      return
    }
    this.decisions.push({
      kind: 'command',
      from,
      id: request.id,
      request: request.request,
      command: request.command,
      waitUntil: this.clock() + MANAGER_WAIT_MS,
      attempt: 0,
    })
    this.wake = true
  }

  /** Manager.tick: failure verdicts, then (when it can decide) one reconcile queued, then the decisions. */
  private runLoop(): void {
    this.wake = false
    if (this.state !== 'up') return
    const now = this.clock()
    this.view.sweep(now)
    const f = this.inFlight
    if (f != null && now - f.at > PROPOSAL_TIMEOUT_MS) {
      this.inFlight = null
      if (f.decision.kind === 'command') this.answerRetry(f.decision, 'not committed in time')
    }
    if (this.canDecide() && !this.reconcileQueued) {
      this.reconcileQueued = true
      this.decisions.push({ kind: 'reconcile' })
    }
    this.runDecisions()
  }

  private runDecisions(): void {
    while (this.inFlight == null && this.decisions.length > 0 && this.state === 'up') {
      const d = this.decisions[0]!
      if (!this.canDecide()) {
        if (d.kind === 'command' && this.raft.status().role === 'leader' && this.clock() < d.waitUntil) return
        this.decisions.shift()
        if (d.kind === 'reconcile') this.reconcileQueued = false
        else this.env.reply(this.id, d.from, { kind: 'redirect', id: d.id, leader: this.leaderElsewhere() })
        continue
      }
      this.decisions.shift()
      if (d.kind === 'reconcile') this.reconcileQueued = false
      this.decide(d)
    }
  }

  /** Manager.decide: decide on the applied state, propose the difference as one entry. */
  private decide(d: Decision): void {
    const now = this.clock()
    if (d.kind === 'command') {
      const earlier = this.machine.answered(d.request)
      if (earlier != null) {
        this.answerOk(d, earlier, this.machine.lastIndex)
        return
      }
    }
    const next = this.machine.state()
    const latest = next.rollouts[0]
    const before = latest == null ? null : { id: latest.id, progress: { ...latest.progress } }
    let answer: CommandAnswer | null
    try {
      answer = d.kind === 'command' ? this.command(next, d.command, now) : this.reconcile(next, now)
    } catch (err) {
      if (d.kind === 'command') {
        const e = err as { code?: string; message?: string }
        this.env.reply(this.id, d.from, {
          kind: 'refused',
          id: d.id,
          code: e.code ?? 'ERR_INTERNAL',
          message: e.message ?? String(err),
        })
      }
      return
    }
    const diff = this.machine.diff(next, answer)
    if (diff == null) {
      if (d.kind === 'command' && answer != null) this.answerOk(d, answer, this.machine.lastIndex)
      return
    }
    let at: { index: number; term: number }
    try {
      at = this.raft.propose(encodeChange(diff), d.kind === 'command' ? d.request : null)
    } catch {
      if (d.kind === 'command') this.env.reply(this.id, d.from, { kind: 'redirect', id: d.id, leader: null })
      return
    }
    this.counters.proposed++
    this.inFlight = { index: at.index, term: at.term, at: now, decision: d, answer }
    this.env.onDecided(this, before, next.rollouts[0], at)
  }

  private command(state: ClusterState, command: OperatorCommand, now: number): CommandAnswer {
    if (command.op === 'rollout') {
      const request: RolloutRequest = {
        kind: 'rollout',
        distribution: command.distribution,
        strategy: 'rolling',
        maxUnavailable: command.maxUnavailable,
        minReadyMs: command.minReadyMs,
        failureThreshold: command.failureThreshold,
        approve: 'auto',
        autoRollback: false,
        nodes: [],
        requestedBy: 'operator',
      }
      const created = startRollout(state, request, this.view.members(), () => false)
      created.requestedAt = new Date(now).toISOString()
      return { rollout: created.id }
    }
    return {
      rollout: controlRollout(
        state,
        { op: command.op, id: command.id, requestedBy: 'operator' },
        new Date(now),
      ).id,
    }
  }

  /** Manager.reconcile: step the newest rollout over what this process sees, targets from it. */
  private reconcile(state: ClusterState, now: number): null {
    const members = this.view.members()
    const term = this.raft.status().term
    if (this.leading.term !== term) this.leading = { term, since: now }
    const latest = state.rollouts[0]
    const observations = observe(members)
    if (
      latest != null &&
      !isFinished(latest) &&
      mayStep(latest, observations, now - this.leading.since, this.env.lostAfterMs)
    ) {
      const input =
        this.env.overAdmit === true ? { ...latest, maxUnavailable: latest.maxUnavailable + 1 } : latest
      let stepped = step(input, {
        now,
        observations,
        members: members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id),
        readySince: this.readySince.for(latest.id, term),
        lostAfterMs: this.env.lostAfterMs,
      })
      if (stepped === input) stepped = latest
      else if (input !== latest) stepped = { ...stepped, maxUnavailable: latest.maxUnavailable }
      this.wakeAtMinReady(stepped, now)
      if (stepped !== latest) state.rollouts[0] = stepped
    }
    if (state.rollouts[0] != null) Object.assign(state, targetsOf(state.rollouts[0]))
    return null
  }

  /** Manager.wakeAtMinReady: run the loop when a ready node's min-ready ends, not a tick later. */
  private wakeAtMinReady(rollout: RolloutRecord, now: number): void {
    let next = Number.POSITIVE_INFINITY
    for (const [id, status] of Object.entries(rollout.progress)) {
      const since = this.readySince.get(id)
      if (status === 'updating' && since != null) next = Math.min(next, since + rollout.minReadyMs)
    }
    if (!Number.isFinite(next) || next - now >= this.env.loopMs) return
    const at = this.env.queue.now + Math.max(0, next - now) + 1
    if (at >= this.wakeTimerAt && this.wakeTimerAt > this.env.queue.now) return
    this.wakeTimerAt = at
    const epoch = this.epoch
    this.env.queue.schedule(at, () => {
      if (this.epoch !== epoch || this.state !== 'up') return
      this.wakeTimerAt = Number.POSITIVE_INFINITY
      this.runLoop()
      this.afterEvent()
    })
  }

  private answerOk(d: Decision, answer: CommandAnswer, index: number): void {
    if (d.kind !== 'command') return
    const rollout = 'rollout' in answer ? answer.rollout : ''
    this.env.reply(this.id, d.from, { kind: 'ok', id: d.id, index, rollout })
  }

  private answerRetry(d: Decision, why: string): void {
    if (d.kind === 'command') this.env.reply(this.id, d.from, { kind: 'retry', id: d.id, why })
  }

  protected override restore(snapshot: Snapshot): void {
    this.machine.restore(snapshot)
    this.env.onSnapshotRestored(this, snapshot)
    const f = this.inFlight
    if (f != null && f.index <= snapshot.meta.index) {
      this.inFlight = null
      this.answerRetry(f.decision, 'the outcome is unknown (a snapshot replaced the log)')
    }
  }

  protected override applyEntry(entry: Entry): void {
    const outcome = this.machine.apply(entry)
    this.env.onApplied(this, entry)
    const f = this.inFlight
    if (f == null || f.index !== entry.index) return
    this.inFlight = null
    const d = f.decision
    if (f.term !== entry.term) {
      this.counters.overwritten++
      this.answerRetry(d, 'the manager changed before the command was committed')
      return
    }
    if (outcome.status === 'applied' || outcome.status === 'duplicate') {
      const answer = outcome.answer ?? f.answer
      if (answer != null) this.answerOk(d, answer, entry.index)
      return
    }
    if (outcome.status === 'conflict') {
      this.counters.conflicts++
      // Decided again on the newer state (Manager.decide: up to three attempts).
      if (d.kind === 'command' && d.attempt < 2) this.decisions.unshift({ ...d, attempt: d.attempt + 1 })
      else if (d.kind === 'command') this.answerRetry(d, 'the cluster state kept changing under the command')
      return
    }
    this.answerRetry(d, `the command was not applied (${outcome.status})`)
  }
}
