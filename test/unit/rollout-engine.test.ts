import { describe, expect, it } from 'vitest'
import type { NodeProgress, RolloutRecord } from '../../src/manager/record.js'
import {
  baseOf,
  type NodeObservation,
  nodeTarget,
  type StepContext,
  step,
  targetsOf,
} from '../../src/manager/rollout-engine.js'
import { rolloutRecord } from '../helpers/rollout-record.js'

const OLD = 'app@1'
const NEW = 'app@2'

function rollout(overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return rolloutRecord({ distribution: NEW, from: OLD, ...overrides })
}

function progressOf(entries: Record<string, NodeProgress>): Record<string, NodeProgress> {
  return entries
}

function allPending(...ids: string[]): Record<string, NodeProgress> {
  return Object.fromEntries(ids.map((id) => [id, 'pending' as const]))
}

/** A node that runs `version`, switched and ready. */
function on(id: string, version: string | null): NodeObservation {
  return { id, alive: true, active: version, target: version, phase: 'done', ready: true, failed: false }
}

/** A node still switching from `from` to `to`. */
function switching(id: string, from: string, to: string): NodeObservation {
  return { id, alive: true, active: from, target: to, phase: 'starting', ready: false, failed: false }
}

/** A node whose switch to `to` failed. */
function failing(id: string, from: string, to: string): NodeObservation {
  return { id, alive: true, active: from, target: to, phase: 'failed', ready: false, failed: true }
}

function dead(id: string, version: string = OLD): NodeObservation {
  return { ...on(id, version), alive: false }
}

/** A step context; members default to the alive observed nodes. */
function ctx(
  now: number,
  nodes: NodeObservation[],
  options: { readySince?: Map<string, number>; members?: string[] } = {},
): StepContext {
  return {
    now,
    observations: new Map(nodes.map((n) => [n.id, n])),
    members: options.members ?? nodes.filter((n) => n.alive).map((n) => n.id),
    readySince: options.readySince ?? new Map(),
  }
}

function withStatus(record: RolloutRecord, status: NodeProgress): string[] {
  return Object.entries(record.progress)
    .filter(([, s]) => s === status)
    .map(([id]) => id)
    .sort()
}

/**
 * Runs a rollout against nodes that switch instantly to whatever the previous
 * step told them to run, one step every `interval` ms, and records every step.
 */
function simulate(start: RolloutRecord, ids: string[], interval = 500, isDead = new Set<string>()) {
  const readySince = new Map<string, number>()
  const history: RolloutRecord[] = []
  let record = start
  for (let now = 0; now <= 100 * interval; now += interval) {
    const nodes = ids.map((id) => (isDead.has(id) ? dead(id) : on(id, nodeTarget(record, id))))
    record = step(record, ctx(now, nodes, { readySince }))
    history.push(record)
    if (['done', 'failed', 'rolled-back', 'waiting-approval'].includes(record.state)) break
  }
  return { record, history }
}

