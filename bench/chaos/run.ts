/**
 * Chaos campaigns on real agent processes: `npm run chaos -- kill [--trials N]
 * [--seed S] [--max-minutes M] [--phase download|install|switch|rollout|all]
 * [--nodes N] [--preset test|lan] [--recover-timeout SECONDS] [--keep]`.
 * Results go to bench/results/chaos-kill.json; docs/reliability-chaos.md explains them.
 * `npm run chaos -- manager …`: the manager campaign (manager-run.ts).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { machine, source } from '../util.js'
import { REPO_ROOT } from './cluster.js'
import { type KillOptions, PHASES, runKillCampaign } from './kill-campaign.js'
import { runManagerCli } from './manager-run.js'

// libp2p and level can leave handles open briefly after stop; the run is over.
if (process.argv[2] === 'manager') process.exit(await runManagerCli(process.argv.slice(3)))

const USAGE =
  'usage: npm run chaos -- kill [--trials N] [--seed S] [--max-minutes M] ' +
  '[--phase download|install|switch|rollout|all] [--nodes N] [--preset test|lan] [--recover-timeout S] [--keep]'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    trials: { type: 'string', default: '100' },
    seed: { type: 'string' },
    'max-minutes': { type: 'string', default: '30' },
    phase: { type: 'string', default: 'all' },
    nodes: { type: 'string', default: '3' },
    preset: { type: 'string', default: 'test' },
    'recover-timeout': { type: 'string', default: '120' },
    keep: { type: 'boolean', default: false },
  },
})

const fail = (message: string): never => {
  console.error(`${message}\n${USAGE}`)
  process.exit(2)
}
const whole = (name: string, text: string, min: number): number => {
  const n = Number(text)
  return Number.isInteger(n) && n >= min ? n : fail(`--${name} wants a whole number >= ${min}, got "${text}"`)
}

if (positionals[0] !== 'kill') fail(`unknown campaign "${positionals[0] ?? ''}" (available: kill, manager)`)
const phase = values.phase as KillOptions['phase']
if (phase !== 'all' && !PHASES.includes(phase))
  fail(`--phase wants one of ${PHASES.join(', ')} or all, got "${phase}"`)
const preset = values.preset as KillOptions['preset']
if (preset !== 'test' && preset !== 'lan') fail(`--preset wants test or lan, got "${preset}"`)
const maxMinutes = Number(values['max-minutes'])
if (!(maxMinutes > 0)) fail(`--max-minutes wants a positive number, got "${values['max-minutes']}"`)

const options: KillOptions = {
  trials: whole('trials', values.trials, 1),
  // Without --seed a new one is drawn, and printed so the run can be repeated.
  seed: values.seed == null ? Math.floor(Math.random() * 2 ** 32) : whole('seed', values.seed, 0) >>> 0,
  maxMinutes,
  phase,
  nodes: whole('nodes', values.nodes, 3),
  preset,
  recoverTimeoutS: whole('recover-timeout', values['recover-timeout'], 10),
  keep: values.keep,
}

// Taken before the agents start: its load average says how busy the machine already was.
const host = machine()
const { report, text } = await runKillCampaign(options)
const results = join(REPO_ROOT, 'bench', 'results')
await mkdir(results, { recursive: true })
const file = join(results, 'chaos-kill.json')
await writeFile(file, `${JSON.stringify({ machine: host, source: source(), ...report }, null, 2)}\n`)
console.log(text)
console.log(`\nresults: ${file} (${report.durationS} s)`)
const clean =
  report.stoppedEarly == null &&
  report.trials.every((t) => t.pass) &&
  Object.values(report.final ?? {}).every((checks) => Object.values(checks).every((c) => c.ok))
// libp2p and level can leave handles open briefly after stop; the run is over.
process.exit(clean ? 0 : 1)
