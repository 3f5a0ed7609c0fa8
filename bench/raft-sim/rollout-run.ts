/**
 * The rollout simulation campaign, `npm run sim -- --rollouts [--seeds N]
 * [--from S] [--seed S] [--fault-ms MS] [--heal-ms MS] [--verbose]` (run.ts
 * hands over here): runs seeds from..from+N-1 of rollout-simulation.ts, prints
 * every failing seed with its first violations and the totals; returns the exit
 * code (1 when any seed failed).
 */
import { type RolloutSimStats, runRolloutSimulation } from './rollout-simulation.js'
import { runSeedCampaign } from './seed-campaign.js'

export interface RolloutCampaign {
  readonly from: number
  readonly count: number
  readonly faultMs?: number
  readonly healMs?: number
  readonly verbose?: boolean
}

/** The stats summed over the seeds. */
const SUMMED = [
  'events',
  'simulatedMs',
  'leaders',
  'rolloutsStarted',
  'rolloutsFinished',
  'pauses',
  'turns',
  'catchUps',
  'failedSwitches',
  'excusedOverlaps',
  'lostWhileReachable',
  'turnsPastUnseen',
  'proposed',
  'conflicts',
  'overwritten',
] as const satisfies ReadonlyArray<keyof RolloutSimStats>

export function rolloutCampaign(options: RolloutCampaign): number {
  const totals = Object.fromEntries(SUMMED.map((key) => [key, 0])) as Record<(typeof SUMMED)[number], number>
  let faults = 0
  const maxSeen = new Map<number, number>()
  let maxWithReturns = 0
  let maxInRecord = 0
  const tally = (s: RolloutSimStats) => {
    for (const key of SUMMED) totals[key] += s[key]
    faults += Object.values(s.faults).reduce((a, b) => a + b, 0)
    maxSeen.set(s.maxUnavailable, Math.max(maxSeen.get(s.maxUnavailable) ?? 0, s.maxUnavailableSeen))
    maxWithReturns = Math.max(maxWithReturns, s.maxWithReturns - s.maxUnavailable)
    maxInRecord = Math.max(maxInRecord, s.maxUpdatingInRecord - s.maxUnavailable)
  }
  const summary = () => {
    const seen = [...maxSeen]
      .sort(([a], [b]) => a - b)
      .map(([k, v]) => `${v} with maxUnavailable ${k}`)
      .join(', ')
    return (
      `${(totals.simulatedMs / 3_600_000).toFixed(2)} h simulated, ${totals.events} events, ${faults} faults, ` +
      `${totals.leaders} leaders; ${totals.rolloutsStarted} rollouts started, ${totals.rolloutsFinished} finished, ${totals.pauses} paused and resumed; ` +
      `${totals.turns} turns, ${totals.catchUps} catch-ups, ${totals.failedSwitches} failed switches; ` +
      `${totals.proposed} decisions proposed, ${totals.conflicts} conflicts, ${totals.overwritten} overwritten; ` +
      `most unavailable at once: ${seen}; steps over it counting nodes whose slot was freed (seen dead, or down and forgotten): ${totals.excusedOverlaps} ` +
      `(at most +${maxWithReturns}); most updating in a record: maxUnavailable +${maxInRecord}; ` +
      `turns given past a forgotten updating node: ${totals.turnsPastUnseen}; lost while reachable: ${totals.lostWhileReachable}`
    )
  }
  return runSeedCampaign({
    from: options.from,
    count: options.count,
    verbose: options.verbose === true,
    label: 'rollout seeds',
    run: (seed) =>
      runRolloutSimulation({
        seed,
        ...(options.faultMs != null ? { faultMs: options.faultMs } : {}),
        ...(options.healMs != null ? { healMs: options.healMs } : {}),
      }),
    tally,
    totals: summary,
  })
}
