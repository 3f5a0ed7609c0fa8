/**
 * Benchmark entry: `npm run bench -- <suite> [--sizes 10,25,50,100] [--no-processes] [--workers W]`.
 * Suites: membership (default), artifacts (`--sizes` default 2,5,10,20; needs root for its network namespaces),
 * runtime (`--sizes` default 3,10), lb (direct vs built-in proxy vs HAProxy; failures under drains and restarts),
 * manager (failover at `--sizes`, default 5,10; rolling update of 10 nodes behind `shoal lb` under load),
 * switch (all-at-once rollouts and rollbacks of the demo's 3 nodes behind `shoal lb` under load, against one node's
 * switch; `--sizes` takes the node count, default 3),
 * nodes (`shoal node copy` to serving through `shoal lb` on 5 nodes with a ~100 MB distribution; `--sizes` unused),
 * rollout-analysis (issue 21: a bad canary with analysis under load behind `shoal lb`, sent back by its verdict;
 * `--sizes` takes the node count, default 5),
 * scale (the membership benchmark at `--sizes`, then the simulation up to `--max` members, default 1000;
 * `--no-real` carries the real figures over from the last scale.json; docs/scale.md).
 * `--members agent|membership[,...]` (membership, scale; scale's default both): whole agents, or only libp2p and Membership.
 * `--preset lan|cloud|test` (membership, scale): the real members' membership timers (default lan).
 * `--reuse-calibration` (scale): the previous run's wire calibration (cached simulations then match).
 * `--run-up-to N` (scale): a simulation larger than N with no cached result is reported missing, not run.
 * `--rolling FROM:BATCH` (membership, scale; scale's default 100:10): sizes >= FROM start BATCH agents at a time.
 * `--processes N` (membership): instead, N agent processes with SIGSTOP/SIGKILL rounds (issue 19;
 * bench/membership-processes.ts), written to results/membership-processes-N.json.
 * scale-starved (issue 19: `--size N` members on the real code, default 1000, simulated for `--minutes M`,
 * default 30, with 1 % of them stalling 2 s at random, 5 % loss and one-way loss; `--seed S`, default 1;
 * after a baseline of `--baseline-minutes B` without them, default min(5, M), 0 for none;
 * bench/scale/starved.ts), written to results/scale-starved-N.json.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { isTimerPreset, TIMER_PRESETS } from '../src/shared/presets.js'
import { runArtifacts } from './artifacts.js'
import { runLb } from './lb.js'
import { runManager } from './manager.js'
import { DEFAULT_WORKERS, runMembership } from './membership.js'
import type { CellKind } from './membership-cell.js'
import { runMembershipProcesses } from './membership-processes.js'
import { runNodes } from './nodes.js'
import { runRolloutAnalysis } from './rollout-analysis.js'
import { runRuntime } from './runtime.js'
import { runScale } from './scale/index.js'
import { runScaleStarved } from './scale/starved.js'
import { runSwitch } from './switch.js'

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url))

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    sizes: { type: 'string' },
    'no-processes': { type: 'boolean', default: false },
    workers: { type: 'string', default: String(DEFAULT_WORKERS) },
    max: { type: 'string', default: '1000' },
    'no-real': { type: 'boolean', default: false },
    rolling: { type: 'string' },
    members: { type: 'string' },
    preset: { type: 'string', default: 'lan' },
    'reuse-calibration': { type: 'boolean', default: false },
    'run-up-to': { type: 'string' },
    processes: { type: 'string' },
    size: { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '30' },
    seed: { type: 'string', default: '1' },
    'baseline-minutes': { type: 'string' },
  },
})
const suite = positionals[0] ?? 'membership'
const SUITES = [
  'membership',
  'artifacts',
  'runtime',
  'lb',
  'manager',
  'nodes',
  'scale',
  'scale-starved',
  'switch',
  'rollout-analysis',
] as const
if (!SUITES.includes(suite as never)) {
  console.error(`unknown benchmark suite "${suite}" (available: ${SUITES.join(', ')})`)
  process.exit(2)
}
const DEFAULT_SIZES: Record<string, string> = {
  membership: '10,25,50,100',
  artifacts: '2,5,10,20',
  runtime: '3,10',
  lb: '3',
  manager: '5,10',
  nodes: '5',
  switch: '3',
  'rollout-analysis': '5',
  scale: '10,25,50,100',
  'scale-starved': '1000',
}
const sizesText = values.sizes ?? DEFAULT_SIZES[suite]!
const sizes = sizesText.split(',').map(Number)
if (!sizes.every((n) => Number.isInteger(n) && n >= 2)) {
  console.error(`--sizes wants whole numbers >= 2, got "${sizesText}"`)
  process.exit(2)
}

const workers = Number(values.workers)
if (!Number.isInteger(workers) || workers < 1) {
  console.error(`--workers wants a whole number >= 1, got "${values.workers}"`)
  process.exit(2)
}

// --rolling FROM:BATCH: sizes >= FROM start BATCH agents at a time (scale: 100:10 unless given; off elsewhere).
const rollingText = values.rolling ?? (suite === 'scale' ? '100:10' : undefined)
const [rollingFrom, rollingBatch] = (rollingText ?? '').split(':').map(Number)
const rolling =
  rollingText == null ? undefined : { from: rollingFrom ?? Number.NaN, batch: rollingBatch ?? Number.NaN }
if (
  rolling != null &&
  !(Number.isInteger(rolling.from) && Number.isInteger(rolling.batch) && rolling.batch >= 1)
) {
  console.error(`--rolling wants FROM:BATCH (whole numbers, e.g. 100:10), got "${rollingText}"`)
  process.exit(2)
}

// --members agent|membership (membership, scale): whole agents, or only the libp2p node and Membership.
// The scale suite measures both unless told (agent,membership).
const kinds = (values.members ?? (suite === 'scale' ? 'agent,membership' : 'agent')).split(',')
if (!kinds.every((kind): kind is CellKind => kind === 'agent' || kind === 'membership')) {
  console.error(`--members wants agent, membership or both (comma-separated), got "${values.members}"`)
  process.exit(2)
}

const preset = values.preset
if (!isTimerPreset(preset)) {
  console.error(`--preset wants ${TIMER_PRESETS.join(', ')}, got "${values.preset}"`)
  process.exit(2)
}

// --processes N (membership): the agent-process rounds alone, into their own results file.
const processCount = suite === 'membership' && values.processes != null ? Number(values.processes) : null
if (processCount != null && !(Number.isInteger(processCount) && processCount >= 3)) {
  console.error(`--processes wants a whole number >= 3, got "${values.processes}"`)
  process.exit(2)
}

// --size N --minutes M --seed S (scale-starved): one campaign, into its own results file.
const starved =
  suite === 'scale-starved'
    ? {
        n: Number(values.size),
        minutes: Number(values.minutes),
        seed: Number(values.seed),
        baselineMinutes: Number(values['baseline-minutes'] ?? Math.min(5, Number(values.minutes))),
      }
    : null
if (
  starved != null &&
  !(
    Number.isInteger(starved.n) &&
    starved.n >= 3 &&
    Number.isInteger(starved.minutes) &&
    starved.minutes >= 1 &&
    Number.isInteger(starved.seed) &&
    Number.isInteger(starved.baselineMinutes) &&
    starved.baselineMinutes >= 0 &&
    starved.baselineMinutes <= starved.minutes
  )
) {
  console.error(
    `scale-starved wants whole numbers: --size >= 3, --minutes >= 1, --seed, --baseline-minutes from 0 to --minutes; got ${values.size}, ${values.minutes}, ${values.seed}, ${values['baseline-minutes']}`,
  )
  process.exit(2)
}

const { report, text } =
  suite === 'artifacts'
    ? await runArtifacts({ sizes })
    : suite === 'runtime'
      ? await runRuntime({ sizes })
      : suite === 'lb'
        ? await runLb()
        : suite === 'manager'
          ? await runManager({ sizes })
          : suite === 'nodes'
            ? await runNodes()
            : suite === 'switch'
              ? await runSwitch({ sizes })
              : suite === 'rollout-analysis'
                ? await runRolloutAnalysis({ sizes })
                : suite === 'scale'
                  ? await runScale({
                      sizes,
                      max: Number(values.max),
                      real: !values['no-real'],
                      workers,
                      rolling,
                      kinds,
                      preset,
                      reuseCalibration: values['reuse-calibration'],
                      ...(values['run-up-to'] == null ? {} : { runUpTo: Number(values['run-up-to']) }),
                    })
                  : starved != null
                    ? await runScaleStarved(starved)
                    : processCount != null
                      ? await runMembershipProcesses({ count: processCount })
                      : await runMembership({
                          sizes,
                          processes: !values['no-processes'],
                          workers,
                          rolling,
                          kind: kinds[0]!,
                          preset,
                        })
await mkdir(RESULTS, { recursive: true })
const file = `${RESULTS}${
  processCount != null
    ? `membership-processes-${processCount}`
    : starved != null
      ? `scale-starved-${starved.n}`
      : suite
}.json`
await writeFile(file, `${JSON.stringify(report, null, 2)}\n`)
console.log(text)
console.log(`\nresults: ${file} (${report.durationS} s)`)
// libp2p and level can leave handles open briefly after stop; the run is over.
process.exit(0)
