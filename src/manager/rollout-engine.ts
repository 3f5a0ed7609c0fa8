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
      next.state = next.reason === 'aborted' ? 'aborted' : 'rolled-back'
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
    const canarySize = Math.max(1, Math.ceil((next.canaryPercent / 100) * total))
    // Only alive nodes count: a canary node that dies is replaced, never taken as a success.
    const started = () => aliveWith('updating').length + aliveWith('done').length + aliveWith('failed').length
    const inCanary = next.strategy === 'canary' && !next.approved
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
          ? canarySize
          : next.maxUnavailable
    const moving = () => aliveWith('updating').length + (holdOne ? aliveWith('failed').length : 0)
    const pending = aliveWith('pending').sort()
    for (const id of pending) {
      if (moving() >= limit) break
      if (inCanary && started() >= canarySize) break
      progress[id] = 'updating'
      next.updatingSince = { ...next.updatingSince, [id]: new Date(ctx.now).toISOString() }
    }
    const aliveTotal = Object.keys(progress).filter((id) => seen(id)?.alive === true).length
    const canaryDone =
      aliveWith('done').length + aliveWith('failed').length >= Math.min(canarySize, aliveTotal) &&
      aliveWith('updating').length === 0
    if (inCanary && canaryDone) {
      // A canary with a failed node (below the threshold) waits for a person even with auto approval.
      if (next.approve === 'auto' && aliveWith('failed').length === 0) next.approved = true
      else next.state = 'waiting-approval'
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
    if (open === 0 && total > 0 && next.state === 'running' && (!inCanary || next.approved)) {
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
