/**
 * The simulation campaign: `npm run sim -- [--seeds N] [--from S] [--seed S]
 * [--fault-ms MS] [--heal-ms MS] [--verbose] [--rollouts]`. Runs seeds from..from+N-1
 * (of the rollout simulation with --rollouts: rollout-run.ts) and prints every failing seed with its first violations (replay one with --seed);
 * exits 1 when any failed.
 */
import { parseArgs } from 'node:util'
import { runSeedCampaign } from './seed-campaign.js'
import { runSimulation } from './simulation.js'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    from: { type: 'string', default: '1' },
    seed: { type: 'string' },
    'fault-ms': { type: 'string', default: '30000' },
    'heal-ms': { type: 'string', default: '30000' },
    verbose: { type: 'boolean', default: false },
    /** The rollout simulation instead (rollout-simulation.ts). */
    rollouts: { type: 'boolean', default: false },
  },
})

const whole = (name: string, text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} wants a whole number, got "${text}"`)
    process.exit(2)
  }
  return n
}

const from = values.seed != null ? whole('seed', values.seed) : whole('from', values.from)
const count = values.seed != null ? 1 : whole('seeds', values.seeds)
const faultMs = whole('fault-ms', values['fault-ms'])
const healMs = whole('heal-ms', values['heal-ms'])

if (values.rollouts) {
  const { rolloutCampaign } = await import('./rollout-run.js')
  const ownHeal = process.argv.some((a) => a.startsWith('--heal-ms'))
  process.exitCode = rolloutCampaign({
    from,
    count,
    faultMs,
    verbose: values.verbose,
    ...(ownHeal ? { healMs } : {}),
  })
  process.exit()
}

const totals = { events: 0, simulatedMs: 0, writesOk: 0, readsOk: 0, leaders: 0, faults: 0, forged: 0 }
process.exitCode = runSeedCampaign({
  from,
  count,
  verbose: values.verbose,
  label: 'seeds',
  run: (seed) => runSimulation({ seed, faultMs, healMs }),
  tally: (s) => {
    totals.events += s.events
    totals.simulatedMs += s.simulatedMs
    totals.writesOk += s.writes.ok
    totals.readsOk += s.reads.ok
    totals.leaders += s.leaders
    totals.faults += Object.values(s.faults).reduce((a, b) => a + b, 0)
    totals.forged += s.forged
  },
  totals: () =>
    `${(totals.simulatedMs / 3_600_000).toFixed(2)} h simulated, ${totals.events} events, ` +
    `${totals.faults} faults, ${totals.leaders} leaders, ${totals.writesOk} writes and ${totals.readsOk} reads acknowledged, ` +
    `${totals.forged} forged messages`,
})
