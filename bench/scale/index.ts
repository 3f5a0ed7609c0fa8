/**
 * The scale suite (`npm run bench -- scale [--sizes 10,25,50,100] [--max N] [--no-real]`):
 * 1. real: the membership benchmark's in-process members (bench/membership.ts) at
 *    `--sizes`, for each of `--members` (whole agents, membership only) with the
 *    timers of `--preset`, merged into the figures of earlier runs (a series measured
 *    again replaces its old figures; `--no-real` only carries them over);
 * 2. calibration of the simulated wire on real libp2p nodes (calibrate.ts;
 *    `--reuse-calibration` takes the previous run's, so cached simulations match);
 * 3. the simulation (real Membership code, simulated network and clock) at every
 *    size of SIM_SIZES up to `--max`, one child process each; at 10,000, the hybrid
 *    run (hybrid.ts) with a share of the members on the real code (`--run-up-to N`:
 *    a larger run with no cached result is reported missing rather than run);
 * 4. scale.json, a text summary, and the plots docs/img/scale-bytes.svg and
 *    docs/img/scale-time.svg.
 */
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { suspicionBounds } from '../../src/membership/index.js'
import { presetTimers, type TimerPreset } from '../../src/shared/presets.js'
import { runMembership, type SizeResult } from '../membership.js'
import type { CellKind } from '../membership-cell.js'
import { machine, round, source, table } from '../util.js'
import { type Calibration, calibrate } from './calibrate.js'
import { measureViewCpu } from './cpu.js'
import type { HybridResult } from './hybrid.js'
import type { SimSizeResult } from './scenario.js'
import { lineChart } from './svg.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const CACHE = join(tmpdir(), 'shoal-scale-cache')
const PREVIOUS = `${ROOT}bench/results/scale.json`
/** Sizes simulated with every member on the real code and Shoal's limits; a mass join up to 250, seeded views above. */
export const SIM_SIZES = [10, 25, 50, 100, 250, 500, 1000]
/** Members on the real code in the hybrid runs (the rest are light members, hybrid.ts). */
export const HYBRID_FULL = 200
export const HYBRID_N = 10_000
const SEED = 1
/** Heap for one simulation process: the 10,000 run needs several GB. */
const HEAP_MB = 16_384
/** Simulations run this many at a time (virtual-time results do not depend on it; wall times do). */
const CONCURRENCY = 3

/** One simulation run: a size, how it starts, its connection limit, and whether it is a hybrid run. */
export interface SimRun {
  label: string
  n: number
  warm?: boolean
  /** null: no limit. */
  maxConnections?: number | null
  hybridFull?: number
  /** Membership timers (default lan). */
  preset?: TimerPreset
}

/**
 * The runs up to `max` members, all with Shoal's limits: the main series, a seeded
 * 250 to check that seeding changes nothing but the join, 100 on cloud timers, and
 * the hybrid reduction (hybrid.ts): at 1,000 against the full code through the
 * same phases (`1000 rolling`: every member on the real code, the same rolling
 * start), then at 10,000. (The runs without a connection limit were the what-if of
 * the design before the monitoring rings; with a budget of 48 the limit never binds.)
 */
export function simRuns(max: number): SimRun[] {
  const runs: SimRun[] = SIM_SIZES.map((n) => ({ label: `${n}`, n }))
  runs.push({ label: '250 seeded', n: 250, warm: true })
  runs.push({ label: '100 cloud', n: 100, preset: 'cloud' })
  runs.push({ label: '1000 rolling', n: 1000, hybridFull: 1000 })
  runs.push({ label: '1000 hybrid', n: 1000, hybridFull: HYBRID_FULL })
  runs.push({ label: '10000 hybrid', n: HYBRID_N, hybridFull: HYBRID_FULL })
  return runs.filter((run) => run.n <= max)
}

export interface ScaleOptions {
  sizes: number[]
  max: number
  real: boolean
  workers: number
  /** Real sizes at or above `from` start `batch` members at a time (100 whole agents starting at once starve 2 cores). */
  rolling?: { from: number; batch: number }
  /** What the real members run: whole agents, membership only, or both (each size measured once per kind). */
  kinds: CellKind[]
  /** The real members' membership timers. */
  preset: TimerPreset
  /** Take the previous run's calibration (bench/results/scale.json) rather than measuring it again. */
  reuseCalibration?: boolean
  /** Simulations larger than this with no cached result are reported missing instead of run. */
  runUpTo?: number
}

