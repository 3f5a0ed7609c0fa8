/**
 * The rollout simulation campaign, `npm run sim -- --rollouts [--seeds N]
 * [--from S] [--seed S] [--fault-ms MS] [--heal-ms MS] [--verbose]` (run.ts
 * hands over here): runs seeds from..from+N-1 of rollout-simulation.ts, prints
 * every failing seed with its first violations and the totals; returns the exit
 * code (1 when any seed failed).
 */
import { type RolloutSimResult, runRolloutSimulation } from './rollout-simulation.js'

export interface RolloutCampaign {
  readonly from: number
  readonly count: number
  readonly faultMs?: number
  readonly healMs?: number
  readonly verbose?: boolean
}

export function rolloutCampaign(options: RolloutCampaign): number {
  const { from, count } = options
  const started = Date.now()
  const failed: RolloutSimResult[] = []
  const totals = {
    events: 0,
    simulatedMs: 0,
    leaders: 0,
    faults: 0,
    started: 0,
    finished: 0,
    pauses: 0,
    turns: 0,
    catchUps: 0,
    failedSwitches: 0,
    excusedOverlaps: 0,
    lostWhileReachable: 0,
    turnsPastUnseen: 0,
    proposed: 0,
    conflicts: 0,
    overwritten: 0,
  }
  const maxSeen = new Map<number, number>()
  let maxWithReturns = 0
  let maxInRecord = 0
  for (let seed = from; seed < from + count; seed++) {
    const result = runRolloutSimulation({
      seed,
      ...(options.faultMs != null ? { faultMs: options.faultMs } : {}),
      ...(options.healMs != null ? { healMs: options.healMs } : {}),
    })
    const s = result.stats
    totals.events += s.events
    totals.simulatedMs += s.simulatedMs
    totals.leaders += s.leaders
    totals.faults += Object.values(s.faults).reduce((a, b) => a + b, 0)
    totals.started += s.rolloutsStarted
    totals.finished += s.rolloutsFinished
    totals.pauses += s.pauses
    totals.turns += s.turns
    totals.catchUps += s.catchUps
    totals.failedSwitches += s.failedSwitches
    totals.excusedOverlaps += s.excusedOverlaps
    totals.lostWhileReachable += s.lostWhileReachable
    totals.turnsPastUnseen += s.turnsPastUnseen
    totals.proposed += s.proposed
    totals.conflicts += s.conflicts
    totals.overwritten += s.overwritten
    maxSeen.set(s.maxUnavailable, Math.max(maxSeen.get(s.maxUnavailable) ?? 0, s.maxUnavailableSeen))
    maxWithReturns = Math.max(maxWithReturns, s.maxWithReturns - s.maxUnavailable)
    maxInRecord = Math.max(maxInRecord, s.maxUpdatingInRecord - s.maxUnavailable)
    if (!result.ok) {
      failed.push(result)
      console.log(`FAIL seed ${seed}:\n  ${result.violations.slice(0, 5).join('\n  ')}`)
    } else if (options.verbose === true) console.log(`ok   seed ${seed} ${JSON.stringify(s)}`)
    const done = seed - from + 1
    if (options.verbose !== true && done % 100 === 0)
      console.log(
        `… ${done}/${count} seeds, ${failed.length} failed, ${((Date.now() - started) / 1000).toFixed(0)} s`,
      )
  }
  const seconds = (Date.now() - started) / 1000
  const seen = [...maxSeen]
    .sort(([a], [b]) => a - b)
    .map(([k, v]) => `${v} with maxUnavailable ${k}`)
    .join(', ')
  console.log(
    `${count} rollout seeds (${from}–${from + count - 1}), ${failed.length} failed, ${seconds.toFixed(1)} s wall; ` +
      `${(totals.simulatedMs / 3_600_000).toFixed(2)} h simulated, ${totals.events} events, ${totals.faults} faults, ` +
      `${totals.leaders} leaders; ${totals.started} rollouts started, ${totals.finished} finished, ${totals.pauses} paused and resumed; ` +
      `${totals.turns} turns, ${totals.catchUps} catch-ups, ${totals.failedSwitches} failed switches; ` +
      `${totals.proposed} decisions proposed, ${totals.conflicts} conflicts, ${totals.overwritten} overwritten; ` +
      `most unavailable at once: ${seen}; steps over it counting nodes whose slot was freed (seen dead, or down and forgotten): ${totals.excusedOverlaps} ` +
      `(at most +${maxWithReturns}); most updating in a record: maxUnavailable +${maxInRecord}; ` +
      `turns given past a forgotten updating node: ${totals.turnsPastUnseen}; lost while reachable: ${totals.lostWhileReachable}`,
  )
  if (failed.length > 0) console.log(`failing seeds: ${failed.map((r) => r.seed).join(' ')}`)
  return failed.length > 0 ? 1 : 0
}
