/**
 * What a command does to the cluster state, decided on the leader from the
 * state it has applied: pure functions from (state, command, what the leader
 * sees) to the next state and the answer, or a coded refusal. The leader then
 * proposes the difference as one log entry (consensus/cluster-machine.ts).
 */
import { z } from 'zod'
import type { Member } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'
import { NotFoundError } from '../shared/index.js'
import { ON_MISSING, parseCondition } from './analysis.js'
import { ROLLOUT_DEFAULTS } from './constants.js'
import { isEligible } from './election.js'
import {
  BadAnalysisError,
  NotPausedError,
  NotWaitingError,
  RolloutFinishedError,
  UnknownNodeError,
  VersionInUseError,
} from './errors.js'
import { type ClusterState, MAX_ACTIONS, ROLLOUT_STRATEGIES, type RolloutRecord } from './record.js'
import { advance, isFinished, type NodeObservation, sendBack, targetsOf } from './rollout-engine.js'
import { whyInUse, withUnpublished } from './unpublish.js'

export const rolloutCommand = z.strictObject({
  op: z.literal('rollout'),
  distribution: z.string().min(3).max(200),
  strategy: z.enum(ROLLOUT_STRATEGIES).default('all-at-once'),
  maxUnavailable: z.number().int().min(1).optional(),
  maxUnavailablePercent: z.number().min(1).max(100).optional(),
  canaryPercent: z.number().min(1).max(100).optional(),
  approve: z.enum(['manual', 'auto']).optional(),
  minReadyMs: z.number().int().min(0).max(3_600_000).optional(),
  failureThreshold: z.number().int().min(1).optional(),
  /** A node's switch not done this long after its turn came fails (default 600 000). */
  progressDeadlineMs: z.number().int().min(1000).max(86_400_000).optional(),
  autoRollback: z.boolean().default(true),
  nodes: z.array(z.string()).default([]),
  requestedBy: z.string().default(''),
  /** Canary steps, percent of the nodes, rising; 100 is added when missing. */
  steps: z.array(z.number().min(1).max(100)).min(1).max(19).optional(),
  /** Analysis conditions (analysis.ts): each step is judged by the load balancers' figures. */
  analysis: z.array(z.string().min(1).max(100)).min(1).max(10).optional(),
  /** Length of each step's window of traffic (default 30 000). */
  intervalMs: z.number().int().min(1000).max(3_600_000).optional(),
  /** Fewer requests in a window make the verdict inconclusive (default 100). */
  minRequests: z.number().int().min(1).max(1_000_000_000).optional(),
  /** An inconclusive verdict fails the rollout (default) or pauses it for a person. */
  onMissing: z.enum(ON_MISSING).optional(),
})
export const rollbackCommand = rolloutCommand
  .omit({ op: true, distribution: true })
  .extend({ op: z.literal('rollback'), name: z.string().min(1).max(100), to: z.string().optional() })
export const controlCommand = z.strictObject({
  op: z.enum(['approve', 'pause', 'resume', 'abort']),
  id: z.string().min(1).max(40),
  requestedBy: z.string().default(''),
})
export const commandSchema = z.union([rolloutCommand, rollbackCommand, controlCommand])
/** `shoal unpublish`: a version never rolled out leaves the cluster (docs/distributions.md). */
export const unpublishCommand = z.strictObject({
  op: z.literal('unpublish'),
  id: z.string().min(3).max(200),
  requestedBy: z.string().max(200).default(''),
})
export type ManagerCommand = z.input<typeof commandSchema>
export type ParsedCommand = z.output<typeof commandSchema>
export type ParsedUnpublish = z.output<typeof unpublishCommand>
export type RolloutRequest = Omit<z.output<typeof rolloutCommand>, 'op'> & { kind: 'rollout' | 'rollback' }

/** What an unpublish did: `already-unpublished` when an earlier request had (nothing changed). */
export interface Unpublishing {
  result: 'unpublished' | 'already-unpublished'
  entry: { id: string; by: string; at: string }
}

