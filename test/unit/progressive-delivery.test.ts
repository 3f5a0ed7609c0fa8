import { describe, expect, it } from 'vitest'
import { judge, parseCondition } from '../../src/manager/analysis.js'
import type { RolloutRecord } from '../../src/manager/record.js'
import {
  type NodeObservation,
  type StepContext,
  step,
  targetsOf,
  type WindowTraffic,
} from '../../src/manager/rollout-engine.js'
import { rolloutRecord } from '../helpers/rollout-record.js'

const OLD = 'app@1'
const NEW = 'app@2'
const NODES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']

function figures(requests: number, errors: number, p99Ms: number | null) {
  return {
    requests,
    errors,
    errorRate: requests === 0 ? 0 : errors / requests,
    p50Ms: p99Ms,
    p90Ms: p99Ms,
    p99Ms,
  }
}

const spec = {
  conditions: ['error-rate<1%', 'p99<+50ms'],
  intervalMs: 10_000,
  minRequests: 100,
  onMissing: 'fail' as const,
}

describe('analysis conditions', () => {
  it('parses absolute and relative conditions', () => {
    expect(parseCondition('error-rate<1%')).toMatchObject({
      metric: 'error-rate',
      kind: 'absolute',
      value: 0.01,
    })
    expect(parseCondition('error-rate <= +0.5%')).toMatchObject({
      kind: 'plus',
      value: 0.005,
      inclusive: true,
    })
    expect(parseCondition('p99<+50ms')).toMatchObject({ metric: 'p99', kind: 'plus', value: 50 })
    expect(parseCondition('p99<+20%')).toMatchObject({ kind: 'ratio', value: 0.2 })
    expect(parseCondition('p90<1.5s')).toMatchObject({ kind: 'absolute', value: 1500 })
  })

  it('refuses what it cannot judge, with a code and what is accepted', () => {
    for (const bad of ['latency<5ms', 'p99>5ms', 'p99<5', 'p99<20%', 'error-rate<5ms', 'error-rate<200%', ''])
      expect(() => parseCondition(bad)).toThrow(expect.objectContaining({ code: 'ERR_BAD_ANALYSIS' }))
  })

  it('fails a canary whose error rate or p99 breaks a condition, passes a good one', () => {
    const base = { baselineNodes: 8, sources: { answered: 1, known: 1 } }
    const good = judge(spec, { ...base, canary: figures(200, 1, 30), baseline: figures(800, 0, 25) })
    expect(good.verdict).toBe('pass')
    const erring = judge(spec, { ...base, canary: figures(200, 20, 30), baseline: figures(800, 0, 25) })
    expect(erring.verdict).toBe('fail')
    expect(erring.checks[0]).toMatchObject({ ok: false, value: 0.1, limit: 0.01 })
    const slow = judge(spec, { ...base, canary: figures(200, 0, 180), baseline: figures(800, 0, 25) })
    expect(slow.verdict).toBe('fail')
    expect(slow.checks[1]).toMatchObject({ ok: false, value: 180, limit: 75 })
  })

  it('is inconclusive with too few requests, never a pass on missing figures', () => {
    const none = judge(spec, {
      baselineNodes: 8,
      sources: { answered: 0, known: 0 },
      canary: figures(0, 0, null),
      baseline: figures(0, 0, null),
    })
    expect(none.verdict).toBe('inconclusive')
    expect(none.checks.every((c) => c.ok === null)).toBe(true)
    const fewOld = judge(spec, {
      baselineNodes: 8,
      sources: { answered: 1, known: 1 },
      canary: figures(500, 0, 20),
      baseline: figures(10, 0, 20),
    })
    expect(fewOld.verdict).toBe('inconclusive')
  })

  it('judges only absolute conditions once no node is left on the old version', () => {
    const all = judge(spec, {
      baselineNodes: 0,
      sources: { answered: 1, known: 1 },
      canary: figures(500, 0, 20),
      baseline: figures(0, 0, null),
    })
    expect(all.verdict).toBe('pass')
    expect(all.checks[1]!.ok).toBeNull()
  })
})

/** Nodes that follow the targets instantly: what the manager would observe after each step. */
function observe(record: RolloutRecord): Map<string, NodeObservation> {
  const { defaultTarget, targets } = targetsOf(record)
  return new Map(
    Object.keys(record.progress).map((id) => {
      const v = targets[id] ?? defaultTarget
      return [id, { id, alive: true, active: v, target: v, phase: 'done', ready: true, failed: false }]
    }),
  )
}

function drive(
  record: RolloutRecord,
  traffic: (onNew: number) => WindowTraffic,
  until: (r: RolloutRecord) => boolean,
): { record: RolloutRecord; now: number } {
  let now = 1_000_000
  const readySince = new Map<string, number>()
  for (let i = 0; i < 2000 && !until(record); i++) {
    const observations = observe(record)
    const onNew = Object.values(record.progress).filter((s) => s === 'done').length
    const context: StepContext = {
      now,
      observations,
      members: [...observations.keys()],
      readySince,
      traffic: () => traffic(onNew),
    }
    record = step(record, context)
    now += 500
  }
  return { record, now }
}

