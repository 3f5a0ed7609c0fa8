/**
 * Analysis conditions of a progressive rollout (`--analysis 'error-rate<1%'`,
 * `--analysis 'p99<+50ms'`) and the verdict on one window of traffic: the
 * canary version's figures against the old version's over the same seconds
 * (docs/manager.md, "Progressive delivery").
 */
import { z } from 'zod'
import type { TrafficFigures } from '../shared/index.js'
import { BadAnalysisError } from './errors.js'

export const METRICS = ['error-rate', 'p50', 'p90', 'p99'] as const
export type Metric = (typeof METRICS)[number]

/** One parsed condition: the canary's `metric` must stay below a limit. */
export interface Condition {
  text: string
  metric: Metric
  /** `<=` allows the limit itself. */
  inclusive: boolean
  /**
   * `absolute`: the value itself (error rate as a share 0–1, latency in ms);
   * `plus`: the baseline's value plus `value` (error-rate: percentage points as a
   * share; latency: ms); `ratio`: the baseline's value times (1 + value).
   */
  kind: 'absolute' | 'plus' | 'ratio'
  value: number
}

const CONDITION = /^\s*(error-rate|p50|p90|p99)\s*(<=|<)\s*(\+)?\s*([0-9]+(?:\.[0-9]+)?)\s*(%|ms|s)?\s*$/

/** Parses one condition; throws BadAnalysisError (400) with what is accepted. */
export function parseCondition(text: string): Condition {
  const m = CONDITION.exec(text)
  if (m == null)
    throw new BadAnalysisError(
      `analysis condition "${text}" is not understood: write METRIC<LIMIT with METRIC one of ${METRICS.join(', ')}, e.g. "error-rate<1%", "p99<250ms", "p99<+50ms" or "p99<+20%"`,
    )
  const [, metric, op, plus, number, unit] = m as unknown as [
    string,
    Metric,
    string,
    string | undefined,
    string,
    string | undefined,
  ]
  const n = Number(number)
  const inclusive = op === '<='
  if (metric === 'error-rate') {
    if (unit === 'ms' || unit === 's')
      throw new BadAnalysisError(`analysis condition "${text}": an error rate is a share ("1%" or "0.01")`)
    const share = unit === '%' ? n / 100 : n
    if (share > 1) throw new BadAnalysisError(`analysis condition "${text}": an error rate is at most 100%`)
    return { text: text.trim(), metric, inclusive, kind: plus != null ? 'plus' : 'absolute', value: share }
  }
  if (unit == null)
    throw new BadAnalysisError(
      `analysis condition "${text}": give the latency with a unit ("250ms", "1s", "+20%")`,
    )
  if (unit === '%') {
    if (plus == null)
      throw new BadAnalysisError(
        `analysis condition "${text}": a latency share is relative: write "+${number}%"`,
      )
    return { text: text.trim(), metric, inclusive, kind: 'ratio', value: n / 100 }
  }
  const ms = unit === 's' ? n * 1000 : n
  return { text: text.trim(), metric, inclusive, kind: plus != null ? 'plus' : 'absolute', value: ms }
}

/** Whether a condition compares with the old version's figures. */
export function isRelative(condition: Condition): boolean {
  return condition.kind !== 'absolute'
}

export const ON_MISSING = ['fail', 'pause'] as const

/** What a rollout record keeps of its analysis (the conditions as written). */
export const analysisSchema = z.strictObject({
  conditions: z.array(z.string().max(100)).min(1).max(10),
  /** How long each step's window of traffic lasts. */
  intervalMs: z.number().int().min(1000).max(3_600_000),
  /** Fewer requests to the canary (or, for relative conditions, to the old version) make the verdict inconclusive. */
  minRequests: z.number().int().min(1).max(1_000_000_000),
  /** An inconclusive verdict fails the rollout, or pauses it for a person. */
  onMissing: z.enum(ON_MISSING),
})
export type AnalysisSpec = z.output<typeof analysisSchema>

const figuresSchema = z.strictObject({
  requests: z.number().int().min(0),
  errors: z.number().int().min(0),
  errorRate: z.number().min(0).max(1),
  p50Ms: z.number().nullable(),
  p90Ms: z.number().nullable(),
  p99Ms: z.number().nullable(),
})

export const VERDICTS = ['pass', 'fail', 'inconclusive'] as const
export type VerdictKind = (typeof VERDICTS)[number]

/** The most verdicts a rollout record keeps (one per step). */
export const MAX_VERDICTS = 32