/** A new rollout (or rollback) record, as the first one of the state; the ones it supersedes are marked. */
export function startRollout(
  state: ClusterState,
  request: RolloutRequest,
  members: Member[],
  keepOneServing: (record: RolloutRecord) => boolean,
): RolloutRecord {
  const created = newRollout(state, request, members)
  // Nodes switch make-before-break, so all at once keeps serving, except where a
  // component cannot run twice on a node: then one node waits for another (docs/manager.md).
  if (created.strategy === 'all-at-once' && keepOneServing(created)) created.keepOneServing = true
  for (const r of state.rollouts) if (!isFinished(r)) r.state = 'superseded'
  state.rollouts = [created, ...state.rollouts]
  Object.assign(state, targetsOf(created))
  return created
}

/** approve, pause, resume or abort of rollout `command.id`, with who and when in its audit trail. */
export function controlRollout(
  state: ClusterState,
  command: z.output<typeof controlCommand>,
  now: Date,
): RolloutRecord {
  const rollout = state.rollouts.find((r) => r.id === command.id)
  if (rollout == null) throw new NotFoundError(`no rollout ${command.id}`)
  if (isFinished(rollout) || rollout.state === 'rolling-back')
    throw new RolloutFinishedError(command.id, rollout.state)
  if (command.op === 'approve') {
    // A pause after an inconclusive verdict is a question to a person too: approve takes the step as passed.
    const inconclusive =
      rollout.state === 'paused' &&
      rollout.verdicts?.at(-1)?.decision === 'paused' &&
      rollout.verdicts.at(-1)?.step === (rollout.stepIndex ?? 0)
    if (rollout.state !== 'waiting-approval' && !inconclusive)
      throw new NotWaitingError(command.id, rollout.state)
    advance(rollout)
    rollout.state = 'running'
    rollout.reason = null
  } else if (command.op === 'pause') rollout.state = 'paused'
  else if (command.op === 'resume') {
    if (rollout.state !== 'paused') throw new NotPausedError(command.id)
    // After an inconclusive verdict, resume gathers a new window for the same step.
    rollout.state = 'running'
    if (rollout.reason?.startsWith('analysis inconclusive') === true) rollout.reason = null
  } else {
    rollout.reason = 'aborted'
    rollout.state = 'rolling-back'
    rollout.window = null
    sendBack(rollout)
  }
  // The audit trail: who approved, paused, resumed or aborted it, and when.
  const act = { op: command.op, by: command.requestedBy, at: now.toISOString() }
  rollout.actions = [...(rollout.actions ?? []), act].slice(-MAX_ACTIONS)
  if (state.rollouts[0] === rollout) Object.assign(state, targetsOf(rollout))
  return rollout
}

/** Records `command.id` as unpublished, or says it already is; refuses a version in use. */
export function unpublishVersion(
  state: ClusterState,
  command: ParsedUnpublish,
  members: Member[],
  now: Date,
): { state: ClusterState; done: Unpublishing } {
  const already = state.unpublished?.find((u) => u.id === command.id)
  if (already != null) return { state, done: { result: 'already-unpublished', entry: already } }
  const nodes = [...observe(members).values()]
  const why = whyInUse(state, nodes, command.id)
  if (why != null) throw new VersionInUseError(command.id, why)
  const entry = { id: command.id, by: command.requestedBy, at: now.toISOString() }
  return { state: withUnpublished(state, entry), done: { result: 'unpublished', entry } }
}

