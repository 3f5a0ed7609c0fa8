/** Targets (reported, never asserted) and the text table of the membership benchmark. */
import { presetTimers } from '../src/shared/presets.js'
import type { InProcessSetup, SizeResult, Skipped } from './membership.js'
import type { ProcessResult } from './processes.js'
import { round, table } from './util.js'

/** An event loop later than a probe timeout (p99) starves the agents on it: such figures measure the machine. */
export const STARVED_MS = presetTimers('lan').membership.probeTimeout

/** Cores of CPU used by other processes above which a run is flagged as disturbed. */
const FOREIGN_LIMIT = 0.1

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
    privateMemoryPerAgent: {
      ...limit(
        '<= 60 MB private memory (RssAnon) per idle agent process (max shown)',
        60,
        processes?.maxPrivateMB ?? null,
        processes != null,
      ),
      ...(processes?.maxRssMB == null
        ? {}
        : {
            note:
              `judged on private memory; full RSS max ${processes.maxRssMB} MB includes ` +
              `~${processes.meanFileMB} MB of file-backed pages (the node binary) shared by all agents on a host; ` +
              `PSS max ${processes.maxPssMB} MB`,
          }),
    },
  }
}

export function describe(setup: InProcessSetup): string {
  return setup.mode === 'single-loop' ? 'one event loop (main thread)' : `${setup.workers} worker threads`
}

export function summary(r: SizeResult): string {
  return `views ${r.completeViewsMs} ms, join ${r.joinSeenByAllMs} ms, dead ${r.killDeadByAllMs} ms`
}

export function render(
  setup: InProcessSetup,
  results: SizeResult[],
  skipped: Skipped[],
  processes: ProcessResult | null,
  goals: Record<string, Target>,
): string {
  const sizes = table(
    [
      'N',
      'per loop',
      'start',
      'views',
      'join',
      'suspect',
      'dead',
      'B/node/s',
      'conns',
      'false s/d',
      'p99 conv',
      'p99 idle',
      'busy %',
      'other',
    ],
    results.map((r) => [
      r.starvedPhases.length > 0 ? `${r.n}*` : r.n,
      r.agentsPerLoop,
      r.startMs,
      r.completeViewsMs,
      r.joinSeenByAllMs,
      r.killSuspectedByAllMs,
      r.killDeadByAllMs,
      r.idle?.sentBytesPerNodePerSec ?? null,
      r.idle?.meanConnections ?? null,
      `${r.falsePositives.suspect}/${r.falsePositives.dead}`,
      r.loopDelay.converge?.p99Ms ?? null,
      r.loopDelay.idle?.p99Ms ?? null,
      r.idle == null ? null : Math.max(...r.idle.loopUtilizationPercent),
      r.hostCpu?.foreignCores ?? null,
    ]),
  )
  const lines = [
    `membership (times in ms, in-process on ${describe(setup)}, preset lan; per loop = agents sharing an ` +
      'event loop; p99 = event-loop delay of the worst loop converging / idle; busy = its utilisation idle; ' +
      'other = cores used by other processes meanwhile)',
    sizes,
  ]
  for (const r of results) for (const note of r.notes) lines.push(`  N=${r.n}: ${note}`)
  const starved = results.filter((r) => r.starvedPhases.length > 0)
  if (starved.length > 0)
    lines.push(
      `  * CPU-starved: an event loop ran later (p99) than the ${STARVED_MS} ms probe timeout during ` +
        starved.map((r) => `N=${r.n}: ${r.starvedPhases.join(', ')}`).join('; ') +
        ': these figures measure too many agents per core, not membership',
    )
  const disturbed = results.filter((r) => (r.hostCpu?.foreignCores ?? 0) > FOREIGN_LIMIT).map((r) => r.n)
  if (disturbed.length > 0)
    lines.push(
      `  WARNING: other processes used > ${FOREIGN_LIMIT} core during N = ${disturbed.join(', ')}: not a quiet machine`,
    )
  for (const s of skipped) lines.push(`  N=${s.n}: ${s.reason}`)
  if (processes != null) {
    const bare = processes.bareNode
    lines.push(
      '',
      `${processes.count} separate agent processes (node ${processes.nodeFlags.join(' ')}), idle; memory in MB, ` +
        'private = RssAnon, file = RssFile (node binary, shared), CPU in % of one core',
      table(
        ['process', 'RSS', 'private', 'file', 'PSS', 'CPU %'],
        [
          ...processes.agents.map((a, i) => [
            `agent ${i}`,
            a.rssMB,
            a.privateMB,
            a.fileMB,
            a.pssMB,
            a.cpuPercent,
          ]),
          [
            'mean',
            processes.meanRssMB,
            processes.meanPrivateMB,
            processes.meanFileMB,
            processes.meanPssMB,
            processes.meanCpuPercent,
          ],
          ...(bare == null ? [] : [['bare node', bare.rssMB, bare.privateMB, bare.fileMB, bare.pssMB, null]]),
        ],
      ),
      ...processes.notes.map((note) => `  ${note}`),
      ...((processes.foreignCores ?? 0) > FOREIGN_LIMIT
        ? [`  WARNING: other processes used ${processes.foreignCores} core meanwhile: not a quiet machine`]
        : []),
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
        t.pass == null ? 'n/a' : t.pass ? 'PASS' : 'FAIL',
      ]),
    ),
    ...Object.entries(goals).flatMap(([name, t]) => (t.note == null ? [] : [`  ${name}: ${t.note}`])),
  )
  return lines.join('\n')
}
