/** Targets (reported, never asserted) and the text table of the membership benchmark. */
import type { SizeResult, Skipped } from './membership.js'
import type { ProcessResult } from './processes.js'
import { round, table } from './util.js'

export interface Target {
  target: string
  value: number | null
  /** null: not measured in this run (size not run); a timeout counts as a failure. */
  pass: boolean | null
  note?: string
}

export function targets(results: SizeResult[], processes: ProcessResult | null): Record<string, Target> {
  const at = (n: number) => results.find((r) => r.n === n)
  const limit = (target: string, max: number, value: number | null, measured: boolean, note?: string) => ({
    target,
    value,
    pass: measured ? value != null && value <= max : null,
    ...(measured && value == null ? { note: note ?? 'timed out' } : {}),
  })
  /** Worst value over every N; a timeout at any N makes the value null. */
  const worst = (target: string, max: number, pick: (r: SizeResult) => number | null) => {
    const late = results.filter((r) => pick(r) == null).map((r) => r.n)
    const value = late.length > 0 ? null : Math.max(...results.map((r) => pick(r)!))
    return limit(target, max, value, results.length > 0, `timed out (30 s) at N = ${late.join(', ')}`)
  }
  const n50 = at(50)
  const b10 = at(10)?.idle?.sentBytesPerNodePerSec
  const b50 = n50?.idle?.sentBytesPerNodePerSec
  const ratio = b10 && b50 ? round(b50 / b10, 2) : null
  return {
    completeViewsN50: limit(
      '<= 2000 ms',
      2000,
      n50?.completeViewsMs ?? null,
      n50 != null,
      'timed out (60 s)',
    ),
    joinSeenByAll: worst('<= 1000 ms at every N (worst shown)', 1000, (r) => r.joinSeenByAllMs),
    killSeenDeadByAll: worst('<= 3000 ms at every N (worst shown)', 3000, (r) => r.killDeadByAllMs),
    bytesPerNodeFlat: {
      target: 'sent B/node/s at N=50 within 0.67x-1.5x of N=10 (ratio shown)',
      value: ratio,
      pass: ratio == null ? null : ratio >= 0.67 && ratio <= 1.5,
    },
    rssPerAgentIdle: limit(
      '<= 60 MB per agent process (max shown)',
      60,
      processes?.maxRssMB ?? null,
      processes != null,
    ),
  }
}

export function summary(r: SizeResult): string {
  return `views ${r.completeViewsMs} ms, join ${r.joinSeenByAllMs} ms, dead ${r.killDeadByAllMs} ms`
}

export function render(
  results: SizeResult[],
  skipped: Skipped[],
  processes: ProcessResult | null,
  goals: Record<string, Target>,
): string {
  const sizes = table(
    ['N', 'start', 'views', 'join', 'suspect', 'dead', 'B/node/s', 'conns', 'false s/d', 'loop p99'],
    results.map((r) => [
      r.n,
      r.startMs,
      r.completeViewsMs,
      r.joinSeenByAllMs,
      r.killSuspectedByAllMs,
      r.killDeadByAllMs,
      r.idle?.sentBytesPerNodePerSec ?? null,
      r.idle?.meanConnections ?? null,
      `${r.falsePositives.suspect}/${r.falsePositives.dead}`,
      r.loopDelay.converge?.p99Ms ?? null,
    ]),
  )
  const lines = ['membership (times in ms, in-process, preset lan)', sizes]
  for (const r of results) for (const note of r.notes) lines.push(`  N=${r.n}: ${note}`)
  for (const s of skipped) lines.push(`  N=${s.n}: ${s.reason}`)
  if (processes != null) {
    lines.push(
      '',
      `${processes.count} agent processes: RSS mean ${processes.meanRssMB} MB, max ${processes.maxRssMB} MB; ` +
        `idle CPU mean ${processes.meanCpuPercent}% of one core (bare node: ${processes.bareNodeRssMB} MB RSS)`,
      ...processes.notes.map((note) => `  ${note}`),
    )
  }
  lines.push(
    '',
    table(
      ['target', 'goal', 'value', 'result'],
      Object.entries(goals).map(([name, t]) => [
        name,
        t.target,
        t.value,
        t.pass == null ? 'n/a' : t.pass ? 'PASS' : `FAIL${t.note ? ` (${t.note})` : ''}`,
      ]),
    ),
  )
  return lines.join('\n')
}