describe('step: rolling', () => {
  const nodes = ['a', 'b', 'c']

  it('starts only the first pending node (by id) with maxUnavailable 1', () => {
    const next = step(
      rollout({ progress: allPending('c', 'a', 'b') }),
      ctx(
        0,
        nodes.map((id) => on(id, OLD)),
      ),
    )
    expect(next.progress).toEqual({ a: 'updating', b: 'pending', c: 'pending' })
    expect(next.state).toBe('running')
  })

  it('starts as many nodes as maxUnavailable allows', () => {
    const record = rollout({ maxUnavailable: 2, progress: allPending('a', 'b', 'c') })
    expect(
      withStatus(
        step(
          record,
          ctx(
            0,
            nodes.map((id) => on(id, OLD)),
          ),
        ),
        'updating',
      ),
    ).toEqual(['a', 'b'])
  })

  it('waits while the updating node is still switching', () => {
    const record = rollout({ minReadyMs: 1_000, progress: progressOf({ a: 'updating', b: 'pending' }) })
    const next = step(record, ctx(5_000, [switching('a', OLD, NEW), on('b', OLD)]))
    expect(next).toBe(record)
  })

  it('advances only after the node has been ready on the new version for minReadyMs', () => {
    const readySince = new Map<string, number>()
    const record = rollout({ minReadyMs: 1_000, progress: progressOf({ a: 'updating', b: 'pending' }) })
    const nodesNow = [on('a', NEW), on('b', OLD)]

    const first = step(record, ctx(10_000, nodesNow, { readySince }))
    expect(first).toBe(record)
    expect(readySince.get('a')).toBe(10_000)

    expect(step(record, ctx(10_999, nodesNow, { readySince }))).toBe(record)

    const after = step(record, ctx(11_000, nodesNow, { readySince }))
    expect(after.progress).toEqual({ a: 'done', b: 'updating' })
  })

  it('restarts the minReadyMs window when the node stops being ready', () => {
    const readySince = new Map<string, number>()
    const record = rollout({ minReadyMs: 1_000, progress: progressOf({ a: 'updating', b: 'pending' }) })
    step(record, ctx(0, [on('a', NEW), on('b', OLD)], { readySince }))
    step(record, ctx(500, [{ ...on('a', NEW), ready: false }, on('b', OLD)], { readySince }))
    expect(readySince.has('a')).toBe(false)
    expect(step(record, ctx(1_000, [on('a', NEW), on('b', OLD)], { readySince }))).toBe(record)
    expect(step(record, ctx(2_000, [on('a', NEW), on('b', OLD)], { readySince })).progress.a).toBe('done')
  })

  it('does not count a node as done before its switch phase is done', () => {
    const record = rollout({ progress: progressOf({ a: 'updating', b: 'pending' }) })
    const notDone = { ...on('a', NEW), phase: 'starting' }
    expect(step(record, ctx(0, [notDone, on('b', OLD)]))).toBe(record)
  })

  it('does not count a node as done while it still runs the old version', () => {
    const record = rollout({ progress: progressOf({ a: 'updating', b: 'pending' }) })
    const stale = { ...on('a', OLD), target: NEW }
    expect(step(record, ctx(0, [stale, on('b', OLD)]))).toBe(record)
  })

  it('never has more than one node updating and finishes them in order', () => {
    const ids = ['e', 'd', 'c', 'b', 'a']
    const { record, history } = simulate(rollout({ minReadyMs: 1_000, progress: allPending(...ids) }), ids)
    for (const r of history) expect(withStatus(r, 'updating').length).toBeLessThanOrEqual(1)
    expect(record.state).toBe('done')
    expect(withStatus(record, 'done')).toEqual(['a', 'b', 'c', 'd', 'e'])
    const doneOrder: string[] = []
    for (const r of history)
      for (const id of withStatus(r, 'done')) if (!doneOrder.includes(id)) doneOrder.push(id)
    expect(doneOrder).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('never has more than maxUnavailable nodes updating', () => {
    const ids = ['a', 'b', 'c', 'd', 'e']
    const { record, history } = simulate(
      rollout({ maxUnavailable: 2, minReadyMs: 1_000, progress: allPending(...ids) }),
      ids,
    )
    expect(Math.max(...history.map((r) => withStatus(r, 'updating').length))).toBe(2)
    expect(record.state).toBe('done')
  })

  it('finishes as done, with the time it finished, once every node is done', () => {
    const record = rollout({ progress: progressOf({ a: 'done', b: 'updating' }) })
    const next = step(record, ctx(86_400_000, [on('a', NEW), on('b', NEW)]))
    expect(next.state).toBe('done')
    expect(next.progress).toEqual({ a: 'done', b: 'done' })
    expect(next.finishedAt).toBe('1970-01-02T00:00:00.000Z')
  })
})

describe('step: all-at-once', () => {
  it('starts every node at once', () => {
    const ids = ['a', 'b', 'c', 'd']
    const record = rollout({ strategy: 'all-at-once', maxUnavailable: 4, progress: allPending(...ids) })
    const next = step(
      record,
      ctx(
        0,
        ids.map((id) => on(id, OLD)),
      ),
    )
    expect(withStatus(next, 'updating')).toEqual(ids)
  })

  it('ignores maxUnavailable', () => {
    const ids = ['a', 'b', 'c']
    const record = rollout({ strategy: 'all-at-once', maxUnavailable: 1, progress: allPending(...ids) })
    expect(
      withStatus(
        step(
          record,
          ctx(
            0,
            ids.map((id) => on(id, OLD)),
          ),
        ),
        'updating',
      ),
    ).toEqual(ids)
  })

  it('is done in the step after every node switched', () => {
    const ids = ['a', 'b', 'c']
    const { history } = simulate(rollout({ strategy: 'all-at-once', progress: allPending(...ids) }), ids)
    expect(history.map((r) => r.state)).toEqual(['running', 'done'])
  })

  it('keeps one node on the old version until another is ready when a component cannot run twice', () => {
    const ids = ['a', 'b', 'c']
    const record = rollout({
      strategy: 'all-at-once',
      maxUnavailable: 3,
      keepOneServing: true,
      progress: allPending(...ids),
    })
    const first = step(
      record,
      ctx(
        0,
        ids.map((id) => on(id, OLD)),
      ),
    )
    expect(withStatus(first, 'updating')).toEqual(['a', 'b'])
    expect(withStatus(first, 'pending')).toEqual(['c'])
    // Still switching: c keeps serving the old version.
    const waiting = step(first, ctx(10, [switching('a', OLD, NEW), switching('b', OLD, NEW), on('c', OLD)]))
    expect(withStatus(waiting, 'pending')).toEqual(['c'])
    // a is ready on the new version: c may go.
    const next = step(waiting, ctx(20, [on('a', NEW), switching('b', OLD, NEW), on('c', OLD)]))
    expect(next.progress).toEqual({ a: 'done', b: 'updating', c: 'updating' })
  })

  it('keeps one alive node back when another is dead, and counts a failed node as moved', () => {
    const ids = ['a', 'b', 'c', 'd']
    const record = rollout({
      strategy: 'all-at-once',
      maxUnavailable: 4,
      keepOneServing: true,
      failureThreshold: 2,
      progress: allPending(...ids),
    })
    const first = step(record, ctx(0, [on('a', OLD), on('b', OLD), on('c', OLD), dead('d')]))
    expect(withStatus(first, 'updating')).toEqual(['a', 'b'])
    const next = step(
      first,
      ctx(10, [failing('a', OLD, NEW), switching('b', OLD, NEW), on('c', OLD), dead('d')]),
    )
    expect(next.progress.a).toBe('failed')
    expect(next.progress.c).toBe('pending')
  })

  it('moves a single node even when it is the only one serving', () => {
    const record = rollout({
      strategy: 'all-at-once',
      maxUnavailable: 1,
      keepOneServing: true,
      progress: allPending('a'),
    })
    expect(withStatus(step(record, ctx(0, [on('a', OLD)])), 'updating')).toEqual(['a'])
  })
})

describe('step: canary', () => {
  const ids = ['a', 'b', 'c', 'd', 'e']
  const canary = (overrides: Partial<RolloutRecord> = {}) =>
    rollout({
      strategy: 'canary',
      canaryPercent: 20,
      approved: false,
      approve: 'manual',
      progress: allPending(...ids),
      ...overrides,
    })
  const old = () => ids.map((id) => on(id, OLD))

  it('starts exactly one node for 20% of 5', () => {
    const next = step(canary({ maxUnavailable: 5 }), ctx(0, old()))
    expect(withStatus(next, 'updating')).toEqual(['a'])
    expect(next.state).toBe('running')
  })

  it('starts every canary node at once, whatever maxUnavailable is', () => {
    const next = step(canary({ canaryPercent: 40 }), ctx(0, old()))
    expect(withStatus(next, 'updating')).toEqual(['a', 'b'])
  })

  it('waits for the canary node to finish before asking for approval', () => {
    const first = step(canary(), ctx(0, old()))
    const still = step(first, ctx(1, [switching('a', OLD, NEW), ...old().slice(1)]))
    expect(still).toBe(first)
    expect(still.state).toBe('running')
  })

  it('waits for approval once the canary is done (manual), starting no other node', () => {
    const first = step(canary(), ctx(0, old()))
    const canaryDone = [on('a', NEW), ...old().slice(1)]
    const waiting = step(first, ctx(1, canaryDone))
    expect(waiting.state).toBe('waiting-approval')
    expect(waiting.approved).toBe(false)
    expect(waiting.progress).toEqual({ a: 'done', b: 'pending', c: 'pending', d: 'pending', e: 'pending' })
    expect(step(waiting, ctx(2, canaryDone))).toBe(waiting)

    // The operator approves (the manager sets approved and running): the rest goes on, rolling.
    const resumed = step({ ...waiting, approved: true, state: 'running' }, ctx(3, canaryDone))
    expect(withStatus(resumed, 'updating')).toEqual(['b'])
  })

  it('approves itself once the canary is done (auto) and goes on with the rest', () => {
    const first = step(canary({ approve: 'auto' }), ctx(0, old()))
    const canaryDone = [on('a', NEW), ...old().slice(1)]
    const approved = step(first, ctx(1, canaryDone))
    expect(approved.state).toBe('running')
    expect(approved.approved).toBe(true)
    const next = step(approved, ctx(2, canaryDone))
    expect(withStatus(next, 'updating')).toEqual(['b'])
  })

  it('runs to done with auto approval', () => {
    const { record } = simulate(canary({ approve: 'auto' }), ids)
    expect(record.state).toBe('done')
    expect(withStatus(record, 'done')).toEqual(ids)
  })

  // A canary node that dies mid-update (the new version may have crashed the
  // host) proves nothing: another node takes its place before any approval.
  it('does not auto-approve a canary whose only node died before finishing', () => {
    const first = step(canary({ approve: 'auto' }), ctx(0, old()))
    const next = step(first, ctx(1, [dead('a'), ...old().slice(1)]))
    expect(next.approved).toBe(false)
    expect(withStatus(next, 'updating')).toEqual(['a', 'b'])
  })
})

describe('step: approval gate', () => {
  it('moves no node of an unapproved rolling rollout, then proceeds once approved', () => {
    const record = rollout({
      approve: 'manual',
      approved: false,
      state: 'waiting-approval',
      progress: allPending('a', 'b'),
    })
    const nodes = [on('a', OLD), on('b', OLD)]
    expect(step(record, ctx(0, nodes))).toBe(record)
    const running = step({ ...record, state: 'running' }, ctx(0, nodes))
    expect(running.state).toBe('waiting-approval')
    expect(withStatus(running, 'pending')).toEqual(['a', 'b'])
    const approved = step({ ...record, state: 'running', approved: true }, ctx(0, nodes))
    expect(withStatus(approved, 'updating')).toEqual(['a'])
  })
})

describe('step: paused', () => {
  it('starts no new node but lets updating ones finish', () => {
    const record = rollout({
      state: 'paused',
      progress: progressOf({ a: 'updating', b: 'pending', c: 'pending' }),
    })
    const next = step(record, ctx(0, [on('a', NEW), on('b', OLD), on('c', OLD)]))
    expect(next.progress).toEqual({ a: 'done', b: 'pending', c: 'pending' })
    expect(next.state).toBe('paused')
    expect(step(next, ctx(1, [on('a', NEW), on('b', OLD), on('c', OLD)]))).toBe(next)
  })

  it('is not done while paused, even when no node is left to start', () => {
    const record = rollout({ state: 'paused', progress: progressOf({ a: 'updating' }) })
    expect(step(record, ctx(0, [on('a', NEW)])).state).toBe('paused')
  })
})

describe('step: failures', () => {
  it('marks a failed switch and goes on while below the threshold', () => {
    const record = rollout({ failureThreshold: 2, progress: progressOf({ a: 'updating', b: 'pending' }) })
    const next = step(record, ctx(0, [failing('a', OLD, NEW), on('b', OLD)]))
    expect(next.progress).toEqual({ a: 'failed', b: 'updating' })
    expect(next.state).toBe('running')
  })

  it('ignores a failure reported for a target other than the new version', () => {
    const record = rollout({ progress: progressOf({ a: 'updating', b: 'pending' }) })
    expect(step(record, ctx(0, [failing('a', 'app@0', OLD), on('b', OLD)]))).toBe(record)
  })

  it('sends failed nodes back once the threshold is crossed, then ends rolled back', () => {
    const readySince = new Map<string, number>()
    const record = rollout({ progress: progressOf({ a: 'done', b: 'updating', c: 'pending' }) })
    const failed = step(record, ctx(0, [on('a', NEW), failing('b', OLD, NEW), on('c', OLD)], { readySince }))
    expect(failed.state).toBe('rolling-back')
    expect(failed.reason).toBe('1 node(s) failed (threshold 1)')
    expect(failed.progress).toMatchObject({ b: 'reverting', c: 'pending' })
    expect(nodeTarget(failed, 'b')).toBe(OLD)
    expect(failed.finishedAt).toBeNull()

    // Still on its way back: nothing changes.
    const going = [on('a', NEW), switching('b', NEW, OLD), on('c', OLD)]
    expect(step(failed, ctx(1, going, { readySince }))).toBe(failed)

    const back = step(failed, ctx(2_000, [on('a', NEW), on('b', OLD), on('c', OLD)], { readySince }))
    expect(back.progress.b).toBe('reverted')
    expect(back.state).toBe('rolled-back')
    expect(back.finishedAt).toBe(new Date(2_000).toISOString())
    expect(step(back, ctx(3_000, [on('a', NEW), on('b', OLD), on('c', OLD)]))).toBe(back)
  })

  it('sends nodes still updating back along with the failed ones', () => {
    const record = rollout({
      strategy: 'all-at-once',
      maxUnavailable: 3,
      progress: progressOf({ a: 'updating', b: 'updating', c: 'updating' }),
    })
    const next = step(record, ctx(0, [failing('a', OLD, NEW), switching('b', OLD, NEW), on('c', NEW)]))
    expect(next.state).toBe('rolling-back')
    expect(next.progress).toEqual({ a: 'reverting', b: 'reverting', c: 'done' })
  })

  it('sends a node back to its own base rather than the default', () => {
    const record = rollout({
      baseTargets: { a: 'app@0' },
      progress: progressOf({ a: 'updating' }),
    })
    const reverting = step(record, ctx(0, [failing('a', 'app@0', NEW)]))
    expect(reverting.progress.a).toBe('reverting')
    expect(nodeTarget(reverting, 'a')).toBe('app@0')
    // Back on the default is not back on its base.
    expect(step(reverting, ctx(1, [on('a', OLD)]))).toBe(reverting)
    expect(step(reverting, ctx(2, [on('a', 'app@0')])).state).toBe('rolled-back')
  })

  it('does not wait for a dead reverting node to end the rollback', () => {
    const record = rollout({ state: 'rolling-back', reason: 'x', progress: progressOf({ a: 'reverting' }) })
    expect(step(record, ctx(0, [dead('a', NEW)])).state).toBe('rolled-back')
  })

  it('ends aborted, not rolled back, when the rollback was an abort', () => {
    const record = rollout({
      state: 'rolling-back',
      reason: 'aborted',
      progress: progressOf({ a: 'reverting' }),
    })
    expect(step(record, ctx(0, [on('a', OLD)])).state).toBe('aborted')
  })

  it('leaves a node with nothing to go back to failed, and the rollout failed', () => {
    const record = rollout({
      from: null,
      baseDefault: null,
      progress: progressOf({ a: 'updating', b: 'pending' }),
    })
    const next = step(record, ctx(7, [failing('a', 'none', NEW), on('b', null)]))
    expect(next.progress).toEqual({ a: 'failed', b: 'pending' })
    expect(next.state).toBe('failed')
    expect(next.finishedAt).toBe(new Date(7).toISOString())
    expect(step(next, ctx(8, [on('a', NEW), on('b', null)]))).toBe(next)
  })

  it('rolls back the nodes that have a base and leaves the others failed', () => {
    const record = rollout({
      strategy: 'all-at-once',
      failureThreshold: 2,
      from: null,
      baseDefault: null,
      baseTargets: { a: 'app@0' },
      progress: progressOf({ a: 'updating', b: 'updating' }),
    })
    const next = step(record, ctx(0, [failing('a', 'app@0', NEW), failing('b', 'none', NEW)]))
    expect(next.progress).toEqual({ a: 'reverting', b: 'failed' })
    expect(next.state).toBe('rolling-back')
    expect(step(next, ctx(1, [on('a', 'app@0'), failing('b', 'none', NEW)])).state).toBe('rolled-back')
  })

  it('stops as failed, leaving failed nodes where they are, without autoRollback', () => {
    const record = rollout({ autoRollback: false, progress: progressOf({ a: 'updating', b: 'pending' }) })
    const next = step(record, ctx(0, [failing('a', OLD, NEW), on('b', OLD)]))
    expect(next.state).toBe('failed')
    expect(next.progress).toEqual({ a: 'failed', b: 'pending' })
    expect(next.reason).toBe('1 node(s) failed (threshold 1)')
  })

  it('counts failures while paused or waiting for approval', () => {
    for (const state of ['paused', 'waiting-approval'] as const) {
      const record = rollout({ state, progress: progressOf({ a: 'updating', b: 'pending' }) })
      expect(step(record, ctx(0, [failing('a', OLD, NEW), on('b', OLD)])).state).toBe('rolling-back')
    }
  })

  // As the issue asks ("rolls those nodes back"): the failed nodes go back,
  // the finished ones stay; abort is what sends everyone back.
  it('keeps nodes that had finished on the new version when a rollout is rolled back (only those that failed go back)', () => {
    const record = rollout({ progress: progressOf({ a: 'done', b: 'updating', c: 'pending' }) })
    const reverting = step(record, ctx(0, [on('a', NEW), failing('b', OLD, NEW), on('c', OLD)]))
    const back = step(reverting, ctx(1, [on('a', NEW), on('b', OLD), on('c', OLD)]))
    expect(back.state).toBe('rolled-back')
    expect(targetsOf(back)).toEqual({ defaultTarget: OLD, targets: { a: NEW } })
  })
})

describe('step: membership', () => {
  it('lets joiners of an unscoped running rollout enter as pending', () => {
    for (const state of ['running', 'paused', 'waiting-approval'] as const) {
      const record = rollout({ state, progress: progressOf({ a: 'updating' }) })
      const next = step(record, ctx(0, [switching('a', OLD, NEW), on('z', OLD)]))
      expect(next.progress).toEqual({ a: 'updating', z: 'pending' })
    }
  })

  it('ignores members outside the scope of a scoped rollout', () => {
    const record = rollout({ scope: ['a', 'b'], progress: progressOf({ a: 'updating', b: 'pending' }) })
    const next = step(record, ctx(0, [switching('a', OLD, NEW), on('b', OLD), on('c', OLD)]))
    expect(next).toBe(record)
    expect(next.progress).not.toHaveProperty('c')
  })

  it('does not count a dead updating node toward the updating limit', () => {
    const record = rollout({ progress: progressOf({ a: 'updating', b: 'pending' }) })
    const next = step(record, ctx(0, [dead('a'), on('b', OLD)]))
    expect(next.progress).toEqual({ a: 'updating', b: 'updating' })
  })

  it('does not start a dead pending node', () => {
    const record = rollout({ progress: allPending('a', 'b') })
    expect(step(record, ctx(0, [dead('a'), on('b', OLD)])).progress).toEqual({ a: 'pending', b: 'updating' })
  })

  it('is done when every alive node is done, even with a dead one left behind', () => {
    const record = rollout({ progress: progressOf({ a: 'done', b: 'pending', c: 'updating' }) })
    const next = step(record, ctx(0, [on('a', NEW), dead('b'), on('c', NEW)]))
    expect(next.progress).toEqual({ a: 'done', b: 'lost', c: 'done' })
    expect(next.state).toBe('done')
  })

  it('waits for a node declared dead a moment ago before finishing without it (a false verdict under load)', () => {
    const record = rollout({ progress: progressOf({ a: 'done', b: 'pending', c: 'done' }) })
    const nodes = [on('a', NEW), { ...dead('b'), deadSince: 10_000 }, on('c', NEW)]
    const early = step(record, { ...ctx(12_000, nodes), lostAfterMs: 5000 })
    expect(early.state).toBe('running')
    expect(early.progress.b).toBe('pending')
    const late = step(record, { ...ctx(15_000, nodes), lostAfterMs: 5000 })
    expect(late.state).toBe('done')
    expect(late.progress.b).toBe('lost')
  })

  it('runs a rollout to done around a node that is down the whole time', () => {
    const ids = ['a', 'b', 'c', 'd']
    const { record } = simulate(rollout({ progress: allPending(...ids) }), ids, 500, new Set(['b']))
    expect(record.state).toBe('done')
    expect(record.progress).toEqual({ a: 'done', b: 'lost', c: 'done', d: 'done' })
  })
})

describe('step: identity', () => {
  it('returns the same object when nothing changed', () => {
    const record = rollout({ progress: progressOf({ a: 'updating', b: 'pending' }) })
    expect(step(record, ctx(0, [switching('a', OLD, NEW), on('b', OLD)]))).toBe(record)
  })

  it('returns a finished rollout untouched', () => {
    for (const state of ['done', 'failed', 'rolled-back', 'aborted', 'superseded'] as const) {
      const record = rollout({ state, progress: progressOf({ a: 'pending' }) })
      expect(step(record, ctx(0, [on('a', OLD), on('z', OLD)]))).toBe(record)
    }
  })

  it('never mutates the record it is given', () => {
    const record = rollout({ progress: allPending('a', 'b') })
    const copy = structuredClone(record)
    const next = step(record, ctx(0, [on('a', OLD), on('b', OLD), on('c', OLD)]))
    expect(next).not.toBe(record)
    expect(record).toEqual(copy)
  })
})

describe('targetsOf, nodeTarget and baseOf', () => {
  it('takes a node base from its own target before the rollout, else the default', () => {
    const record = rollout({ baseTargets: { a: 'app@0' } })
    expect(baseOf(record, 'a')).toBe('app@0')
    expect(baseOf(record, 'b')).toBe(OLD)
    expect(baseOf(rollout({ baseDefault: null }), 'b')).toBeNull()
  })

  it('points forward nodes at the new version and the others at their base', () => {
    const record = rollout({
      baseTargets: { f: 'app@0' },
      progress: progressOf({
        a: 'pending',
        b: 'updating',
        c: 'done',
        d: 'failed',
        e: 'reverting',
        f: 'reverted',
      }),
    })
    expect(['a', 'b', 'c', 'd', 'e', 'f'].map((id) => nodeTarget(record, id))).toEqual([
      OLD,
      NEW,
      NEW,
      NEW,
      OLD,
      'app@0',
    ])
    expect(nodeTarget(record, 'outsider')).toBe(OLD)
  })

  it('maps nodes to the new or base version while a rollout runs', () => {
    const record = rollout({
      baseTargets: { c: 'app@0', x: 'other@1' },
      progress: progressOf({ a: 'done', b: 'updating', c: 'pending', d: 'pending' }),
    })
    expect(targetsOf(record)).toEqual({
      defaultTarget: OLD,
      targets: { a: NEW, b: NEW, c: 'app@0', x: 'other@1' },
    })
  })

  it('makes the new version the default, with no per-node targets, once an unscoped rollout is done', () => {
    const record = rollout({
      state: 'done',
      baseTargets: { c: 'app@0' },
      progress: progressOf({ a: 'done', b: 'done', c: 'done' }),
    })
    expect(targetsOf(record)).toEqual({ defaultTarget: NEW, targets: {} })
  })

  it('pins the new version on its own nodes only once a scoped rollout is done', () => {
    const record = rollout({
      state: 'done',
      scope: ['a', 'b'],
      baseTargets: { c: 'app@0' },
      progress: progressOf({ a: 'done', b: 'done' }),
    })
    expect(targetsOf(record)).toEqual({ defaultTarget: OLD, targets: { a: NEW, b: NEW, c: 'app@0' } })
  })

  it('returns everyone to their base once rolled back', () => {
    const record = rollout({
      state: 'rolled-back',
      baseTargets: { c: 'app@0' },
      progress: progressOf({ a: 'reverted', b: 'pending', c: 'reverted' }),
    })
    expect(targetsOf(record)).toEqual({ defaultTarget: OLD, targets: { c: 'app@0' } })
  })

  it('keeps the previous defaults for a first rollout that was never done', () => {
    const record = rollout({
      state: 'failed',
      from: null,
      baseDefault: null,
      progress: progressOf({ a: 'failed', b: 'pending' }),
    })
    expect(targetsOf(record)).toEqual({ defaultTarget: null, targets: { a: NEW } })
  })
})

describe('step: progress deadline', () => {
  it("notes when a node's turn came, and fails it (with the reason) once its switch outlasts the deadline", () => {
    const record = rollout({ strategy: 'rolling', progressDeadlineMs: 1000, progress: allPending('a', 'b') })
    const first = step(record, ctx(0, [on('a', OLD), on('b', OLD)]))
    expect(first.progress.a).toBe('updating')
    expect(first.updatingSince).toEqual({ a: new Date(0).toISOString() })
    const slow = { ...switching('a', OLD, NEW), error: 'web: /healthz answered HTTP 503: db down' }
    expect(step(first, ctx(1000, [slow, on('b', OLD)])).progress.a).toBe('updating')
    const late = step(first, ctx(1001, [slow, on('b', OLD)]))
    expect(late.progress.a).toBe('reverting')
    expect(late.state).toBe('rolling-back')
    expect(late.failures?.a).toBe(
      'not done within the progress deadline (1 s): starting: web: /healthz answered HTTP 503: db down',
    )
  })
})

describe('rolloutView', () => {
  it('says `skipped` for nodes a finished rollout never moved', async () => {
    const { rolloutView } = await import('../../src/manager/rollout-view.js')
    const ended = rollout({
      state: 'aborted',
      progress: { a: 'reverted', b: 'pending' },
      finishedAt: new Date(0).toISOString(),
    })
    const view = rolloutView(ended, [])
    expect(view.members.map((m) => `${m.id}:${m.status}`)).toEqual(['a:reverted', 'b:skipped'])
    expect(view.nodes).toMatchObject({ total: 2, pending: 0, skipped: 1, reverted: 1 })
    const running = rolloutView({ ...ended, state: 'running', finishedAt: null }, [])
    expect(running.nodes).toMatchObject({ pending: 1, skipped: 0 })
  })
})
