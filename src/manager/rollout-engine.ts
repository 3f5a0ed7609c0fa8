import type { TrafficFigures } from '../shared/index.js'
import { judge, MAX_VERDICTS, type Verdict } from './analysis.js'
import { ANALYSIS_GRACE_MS } from './constants.js'
import { FAILURE_CHARS, type NodeProgress, type RolloutRecord } from './record.js'

/** What the manager sees of one member, from its metadata. */
export interface NodeObservation {
  id: string
  /** Alive or merely suspected: still a member (a suspected node keeps its place in a rollout). */
  alive: boolean
  /** When this node was declared dead or left, in the manager's view (null while alive). */
  deadSince?: number | null
  /** The version it committed to (`distribution` in its metadata). */
  active: string | null
  /** Its runtime's target and phase. */
  target: string | null
  phase: string | null
  /** Every component ready. */
  ready: boolean
  /** A component of its target failed, or its switch did. */
  failed: boolean
  /** What its runtime says went wrong (null when nothing did). */
  error?: string | null
}

/** What `node` ran before the rollout (where it goes back to), or null when it ran nothing. */
export function baseOf(rollout: RolloutRecord, node: string): string | null {
  return rollout.baseTargets[node] ?? rollout.baseDefault
}

/** Statuses in which a node runs (or is moving to) the rollout's version. */
const FORWARD: ReadonlySet<NodeProgress> = new Set(['updating', 'done', 'failed'])

export const FINISHED = new Set(['done', 'failed', 'rolled-back', 'aborted', 'superseded'])

export function isFinished(rollout: RolloutRecord): boolean {
  return FINISHED.has(rollout.state)
}

/**
 * The version `node` should run while `rollout` is the latest one: the new
 * version once it is its turn (and until it is sent back), otherwise what it
 * ran before the rollout.
 */
export function nodeTarget(rollout: RolloutRecord, node: string): string | null {
  const before = baseOf(rollout, node)
  const progress = rollout.progress[node]
  return progress != null && FORWARD.has(progress) ? rollout.distribution : before
}

export interface StepContext {
  now: number
  observations: Map<string, NodeObservation>
  /** Eligible alive members, for joiners of an unscoped rollout. */
  members: string[]
  /** When each node was first seen ready on the rollout's version (kept by the manager between steps). */
  readySince: Map<string, number>
  /**
   * Nodes dead for less than this still hold the end of a rollout: a false
   * verdict under load is refuted within seconds, and the node then takes its
   * turn instead of being left behind as `lost`. Default 0.
   */
  lostAfterMs?: number
  /**
   * The load balancers' figures for an analysis window, new version against the
   * others, once the manager has gathered them (null: not yet).
   */
  traffic?: (window: AnalysisWindow) => WindowTraffic | null
}

export type AnalysisWindow = NonNullable<RolloutRecord['window']>

/** One window's traffic, as the manager gathered it from the load balancers. */
export interface WindowTraffic {
  canary: TrafficFigures
  baseline: TrafficFigures
  sources: { answered: number; known: number }
}

/**
 * How many nodes run the new version at gate `k`, where the rollout stops for a
 * verdict (analysis) or an approval; null past the last gate (every node goes).
 * A canary's gates are its steps but the last (100 %); a rolling rollout with
 * analysis stops after each batch of maxUnavailable nodes while some node is
 * left on the old version.
 */
export function gateSize(rollout: RolloutRecord, k: number, total: number): number | null {
  if (rollout.strategy === 'canary') {
    if (rollout.approved) return null
    if (rollout.steps == null)
      return k === 0 ? Math.max(1, Math.ceil((rollout.canaryPercent / 100) * total)) : null
    if (k >= rollout.steps.length - 1) return null
    return Math.max(1, Math.ceil((rollout.steps[k]! / 100) * total))
  }
  if (rollout.strategy === 'rolling' && rollout.analysis != null) {
    const size = (k + 1) * rollout.maxUnavailable
    return size >= total ? null : size
  }
  return null
}

/** Past the current gate: the next step (an approval, or a passed verdict with auto approval). */
export function advance(rollout: RolloutRecord): void {
  if (rollout.strategy !== 'canary' && !rollout.approved) {
    rollout.approved = true // a gated start (manual approval of rolling or all at once)
    return
  }
  const k = (rollout.stepIndex ?? 0) + 1
  rollout.stepIndex = k
  rollout.window = null
  if (rollout.strategy === 'canary' && gateSize(rollout, k, Object.keys(rollout.progress).length) == null)
    rollout.approved = true
}

