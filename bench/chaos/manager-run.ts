/**
 * `npm run chaos -- manager` (or `npm run chaos:manager`): the manager campaign
 * (manager-campaign.ts). Results go to bench/results/chaos-manager.json;
 * docs/reliability-chaos.md, "Manager campaigns", explains them.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { machine, source } from '../util.js'
import { REPO_ROOT } from './cluster.js'
import {
  FAULT_KINDS,
  type FaultKind,
  MANAGER_DEFAULTS,
  type ManagerCampaignOptions,
  runManagerCampaign,
} from './manager-campaign.js'

const USAGE =
  'usage: npm run chaos -- manager [--faults N] [--seed S] [--nodes N] [--preset test|lan] [--clients N] ' +
  '[--faults-per-round N] [--max-ops N] [--kinds pause-leader,kill-leader,kill-agent,pause-follower] ' +
  '[--max-minutes M] [--log-level debug|info|warn] [--out FILE] [--keep]'

/** Runs the campaign with `argv` (after `manager`); the exit code: 0 when the history checked clean. */
export async function runManagerCli(argv: string[]): Promise<number> {
  const d = MANAGER_DEFAULTS
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      faults: { type: 'string', default: String(d.faults) },
      seed: { type: 'string' },
      nodes: { type: 'string', default: String(d.nodes) },
      preset: { type: 'string', default: d.preset },
      clients: { type: 'string', default: String(d.clients) },
      'faults-per-round': { type: 'string', default: String(d.faultsPerRound) },
      'max-ops': { type: 'string', default: String(d.maxOps) },
      kinds: { type: 'string', default: d.kinds.join(',') },
      'max-minutes': { type: 'string', default: String(d.maxMinutes) },
      out: { type: 'string', default: join(REPO_ROOT, 'bench', 'results', 'chaos-manager.json') },
      'log-level': { type: 'string', default: d.logLevel },
      keep: { type: 'boolean', default: false },
    },
  })
  const fail = (message: string): never => {
    console.error(`${message}\n${USAGE}`)
    process.exit(2)
  }
  if (positionals.length > 0) fail(`unexpected argument "${positionals[0]}"`)
  const whole = (name: string, text: string, min: number): number => {
    const n = Number(text)
    return Number.isInteger(n) && n >= min
      ? n
      : fail(`--${name} wants a whole number >= ${min}, got "${text}"`)
  }
  const preset = values.preset as ManagerCampaignOptions['preset']
  if (preset !== 'test' && preset !== 'lan') fail(`--preset wants test or lan, got "${preset}"`)
  const kinds = values.kinds.split(',').map((k) => k.trim()) as FaultKind[]
  for (const k of kinds)
    if (!FAULT_KINDS.includes(k)) fail(`--kinds: "${k}" is not one of ${FAULT_KINDS.join(', ')}`)
  const logLevel = values['log-level'] as ManagerCampaignOptions['logLevel']
  if (!['debug', 'info', 'warn'].includes(logLevel))
    fail(`--log-level wants debug, info or warn, got "${logLevel}"`)
  const maxMinutes = Number(values['max-minutes'])
  if (!(maxMinutes > 0)) fail(`--max-minutes wants a positive number, got "${values['max-minutes']}"`)
  const options: ManagerCampaignOptions = {
    ...d,
    seed: values.seed == null ? Math.floor(Math.random() * 2 ** 32) : whole('seed', values.seed, 0) >>> 0,
    faults: whole('faults', values.faults, 1),
    nodes: whole('nodes', values.nodes, 3),
    preset,
    clients: whole('clients', values.clients, 1),
    faultsPerRound: whole('faults-per-round', values['faults-per-round'], 1),
    maxOps: whole('max-ops', values['max-ops'], 1),
    kinds,
    maxMinutes,
    logLevel,
    keep: values.keep,
  }
  const host = machine()
  const { report, text } = await runManagerCampaign(options)
  await mkdir(join(values.out, '..'), { recursive: true })
  await writeFile(values.out, stringify({ machine: host, source: source(), ...report }))
  console.log(text)
  console.log(`\nresults: ${values.out} (${report.durationS} s)`)
  const clean =
    report.stoppedEarly == null &&
    report.violations.length === 0 &&
    report.rounds.every((r) => r.unhealed == null)
  return clean ? 0 : 1
}

/** The report as JSON: indented, but one line per fault and per command (hundreds of them). */
function stringify(report: Record<string, unknown> & { history: unknown[]; faultLog: unknown[] }): string {
  const { history, faultLog, ...rest } = report
  const list = (items: unknown[]) =>
    items.length === 0 ? '[]' : `[\n${items.map((i) => `    ${JSON.stringify(i)}`).join(',\n')}\n  ]`
  const head = JSON.stringify(rest, null, 2).slice(0, -2)
  return `${head},\n  "faultLog": ${list(faultLog)},\n  "history": ${list(history)}\n}\n`
}