function newRollout(state: ClusterState, request: RolloutRequest, members: Member[]): RolloutRecord {
  const eligible = members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id)
  const scope = request.nodes
  const unknown = scope.filter((id) => !members.some((m) => m.id === id))
  if (unknown.length > 0) throw new UnknownNodeError(unknown)
  const nodes = scope.length > 0 ? scope : eligible
  const n = Math.max(1, nodes.length)
  const rolling = request.strategy !== 'all-at-once'
  const gated = request.strategy !== 'canary' && request.approve === 'manual'
  const maxUnavailable =
    request.maxUnavailable ??
    (request.maxUnavailablePercent == null
      ? ROLLOUT_DEFAULTS.maxUnavailable
      : Math.max(1, Math.floor((request.maxUnavailablePercent / 100) * n)))
  const number = Math.max(0, ...state.rollouts.map((r) => Number(r.id.slice(1)) || 0)) + 1
  const current = state.rollouts[0]
  const base =
    current != null ? targetsOf(current) : { defaultTarget: state.defaultTarget, targets: state.targets }
  const progressive = progressiveOf(request)
  return {
    ...progressive,
    id: `r${number}`,
    kind: request.kind,
    distribution: request.distribution,
    from: base.defaultTarget,
    strategy: request.strategy,
    maxUnavailable: request.strategy === 'all-at-once' ? n : maxUnavailable,
    canaryPercent:
      request.canaryPercent ?? (request.strategy === 'canary' ? ROLLOUT_DEFAULTS.canaryPercent : 0),
    // With analysis the verdicts approve each step; without, a canary waits for a person.
    approve:
      request.approve ?? (request.strategy === 'canary' && request.analysis == null ? 'manual' : 'auto'),
    minReadyMs: request.minReadyMs ?? (rolling ? ROLLOUT_DEFAULTS.minReadyMs : 0),
    failureThreshold: request.failureThreshold ?? ROLLOUT_DEFAULTS.failureThreshold,
    progressDeadlineMs: request.progressDeadlineMs ?? ROLLOUT_DEFAULTS.progressDeadlineMs,
    autoRollback: request.autoRollback,
    scope,
    // Manual approval of a rolling or all-at-once rollout gates its start: nothing moves until approved.
    state: gated ? 'waiting-approval' : 'running',
    baseDefault: base.defaultTarget,
    baseTargets: base.targets,
    progress: Object.fromEntries(nodes.map((id) => [id, 'pending'])),
    approved: request.strategy !== 'canary' && !gated,
    requestedBy: request.requestedBy,
    requestedAt: new Date().toISOString(),
    finishedAt: null,
    reason: null,
  }
}

/**
 * A request's steps and analysis, checked: steps only for a canary, rising, ending
 * at 100; conditions that parse; analysis with canary or rolling (all at once has
 * no step to judge).
 */
function progressiveOf(request: RolloutRequest): Pick<RolloutRecord, 'steps' | 'analysis'> {
  const out: Pick<RolloutRecord, 'steps' | 'analysis'> = {}
  if (request.steps != null) {
    if (request.strategy !== 'canary')
      throw new BadAnalysisError(
        '--steps is for --strategy canary (rolling moves --max-unavailable nodes at a time)',
      )
    const steps = [...request.steps]
    if (steps.some((p, i) => i > 0 && p <= steps[i - 1]!))
      throw new BadAnalysisError(`steps must rise: ${steps.join(',')}`)
    if (steps.at(-1) !== 100) steps.push(100)
    out.steps = steps
  }
  const options = [request.intervalMs, request.minRequests, request.onMissing].some((v) => v != null)
  if (request.analysis == null) {
    if (options) throw new BadAnalysisError('--interval, --min-requests and --on-missing go with --analysis')
    return out
  }
  if (request.strategy === 'all-at-once')
    throw new BadAnalysisError('--analysis judges steps: use it with --strategy canary or rolling')
  for (const text of request.analysis) parseCondition(text)
  out.analysis = {
    conditions: request.analysis.map((c) => c.trim()),
    intervalMs: request.intervalMs ?? ROLLOUT_DEFAULTS.intervalMs,
    minRequests: request.minRequests ?? ROLLOUT_DEFAULTS.minRequests,
    onMissing: request.onMissing ?? 'fail',
  }
  return out
}

/** What each member's metadata says about its runtime. */
export function observe(members: readonly Member[]): Map<string, NodeObservation> {
  const found = new Map<string, NodeObservation>()
  for (const m of members) {
    const { runtime = {}, components = [], distribution = null } = runtimeAnnouncement.of(m)
    const failedComponents = components
      .filter((c) => c.state === 'failed')
      .map((c) => `${c.name} failed${c.error == null ? '' : `: ${c.error}`}`)
    found.set(m.id, {
      id: m.id,
      // A suspected node keeps its place (and its slot in max-unavailable) until declared dead.
      alive: m.state === 'alive' || m.state === 'suspect',
      deadSince: m.state === 'dead' ? m.since : null,
      active: distribution,
      target: runtime.target ?? null,
      phase: runtime.phase ?? null,
      ready: components.every((c) => c.state === 'ready'),
      failed: runtime.phase === 'failed' || failedComponents.length > 0,
      error: runtime.error ?? (failedComponents.length > 0 ? failedComponents.join('; ') : null),
    })
  }
  return found
}