/** Sends every node that moved (or is moving) to the new version back to where it was. */
export function sendBack(rollout: RolloutRecord): void {
  for (const [id, s] of Object.entries(rollout.progress))
    if ((s === 'updating' || s === 'done' || s === 'failed') && baseOf(rollout, id) != null)
      rollout.progress[id] = 'reverting'
}

/**
 * One step of a rollout, a pure function of the record and what the manager
 * observes: nodes finish or fail their switch, joiners enter as pending, the
 * failure threshold sends failed nodes back, and the strategy lets the next
 * nodes go. Returns the same object when nothing changed.
 */
export function step(rollout: RolloutRecord, ctx: StepContext): RolloutRecord {
  if (isFinished(rollout)) return rollout
  const next: RolloutRecord = { ...rollout, progress: { ...rollout.progress } }
  const { progress } = next
  const seen = (id: string) => ctx.observations.get(id)

  // Joiners of an unscoped rollout take part, starting from where the rollout is.
  if (
    next.scope.length === 0 &&
    (next.state === 'running' || next.state === 'waiting-approval' || next.state === 'paused')
  )
    for (const id of ctx.members) if (progress[id] == null) progress[id] = 'pending'

  // Nodes finishing their switch, forward or back.
  for (const [id, status] of Object.entries(progress)) {
    const node = seen(id)
    if (node == null || !node.alive) continue
    if (status === 'updating' || status === 'reverting') {
      const goal = status === 'updating' ? next.distribution : baseOf(next, id)
      if (status === 'updating' && node.failed && node.target === goal) {
        progress[id] = 'failed'
        next.failures = { ...next.failures, [id]: (node.error ?? 'failed').slice(0, FAILURE_CHARS) }
        ctx.readySince.delete(id)
        continue
      }
      const onGoal = node.active === goal && node.target === goal && node.phase === 'done' && node.ready
      if (!onGoal) {
        ctx.readySince.delete(id)
        const since = Date.parse(next.updatingSince?.[id] ?? '')
        const deadline = next.progressDeadlineMs
        if (status === 'updating' && deadline != null && ctx.now - since > deadline) {
          progress[id] = 'failed'
          const where = `${node.phase ?? 'no phase'}${node.error == null ? '' : `: ${node.error}`}`
          next.failures = {
            ...next.failures,
            [id]: `not done within the progress deadline (${deadline / 1000} s): ${where}`.slice(
              0,
              FAILURE_CHARS,
            ),
          }
        }
        continue
      }
      const since = ctx.readySince.get(id) ?? ctx.now
      ctx.readySince.set(id, since)
      if (status === 'reverting') progress[id] = 'reverted'
      else if (ctx.now - since >= next.minReadyMs) progress[id] = 'done'
    }
  }

  const count = (status: NodeProgress) => Object.values(progress).filter((s) => s === status).length
  const aliveWith = (status: NodeProgress) =>
    Object.entries(progress)
      .filter(([id, s]) => s === status && seen(id)?.alive === true)
      .map(([id]) => id)

  // Crossing the failure threshold stops the rollout, and by default sends the failed nodes back.
  if (
    (next.state === 'running' || next.state === 'waiting-approval' || next.state === 'paused') &&
    count('failed') >= next.failureThreshold
  ) {
    next.reason = `${count('failed')} node(s) failed (threshold ${next.failureThreshold})`
    // A node that ran nothing before has nothing to go back to: it stays failed.
    const back = Object.entries(progress).filter(
      ([id, s]) => (s === 'failed' || s === 'updating') && baseOf(next, id) != null,
    )
    if (next.autoRollback && back.length > 0) {
      for (const [id] of back) progress[id] = 'reverting'
      next.state = 'rolling-back'
    } else {
      next.state = 'failed'
      next.finishedAt = new Date(ctx.now).toISOString()
    }
  }

  if (next.state === 'rolling-back') {
    if (aliveWith('reverting').length === 0) {
      // Sent back by a verdict: the rollout failed (its figures say why), it was not merely undone.
      const byVerdict = next.verdicts?.at(-1)?.decision === 'rolled back'
      next.state = next.reason === 'aborted' ? 'aborted' : byVerdict ? 'failed' : 'rolled-back'
      next.finishedAt = new Date(ctx.now).toISOString()
    }
    return changed(rollout, next)
  }

  // A gated rolling or all-at-once rollout (manual approval) moves no node before it is approved.
  if (next.state === 'running' && next.strategy !== 'canary' && !next.approved) {
    next.state = 'waiting-approval'
    return changed(rollout, next)
  }

  if (next.state === 'running') {
    const total = Object.keys(progress).length
    const step = next.stepIndex ?? 0
    const gate = gateSize(next, step, total)
    // Only alive nodes count: a canary node that dies is replaced, never taken as a success.
    const started = () => aliveWith('updating').length + aliveWith('done').length + aliveWith('failed').length
    const inCanary = next.strategy === 'canary' && gate != null
    // keepOneServing: until a node is done on the new version, one alive node stays on the
    // old one; a failed node counts as moved (it may serve nothing).
    const holdOne =
      next.strategy === 'all-at-once' && next.keepOneServing === true && aliveWith('done').length === 0
    const aliveCount = Object.keys(progress).filter((id) => seen(id)?.alive === true).length
    const limit = holdOne
      ? Math.max(1, aliveCount - 1)
      : next.strategy === 'all-at-once'
        ? total
        : inCanary
          ? gate
          : next.maxUnavailable
    const moving = () => aliveWith('updating').length + (holdOne ? aliveWith('failed').length : 0)
    const pending = aliveWith('pending').sort()
    for (const id of pending) {
      if (moving() >= limit) break
      if (gate != null && started() >= gate) break
      progress[id] = 'updating'
      next.updatingSince = { ...next.updatingSince, [id]: new Date(ctx.now).toISOString() }
    }
    const aliveTotal = Object.keys(progress).filter((id) => seen(id)?.alive === true).length
    const gateReached =
      gate != null &&
      aliveWith('done').length + aliveWith('failed').length >= Math.min(gate, aliveTotal) &&
      aliveWith('updating').length === 0
    if (gateReached) {
      // A step with a failed node (below the threshold) waits for a person even with auto approval.
      const failedHere = aliveWith('failed').length > 0
      if (next.analysis == null) {
        if (next.approve === 'auto' && !failedHere) advance(next)
        else next.state = 'waiting-approval'
      } else {
        const onOld = Object.entries(progress).filter(
          ([id, s]) => (s === 'pending' || s === 'reverted') && seen(id)?.alive === true,
        ).length
        judgeStep(next, step, { now: ctx.now, traffic: ctx.traffic, failedHere, onOld, total })
      }
      if ((next.state as string) === 'rolling-back' || (next.state as string) === 'failed')
        return changed(rollout, next)
    }
    const recentlyDead = Object.entries(progress).filter(([id, s]) => {
      const node = seen(id)
      return (
        (s === 'pending' || s === 'updating') &&
        node != null &&
        !node.alive &&
        node.deadSince != null &&
        ctx.now - node.deadSince < (ctx.lostAfterMs ?? 0)
      )
    }).length
    const open = aliveWith('pending').length + aliveWith('updating').length + recentlyDead
    if (
      open === 0 &&
      total > 0 &&
      next.state === 'running' &&
      gateSize(next, next.stepIndex ?? 0, total) == null
    ) {
      next.state = 'done'
      next.finishedAt = new Date(ctx.now).toISOString()
      // Dead nodes did not take part: say so rather than leave them pending for ever.
      for (const [id, s] of Object.entries(progress))
        if ((s === 'pending' || s === 'updating') && seen(id)?.alive !== true) progress[id] = 'lost'
    }
  }
  return changed(rollout, next)
}