interface RealPart {
  date: string
  durationS: number
  carriedOver: boolean
  inProcess: unknown
  notes: string[]
  quietWaits: unknown
  /** Every series measured so far; `date` says when (older runs lack kind and preset: whole agents, lan). */
  results: Array<SizeResult & { date?: string }>
  skipped: unknown
}

export async function runScale(options: ScaleOptions) {
  const began = Date.now()
  const log = (line: string) => console.error(`scale: ${line}`)
  const previous = existsSync(PREVIOUS)
    ? (JSON.parse(readFileSync(PREVIOUS, 'utf8')) as { real?: RealPart; calibration?: Calibration })
    : {}

  let real: RealPart | null = null
  if (options.real) {
    log(`real agents at N = ${options.sizes.join(', ')} (the membership benchmark, in-process) ...`)
    // One call per size: the membership suite skips a size once a smaller one failed to converge,
    // and this suite wants every size measured (a failure is a figure too).
    const started = Date.now()
    const reports = []
    for (const kind of options.kinds)
      for (const n of options.sizes)
        reports.push(
          (
            await runMembership({
              sizes: [n],
              processes: false,
              workers: options.workers,
              ...(options.rolling == null ? {} : { rolling: options.rolling }),
              kind,
              preset: options.preset,
            })
          ).report,
        )
    const first = reports[0]!
    // Merged into the previous figures: a series measured now (same N, members and timers)
    // replaces the old one, the others stay, each with the date it was measured.
    const measured = reports.flatMap((r) => r.results.map((result) => ({ ...result, date: r.date })))
    const key = (r: SizeResult) => `${r.n}/${r.kind ?? 'agent'}/${r.preset ?? 'lan'}`
    const fresh = new Set(measured.map(key))
    const kept = (previous.real?.results ?? []).filter((r) => !fresh.has(key(r)))
    real = {
      date: first.date,
      durationS: Math.round((Date.now() - started) / 1000),
      carriedOver: false,
      inProcess: first.inProcess,
      notes: first.notes,
      quietWaits: reports.flatMap((r) => r.quietWaits),
      results: [...kept, ...measured].sort(
        (a, b) => (a.kind ?? 'agent').localeCompare(b.kind ?? 'agent') || a.n - b.n,
      ),
      skipped: reports.flatMap((r) => r.skipped),
    }
    // Kept at once: a run interrupted later can carry it over (--no-real).
    await writeFile(PREVIOUS, `${JSON.stringify({ suite: 'scale', partial: true, real }, null, 2)}\n`)
  } else if (previous.real != null) {
    real = { ...previous.real, carriedOver: true }
    log(`real figures carried over from the run of ${real.date}`)
  }

  // Handshake bytes vary by a few percent between runs (addresses, identify), and the
  // costs are part of a cached simulation's inputs: reusing the last calibration
  // collects the cached results of a long run instead of simulating them again.
  let calibration: Calibration
  if (options.reuseCalibration && previous.calibration != null) {
    calibration = previous.calibration
    log(`calibration reused from the previous run: ${JSON.stringify(calibration.costs)}`)
  } else {
    log('calibrating the simulated wire on real libp2p nodes ...')
    calibration = await calibrate()
    log(`calibrated: ${JSON.stringify(calibration.costs)}`)
  }

  log('timing whole-view work (sync encode/decode, digest, re-broadcast decode) ...')
  const viewCpu = await measureViewCpu([100, 1000, 10_000])

  // A result is kept per run under the hash of its inputs and of the simulation and
  // membership code (virtual-time results are deterministic): an interrupted suite
  // picks up where it stopped.
  const code = { plain: codeHash(false), hybrid: codeHash(true) }
  await mkdir(CACHE, { recursive: true })
  const runs = simRuns(options.max)
  log(`simulating ${runs.map((r) => r.label).join(', ')} (${CONCURRENCY} at a time) ...`)
  // Longest first, so that the pool ends together.
  const order = [...runs].sort((a, b) => b.n - a.n)
  const outcomes = await pool(order, CONCURRENCY, async (run) => {
    const common = {
      n: run.n,
      seed: SEED,
      costs: calibration.costs,
      ...(run.warm == null ? {} : { warm: run.warm }),
      ...(run.maxConnections === undefined ? {} : { maxConnections: run.maxConnections }),
      ...(run.preset == null ? {} : { cluster: { preset: run.preset } }),
    }
    const started = Date.now()
    const input = run.hybridFull == null ? common : { ...common, hybrid: { full: run.hybridFull } }
    const file = `${CACHE}/${createHash('sha256')
      .update(JSON.stringify(input))
      .update(run.hybridFull == null ? code.plain : code.hybrid)
      .digest('hex')
      .slice(0, 24)}.json`
    if (existsSync(file)) {
      log(`${run.label}: the same code and inputs ran before: result reused from ${file}`)
      const cached = JSON.parse(readFileSync(file, 'utf8')) as SimSizeResult | HybridResult
      return { run, result: cached, reused: true }
    }
    if (options.runUpTo != null && run.n > options.runUpTo) {
      log(`${run.label}: no cached result and larger than --run-up-to ${options.runUpTo}: reported missing`)
      return { run, result: null, reused: false }
    }
    const result =
      run.hybridFull == null ? await simulate<SimSizeResult>(input) : await simulate<HybridResult>(input)
    await writeFile(file, JSON.stringify(result))
    log(`${run.label} done in ${Math.round((Date.now() - started) / 1000)} s`)
    return { run, result, reused: false }
  })
  const byLabel = (label: string) => outcomes.find((o) => o.run.label === label)?.result
  const simulated = SIM_SIZES.map((n) => byLabel(`${n}`) as SimSizeResult | undefined).filter(
    (r): r is SimSizeResult => r != null,
  )
  const seeded250 = (byLabel('250 seeded') as SimSizeResult | undefined) ?? null
  const cloud100 = (byLabel('100 cloud') as SimSizeResult | undefined) ?? null
  const rolling1000 = (byLabel('1000 rolling') as HybridResult | undefined) ?? null
  const hybrid1000 = (byLabel('1000 hybrid') as HybridResult | undefined) ?? null
  const hybrid = (byLabel('10000 hybrid') as HybridResult | undefined) ?? null
  for (const r of simulated) log(`N = ${r.n}: ${simSummary(r)}`)

  const report = {
    suite: 'scale',
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: machine(),
    source: source(),
    preset: 'lan',
    notes: [
      'real: the membership benchmark (bench/membership.ts) run by this suite: N whole agents in one process on ' +
        '127.0.0.1, spread over worker threads; the machine was shared with other work, see real.quietWaits and ' +
        'hostCpu.foreignCores per size.',
      'simulation: the real Membership class (src/membership) on a simulated network and a virtual clock ' +
        '(bench/scale/); CPU is free there, so no node is ever late; bytes are counted with the framing measured ' +
        'in calibration.',
      `hybrid (N = ${HYBRID_N}): ${HYBRID_FULL} members run the real code; the others are light members that ` +
        'probe their ring subjects, answer, delta-sync with connected members and keep the same connection budget, ' +
        'with the same wire format but no view (bench/scale/hybrid.ts); checked at N = 1000 against every member ' +
        'on the real code through the same phases (1000 rolling).',
    ],
    calibration,
    viewCpu,
    real,
    simulation: {
      seed: SEED,
      latencyMs: [1, 5],
      loss: 0,
      maxConnections: 400,
      results: simulated,
      seeded250,
      cloud100,
    },
    hybridCheck: { full1000Rolling: rolling1000, hybrid1000, hybrid10000: hybrid },
    /** Each simulation: its wall time when it ran, and whether this report reused it (same code and inputs). */
    simulationRuns: outcomes.map(({ run, result, reused }) => ({
      label: run.label,
      wallS: result?.wallS ?? null,
      reusedFromCache: reused,
      ...(result == null ? { missing: 'not run: no cached result, larger than --run-up-to' } : {}),
    })),
    comparison: compare(real?.results ?? [], (n, preset) =>
      preset === 'cloud' ? (cloud100?.n === n ? cloud100 : undefined) : simulated.find((s) => s.n === n),
    ),
    limits: limits(simulated, hybrid),
  }
  await writePlots(real?.results ?? [], simulated, hybrid1000, hybrid)
  return { report, text: render(report.real, simulated, hybrid, calibration, report.comparison) }
}

