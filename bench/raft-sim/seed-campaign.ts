/**
 * A campaign over seeds of one simulation: runs seeds from..from+count-1 one
 * after the other, prints every failing seed with its first violations (and,
 * verbose, every passing seed's stats; otherwise progress every 100 seeds), then
 * a summary line and the failing seeds. Returns the exit code: 1 when any seed
 * failed.
 */

/** One seeded run's outcome. */
export interface SeedResult<Stats> {
  readonly seed: number
  readonly ok: boolean
  readonly violations: readonly string[]
  readonly stats: Stats
}

export interface SeedCampaign<Stats> {
  readonly from: number
  readonly count: number
  readonly verbose: boolean
  /** What the summary calls the seeds ("seeds", "rollout seeds"). */
  readonly label: string
  run(seed: number): SeedResult<Stats>
  /** Adds one seed's stats to the totals. */
  tally(stats: Stats): void
  /** The totals, for the end of the summary line. */
  totals(): string
}

export function runSeedCampaign<Stats>(campaign: SeedCampaign<Stats>): number {
  const { from, count, verbose } = campaign
  const started = Date.now()
  const failed: number[] = []
  for (let seed = from; seed < from + count; seed++) {
    const result = campaign.run(seed)
    campaign.tally(result.stats)
    if (!result.ok) {
      failed.push(seed)
      console.log(`FAIL seed ${seed}:\n  ${result.violations.slice(0, 5).join('\n  ')}`)
    } else if (verbose) console.log(`ok   seed ${seed} ${JSON.stringify(result.stats)}`)
    const done = seed - from + 1
    if (!verbose && done % 100 === 0)
      console.log(
        `… ${done}/${count} seeds, ${failed.length} failed, ${((Date.now() - started) / 1000).toFixed(0)} s`,
      )
  }
  const seconds = (Date.now() - started) / 1000
  console.log(
    `${count} ${campaign.label} (${from}–${from + count - 1}), ${failed.length} failed, ${seconds.toFixed(1)} s wall; ` +
      campaign.totals(),
  )
  if (failed.length > 0) console.log(`failing seeds: ${failed.join(' ')}`)
  return failed.length > 0 ? 1 : 0
}