/**
 * At a gate of a rollout with analysis: opens the step's window of traffic, and
 * once it has ended (and the manager has its figures) gives the verdict and acts
 * on it: pass → the next step (or approval); fail → every moved node back, the
 * rollout `failed`; inconclusive → as fail, or paused for a person (`onMissing`).
 */
function judgeStep(
  next: RolloutRecord,
  step: number,
  at: {
    now: number
    traffic: StepContext['traffic']
    failedHere: boolean
    onOld: number
    total: number
  },
): void {
  const analysis = next.analysis!
  const window = next.window
  if (window == null || window.step !== step) {
    next.window = {
      step,
      from: new Date(at.now).toISOString(),
      to: new Date(at.now + analysis.intervalMs).toISOString(),
    }
    return
  }
  if (at.now < Date.parse(window.to) + ANALYSIS_GRACE_MS) return
  const traffic = at.traffic?.(window) ?? null
  if (traffic == null) return // the manager is gathering the figures
  const judged = judge(analysis, { ...traffic, baselineNodes: at.onOld })
  const percent = Math.round((100 * (at.total - at.onOld)) / Math.max(1, at.total))
  const stepName = `step ${step + 1} (${percent}%)`
  let decision: string
  if (judged.verdict === 'pass') {
    if (next.approve === 'auto' && !at.failedHere) {
      decision = 'next step'
      advance(next)
    } else {
      decision = 'waiting for approval'
      next.state = 'waiting-approval'
      next.window = null
    }
  } else if (judged.verdict === 'inconclusive' && analysis.onMissing === 'pause') {
    decision = 'paused'
    next.state = 'paused'
    next.window = null
    next.reason = `analysis inconclusive at ${stepName}: ${judged.reason}`
  } else {
    next.window = null
    next.reason =
      `analysis ${judged.verdict === 'fail' ? 'failed' : 'inconclusive'} at ${stepName}: ${judged.reason}`.slice(
        0,
        500,
      )
    const back = Object.entries(next.progress).some(
      ([id, s]) => (s === 'updating' || s === 'done' || s === 'failed') && baseOf(next, id) != null,
    )
    if (next.autoRollback && back) {
      decision = 'rolled back'
      sendBack(next)
      next.state = 'rolling-back'
    } else {
      decision = 'failed'
      next.state = 'failed'
      next.finishedAt = new Date(at.now).toISOString()
    }
  }
  const verdict: Verdict = {
    step,
    percent,
    from: window.from,
    to: window.to,
    at: new Date(at.now).toISOString(),
    verdict: judged.verdict,
    canary: traffic.canary,
    baseline: traffic.baseline,
    checks: judged.checks,
    sources: traffic.sources,
    decision,
    reason: judged.reason.slice(0, 500),
  }
  next.verdicts = [...(next.verdicts ?? []), verdict].slice(-MAX_VERDICTS)
}