/** The compiled files a simulation runs: its own and the code under test (membership, shared helpers). */
const SIM_FILES = ['clock', 'costs', 'network', 'pubsub', 'cluster', 'scenario', 'sim-process']

/** A hash of the code a simulation runs (hybrid.js too for a hybrid run); with its inputs it names a result in the cache. */
function codeHash(hybrid: boolean): string {
  const hash = createHash('sha256')
  for (const name of hybrid ? [...SIM_FILES, 'hybrid'] : SIM_FILES)
    hash.update(name).update(readFileSync(join(ROOT, 'dist/bench/scale', `${name}.js`)))
  for (const dir of ['dist/src/membership', 'dist/src/shared']) {
    for (const name of readdirSync(join(ROOT, dir)).sort()) {
      if (name.endsWith('.js')) hash.update(name).update(readFileSync(join(ROOT, dir, name)))
    }
  }
  return hash.digest('hex')
}

/** Runs `work` over `items`, at most `limit` at a time, results in the order of `items`. */
async function pool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await work(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/** Runs one simulation in a child process (its own heap and its own clock). */
export function simulate<T>(options: object): Promise<T> {
  const script = fileURLToPath(new URL('./sim-process.js', import.meta.url))
  return new Promise((resolve, reject) => {
    const child = fork(script, [JSON.stringify(options)], {
      execArgv: ['--expose-gc', `--max-old-space-size=${HEAP_MB}`],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    let result: T | undefined
    child.on('message', (message: { kind: string; result: T }) => {
      if (message.kind === 'result') result = message.result
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (result != null) resolve(result)
      else reject(new Error(`simulation process exited with code ${code} and no result`))
    })
  })
}

export interface Comparison {
  n: number
  kind: CellKind
  preset: TimerPreset
  metric: string
  real: number | null
  simulated: number | null
  /** real / simulated. */
  ratio: number | null
  /** The real figure was measured with its event loop later than a probe timeout (CPU-starved). */
  realStarved: boolean
}

/** Each real series against the simulation of the same N and timers. */
function compare(
  real: SizeResult[],
  simulatedAt: (n: number, preset: TimerPreset) => SimSizeResult | undefined,
): Comparison[] {
  const out: Comparison[] = []
  for (const r of real) {
    const s = simulatedAt(r.n, r.preset ?? 'lan')
    if (s == null) continue
    const pairs: Array<[string, number | null, number | null]> = [
      ['idle sent B/node/s', r.idle?.sentBytesPerNodePerSec ?? null, s.idle?.sentBytesPerNodePerSec ?? null],
      ['complete views ms', r.completeViewsMs, s.completeViewsMs],
      ['join seen by all ms', r.joinSeenByAllMs, s.joinSeenByAllMs],
      ['kill suspected by all ms', r.killSuspectedByAllMs, s.killSuspectedByAllMs],
      ['kill dead by all ms', r.killDeadByAllMs, s.killDeadByAllMs],
      ['idle connections per member', r.idle?.meanConnections ?? null, s.idle?.meanConnections ?? null],
    ]
    for (const [metric, a, b] of pairs) {
      out.push({
        n: r.n,
        kind: r.kind ?? 'agent',
        preset: r.preset ?? 'lan',
        metric,
        real: a,
        simulated: b,
        ratio: a != null && b != null && b > 0 ? round(a / b, 2) : null,
        realStarved: r.starvedPhases.length > 0,
      })
    }
  }
  return out
}

/** Figures for the limits at 10,000 members (docs/scale.md), from the runs and the formulas. */
function limits(simulated: SimSizeResult[], hybrid: HybridResult | null) {
  const largest = simulated.at(-1)
  const recordBytes = hybrid?.recordBytes ?? largest?.recordBytes ?? 316
  const maxMessage = 4 * 1024 * 1024
  const lan = presetTimers('lan').membership
  const at = (n: number) => suspicionBounds(lan, n)
  return {
    recordBytes,
    syncMessageBytesAt10k: recordBytes * 10_000,
    /** Members whose records fit one 4 MiB sync message, by metadata size. */
    membersPerSyncMessage: Object.fromEntries(
      [0, 120, 1024, 4096, 16 * 1024].map((meta) => [
        `meta ${meta} B`,
        Math.floor(maxMessage / (recordBytes - 120 + meta)),
      ]),
    ),
    /** Largest gossip batch membership accepts (claims), against a joiner's re-broadcast of its whole view. */
    maxClaimsPerGossipMessage: 1024,
    suspicionMs: Object.fromEntries([10, 100, 1000, 10_000].map((n) => [n, at(n)])),
    maxConnections: 400,
  }
}

async function writePlots(
  real: SizeResult[],
  simulated: SimSizeResult[],
  hybrid1000: HybridResult | null,
  hybrid: HybridResult | null,
) {
  await mkdir(`${ROOT}docs/img`, { recursive: true })
  // Whole agents on lan timers (the product as configured); membership-only members are in scale.json.
  // Real members on lan timers: whole agents (what operators run), and membership-only
  // members (what the simulation runs: the times are compared with those).
  const series = (kind: CellKind) =>
    real.filter((r) => (r.kind ?? 'agent') === kind && (r.preset ?? 'lan') === 'lan')
  const agents = series('agent')
  const members = series('membership').length > 0 ? series('membership') : agents
  const realPoints = (pick: (r: SizeResult) => number | null | undefined, of = agents) =>
    of.map((r) => ({ x: r.n, y: pick(r) ?? null }))
  const starvedFrom = (of: SizeResult[]) => of.find((r) => r.starvedPhases.includes('idle'))?.n
  const simPoints = (pick: (r: SimSizeResult) => number | null | undefined) =>
    simulated.map((r) => ({ x: r.n, y: pick(r) ?? null }))
  const hybridPoints = (pick: (r: HybridResult) => number | null | undefined) =>
    [hybrid1000, hybrid].filter((r) => r != null).map((r) => ({ x: r.n, y: pick(r) ?? null }))
  const notes = [
    `Real: in one process on a 2-core machine${starvedFrom(members) == null ? '' : `, CPU-starved at N = ${starvedFrom(members)}`}; times: membership-only members. Sim: free CPU.`,
    `Hybrid: ${HYBRID_FULL} members on the real code, the rest light (at N = 1000 and ${HYBRID_N}).`,
  ]
  await writeFile(
    `${ROOT}docs/img/scale-bytes.svg`,
    lineChart({
      title: 'Membership traffic per member vs cluster size',
      xLabel: 'members (N)',
      yLabel: 'bytes sent per member per second',
      series: [
        {
          name: 'real agents, idle',
          color: '#1f77b4',
          points: realPoints((r) => r.idle?.sentBytesPerNodePerSec),
        },
        {
          name: 'real membership only, idle',
          color: '#17becf',
          points: realPoints((r) => r.idle?.sentBytesPerNodePerSec, members),
        },
        {
          name: 'sim, idle (as real)',
          color: '#1f77b4',
          dashed: true,
          points: simPoints((r) => r.idle?.sentBytesPerNodePerSec),
        },
        {
          name: 'sim, steady (150-180 s)',
          color: '#d62728',
          dashed: true,
          points: simPoints((r) => r.steady?.sentBytesPerNodePerSec),
        },
        {
          name: 'sim hybrid, steady (full members)',
          color: '#9467bd',
          dashed: true,
          points: hybridPoints((r) => r.steady?.full.sentBytesPerNodePerSec),
        },
      ],
      notes,
    }),
  )
  await writeFile(
    `${ROOT}docs/img/scale-time.svg`,
    lineChart({
      title: 'Convergence and failure detection vs cluster size',
      xLabel: 'members (N)',
      yLabel: 'ms until every member sees it',
      series: [
        {
          name: 'real: views complete',
          color: '#1f77b4',
          points: realPoints((r) => r.completeViewsMs, members),
        },
        {
          name: 'real: join seen by all',
          color: '#2ca02c',
          points: realPoints((r) => r.joinSeenByAllMs, members),
        },
        {
          name: 'real: crash dead by all',
          color: '#d62728',
          points: realPoints((r) => r.killDeadByAllMs, members),
        },
        {
          name: 'sim: views complete',
          color: '#1f77b4',
          dashed: true,
          // Seeded runs (from 500) have no mass join to time: no point rather than 'did not finish'.
          points: simPoints((r) => r.completeViewsMs).filter((_, i) => simulated[i]?.warm !== true),
        },
        {
          name: 'sim: join seen by all',
          color: '#2ca02c',
          dashed: true,
          points: simPoints((r) => r.joinSeenByAllMs),
        },
        {
          name: 'sim: crash dead by all',
          color: '#d62728',
          dashed: true,
          points: simPoints((r) => r.killDeadByAllMs),
        },
        {
          name: 'sim hybrid: crash dead',
          color: '#9467bd',
          dashed: true,
          points: hybridPoints((r) => r.killDeadByAllMs),
        },
      ],
      notes,
    }),
  )
}

function simSummary(r: SimSizeResult): string {
  return (
    `views ${r.completeViewsMs} ms, join ${r.joinSeenByAllMs} ms, dead ${r.killDeadByAllMs} ms, ` +
    `idle ${r.idle?.sentBytesPerNodePerSec} B/node/s, steady ${r.steady?.sentBytesPerNodePerSec} B/node/s, ` +
    `false suspect/dead ${r.falsePositives.suspect}/${r.falsePositives.dead}, wall ${r.wallS} s`
  )
}

function render(
  real: RealPart | null,
  simulated: SimSizeResult[],
  hybrid: HybridResult | null,
  calibration: Calibration,
  comparison: Comparison[],
): string {
  const parts: string[] = []
  if (real != null) {
    parts.push(
      `Real agents (${real.carriedOver ? `carried over from ${real.date}` : real.date}):`,
      table(
        [
          'N',
          'members',
          'timers',
          'views ms',
          'join ms',
          'dead ms',
          'B/node/s',
          'conns',
          'RSS MB',
          'CPU %/member',
          'false s/d',
          'starved',
        ],
        real.results.map((r) => [
          r.n,
          r.kind ?? 'agent',
          r.preset ?? 'lan',
          r.completeViewsMs,
          r.joinSeenByAllMs,
          r.killDeadByAllMs,
          r.idle?.sentBytesPerNodePerSec ?? null,
          r.idle?.meanConnections ?? null,
          r.idle?.rssPerAgentMB ?? null,
          r.idle?.cpuPercentOfOneCorePerAgent ?? null,
          `${r.falsePositives.suspect}/${r.falsePositives.dead}`,
          r.starvedPhases.join(',') || 'no',
        ]),
      ),
      '',
    )
  }
  parts.push(
    `Calibration: ${JSON.stringify(calibration.measured)}`,
    `Checks: ${JSON.stringify({ ...calibration.checks, details: undefined })}`,
    '',
    'Simulation (real membership code, simulated network and clock; times in virtual ms):',
    table(
      [
        'N',
        'views ms',
        'join ms',
        'dead ms',
        'idle B/n/s',
        'steady B/n/s',
        'steady conns',
        'lost dials/n/s',
        'false s/d',
        'KB/node',
        'sync msg B',
        'wall s',
      ],
      simulated.map((r) => [
        r.n,
        r.completeViewsMs,
        r.joinSeenByAllMs,
        r.killDeadByAllMs,
        r.idle?.sentBytesPerNodePerSec ?? null,
        r.steady?.sentBytesPerNodePerSec ?? null,
        r.steady?.meanConnections ?? null,
        r.steady?.refusedDialsPerNodePerSec ?? null,
        `${r.falsePositives.suspect}/${r.falsePositives.dead}`,
        r.memory.perNodeKB,
        r.syncMessageBytes,
        r.wallS,
      ]),
    ),
  )
  if (hybrid != null) parts.push('', `N = ${hybrid.n} (hybrid): ${JSON.stringify(hybrid.summary)}`)
  if (comparison.length > 0) {
    parts.push(
      '',
      'Real vs simulated:',
      table(
        ['N', 'members', 'timers', 'metric', 'real', 'sim', 'real/sim', 'real starved'],
        comparison.map((c) => [
          c.n,
          c.kind,
          c.preset,
          c.metric,
          c.real,
          c.simulated,
          c.ratio,
          c.realStarved ? 'yes' : 'no',
        ]),
      ),
    )
  }
  return parts.join('\n')
}