/** One step's judgement, kept in the rollout record and its audit trail. */
export const verdictSchema = z.strictObject({
  /** The step judged (index into the rollout's steps), and the share of nodes on the new version then. */
  step: z.number().int().min(0),
  percent: z.number().min(0).max(100),
  /** The window of traffic judged. */
  from: z.string(),
  to: z.string(),
  /** When the verdict was given. */
  at: z.string(),
  verdict: z.enum(VERDICTS),
  canary: figuresSchema,
  baseline: figuresSchema,
  checks: z
    .array(
      z.strictObject({
        condition: z.string().max(100),
        /** null: not judged (too few requests, or no node left on the old version for a relative condition). */
        ok: z.boolean().nullable(),
        value: z.number().nullable(),
        limit: z.number().nullable(),
      }),
    )
    .max(10),
  /** Load balancers that answered, of those known. */
  sources: z.strictObject({ answered: z.number().int().min(0), known: z.number().int().min(0) }),
  /** What the manager did: `next step`, `waiting for approval`, `rolled back`, `failed`, `paused`. */
  decision: z.string().max(100),
  /** Why, in one line. */
  reason: z.string().max(500),
})
export type Verdict = z.output<typeof verdictSchema>

/** The figures of one window, as the manager gathered them from the load balancers. */
export interface WindowFigures {
  canary: TrafficFigures
  baseline: TrafficFigures
  /** Alive nodes still on the old version: none means relative conditions cannot be judged. */
  baselineNodes: number
  sources: { answered: number; known: number }
}

/** The value a condition reads: error rate as a share, latency in ms. */
function metricOf(figures: TrafficFigures, metric: Metric): number | null {
  if (metric === 'error-rate') return figures.requests === 0 ? null : figures.errorRate
  return metric === 'p50' ? figures.p50Ms : metric === 'p90' ? figures.p90Ms : figures.p99Ms
}

/**
 * The verdict on one window: inconclusive when the canary (or, for a relative
 * condition with nodes left on the old version, the baseline) had fewer than
 * `minRequests` requests; fail when any condition is broken; else pass.
 */
export function judge(
  spec: AnalysisSpec,
  figures: WindowFigures,
): Pick<Verdict, 'verdict' | 'checks' | 'reason'> {
  const conditions = spec.conditions.map(parseCondition)
  const relative = conditions.some(isRelative)
  const baselineCounts = relative && figures.baselineNodes > 0
  const few: string[] = []
  if (figures.canary.requests < spec.minRequests)
    few.push(`${figures.canary.requests} requests to the new version`)
  if (baselineCounts && figures.baseline.requests < spec.minRequests)
    few.push(`${figures.baseline.requests} to the old one`)
  const checks = conditions.map((c) => {
    const value = metricOf(figures.canary, c.metric)
    const base = metricOf(figures.baseline, c.metric)
    const judged = few.length === 0 && value != null && (!isRelative(c) || (baselineCounts && base != null))
    const limit =
      c.kind === 'absolute'
        ? c.value
        : base == null
          ? null
          : c.kind === 'plus'
            ? base + c.value
            : base * (1 + c.value)
    const ok = !judged || limit == null ? null : c.inclusive ? value! <= limit : value! < limit
    return {
      condition: c.text,
      ok,
      value: value == null ? null : round(value),
      limit: limit == null ? null : round(limit),
    }
  })
  if (few.length > 0)
    return {
      verdict: 'inconclusive',
      checks,
      reason: `too little traffic: ${few.join(' and ')} (at least ${spec.minRequests} needed${figures.sources.known === 0 ? '; no load balancer reports traffic' : ''})`,
    }
  const broken = checks.filter((c) => c.ok === false)
  if (broken.length > 0)
    return {
      verdict: 'fail',
      checks,
      reason: broken
        .map(
          (c) => `${c.condition} broken: ${show(c.condition, c.value)} against ${show(c.condition, c.limit)}`,
        )
        .join('; '),
    }
  const judged = checks.filter((c) => c.ok === true).length
  return {
    verdict: 'pass',
    checks,
    reason:
      judged === checks.length
        ? 'every condition held'
        : `${judged} of ${checks.length} conditions held; the others compare with the old version, which no node runs any more`,
  }
}

/** A value as the condition writes it: a share as a percent, latency in ms. */
export function show(condition: string, value: number | null): string {
  if (value == null) return '-'
  return condition.trim().startsWith('error-rate') ? `${round(value * 100)}%` : `${round(value)} ms`
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000
}