/**
 * Whether a leader may step `rollout` now. A process that just started leading (a
 * restart, a transfer) may not have heard of every member yet, and a node missing from
 * its view would count as gone: its slot freed, or the node left behind as `lost`. So
 * while a node the rollout names is unobserved, a leader waits `graceMs` from when it
 * started leading (then a node still unknown is gone indeed).
 */
export function mayStep(
  rollout: RolloutRecord,
  observations: ReadonlyMap<string, NodeObservation>,
  leadingForMs: number,
  graceMs: number,
): boolean {
  if (leadingForMs >= graceMs) return true
  return Object.keys(rollout.progress).every((id) => observations.has(id))
}

/**
 * When each node was first seen ready on its goal, as one leader's loop saw it (the
 * min-ready clock). It belongs to one rollout in one term: a reading from an earlier
 * rollout, or from before this process last led, must not count for this one.
 */
export class ReadyClock {
  private key = ''
  private readonly since = new Map<string, number>()

  /** The map step() reads and writes for `rolloutId` in `term` (emptied when either changed). */
  for(rolloutId: string, term: number): Map<string, number> {
    const key = `${term}/${rolloutId}`
    if (key !== this.key) {
      this.key = key
      this.since.clear()
    }
    return this.since
  }

  get(id: string): number | undefined {
    return this.since.get(id)
  }
}

function changed(before: RolloutRecord, after: RolloutRecord): RolloutRecord {
  return JSON.stringify(before) === JSON.stringify(after) ? before : after
}

/**
 * What every node should run, from the newest rollout: while it goes on, each
 * node by its progress (nodes not in it keep what they ran before); once done,
 * the new version becomes the default (a scoped rollout pins it on its nodes);
 * once rolled back, the nodes sent back (the failed ones) are where they were
 * and the nodes that had finished keep the new version (the issue: "rolls those
 * nodes back"); once aborted, everyone is where they were.
 */
export function targetsOf(rollout: RolloutRecord): {
  defaultTarget: string | null
  targets: Record<string, string>
} {
  if (rollout.state === 'done' && rollout.scope.length === 0)
    return { defaultTarget: rollout.distribution, targets: {} }
  const targets: Record<string, string> = { ...rollout.baseTargets }
  for (const id of Object.keys(rollout.progress)) {
    const target = nodeTarget(rollout, id)
    if (target == null || target === rollout.baseDefault) delete targets[id]
    else targets[id] = target
  }
  return { defaultTarget: rollout.baseDefault, targets }
}