function canary(overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return rolloutRecord({
    distribution: NEW,
    from: OLD,
    strategy: 'canary',
    approve: 'auto',
    canaryPercent: 10,
    steps: [10, 50, 100],
    approved: false,
    analysis: spec,
    baseDefault: OLD,
    minReadyMs: 0,
    progress: Object.fromEntries(NODES.map((id) => [id, 'pending'])),
    ...overrides,
  })
}

const healthy = (): WindowTraffic => ({
  canary: figures(300, 0, 20),
  baseline: figures(900, 1, 20),
  sources: { answered: 1, known: 1 },
})

describe('progressive rollout', () => {
  it('a good canary passes every step and ends done, every node on the new version', () => {
    const { record } = drive(canary(), healthy, (r) => r.state === 'done')
    expect(record.state).toBe('done')
    expect(record.verdicts?.map((v) => [v.step, v.percent, v.verdict, v.decision])).toEqual([
      [0, 10, 'pass', 'next step'],
      [1, 50, 'pass', 'next step'],
    ])
    expect(targetsOf(record).defaultTarget).toBe(NEW)
  })

  it('a failing canary is sent back at its first step and the rollout ends failed with the figures', () => {
    const bad = (): WindowTraffic => ({ ...healthy(), canary: figures(300, 30, 20) })
    const { record } = drive(canary(), bad, (r) => r.state === 'failed')
    expect(record.state).toBe('failed')
    expect(record.verdicts).toHaveLength(1)
    expect(record.verdicts![0]).toMatchObject({ step: 0, verdict: 'fail', decision: 'rolled back' })
    expect(record.verdicts![0]!.canary.errors).toBe(30)
    expect(record.reason).toMatch(/^analysis failed at step 1 \(10%\): error-rate<1% broken: 10% against 1%/)
    const { defaultTarget, targets } = targetsOf(record)
    expect(defaultTarget).toBe(OLD)
    expect(Object.keys(targets)).toEqual([])
  })

  it('no traffic: inconclusive fails by default, or pauses for a person who approves or resumes', () => {
    const silent = (): WindowTraffic => ({
      canary: figures(0, 0, null),
      baseline: figures(0, 0, null),
      sources: { answered: 0, known: 0 },
    })
    expect(drive(canary(), silent, (r) => r.state === 'failed').record.verdicts![0]!.verdict).toBe(
      'inconclusive',
    )
    const paused = drive(
      canary({ analysis: { ...spec, onMissing: 'pause' } }),
      silent,
      (r) => r.state === 'paused',
    ).record
    expect(paused.state).toBe('paused')
    expect(paused.verdicts![0]).toMatchObject({ verdict: 'inconclusive', decision: 'paused' })
    expect(paused.window).toBeNull()
    expect(Object.values(paused.progress).filter((s) => s === 'done')).toHaveLength(1)
  })

  it('waits at the end of a window until the manager has the figures', () => {
    let asked = 0
    const late = (): WindowTraffic | null => (++asked < 10 ? null : healthy())
    const { record } = drive(canary(), late as () => WindowTraffic, (r) => (r.verdicts?.length ?? 0) > 0)
    expect(record.verdicts![0]!.verdict).toBe('pass')
    expect(asked).toBe(10)
  })

  it('rolling with analysis is judged after each batch while old nodes are left', () => {
    const r = rolloutRecord({
      distribution: NEW,
      from: OLD,
      strategy: 'rolling',
      maxUnavailable: 4,
      approve: 'auto',
      approved: true,
      analysis: spec,
      baseDefault: OLD,
      minReadyMs: 0,
      progress: Object.fromEntries(NODES.map((id) => [id, 'pending'])),
    })
    const { record } = drive(r, healthy, (x) => x.state === 'done')
    expect(record.verdicts?.map((v) => v.percent)).toEqual([40, 80])
  })
})

describe('a version a failed verdict condemned', () => {
  it('takes no new request while it is sent back, only when the old version served in the window', async () => {
    const { condemnedOf } = await import('../../src/manager/desired-state.js')
    const { emptyState } = await import('../../src/manager/record.js')
    const bad = (): WindowTraffic => ({ ...healthy(), canary: figures(300, 30, 20) })
    const { record } = drive(canary(), bad, (r) => r.state === 'rolling-back')
    const state = { ...emptyState(), rollouts: [record] }
    expect(condemnedOf(state)).toEqual([NEW])
    const lonely = structuredClone(record)
    lonely.verdicts![0]!.baseline.requests = 0
    expect(condemnedOf({ ...state, rollouts: [lonely] })).toEqual([])
    expect(condemnedOf({ ...state, rollouts: [{ ...record, state: 'failed' }] })).toEqual([])
  })
})
