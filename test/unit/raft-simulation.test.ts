/**
 * A slice of the deterministic simulation campaign (bench/raft-sim; the full one
 * is `npm run sim -- --seeds 10000`): seeded runs of several agents' Raft cores
 * under partitions, loss, duplication, reordering, pauses, crashes and power
 * losses, voter changes, leadership transfers and a forger, with the invariants
 * of bench/raft-sim/checker.ts checked after every event. Then proof that the
 * checker has teeth: with a lease that assumes no clock drift on clocks that
 * drift wildly, or an adapter that sends before its fsync, it finds violations.
 */
import { describe, expect, it } from 'vitest'
import { runSimulation } from '../../bench/raft-sim/simulation.js'

const SEEDS = Number(process.env.RAFT_SIM_SEEDS ?? 100)

describe('raft simulation', () => {
  it(`${SEEDS} seeded runs keep every invariant`, () => {
    const failed: string[] = []
    let writes = 0
    let leaders = 0
    let faults = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = runSimulation({ seed })
      writes += result.stats.writes.ok
      leaders += result.stats.leaders
      faults += Object.values(result.stats.faults).reduce((a, b) => a + b, 0)
      if (!result.ok) failed.push(`seed ${seed}: ${result.violations.slice(0, 3).join(' | ')}`)
    }
    expect(failed).toEqual([])
    // The runs did something: commands acknowledged, leaders changing, faults injected.
    expect(writes).toBeGreaterThan(SEEDS * 50)
    expect(leaders).toBeGreaterThan(SEEDS * 2)
    expect(faults).toBeGreaterThan(SEEDS * 10)
  })

  it('replays a seed exactly', () => {
    expect(runSimulation({ seed: 7 })).toEqual(runSimulation({ seed: 7 }))
  })

  // The two mutations below fail a few seeds in a hundred; the ranges hold some (found with the
  // runner). A change to the simulation moves them: pick the range again if these fail.
  it('catches two acting leaders when the lease assumes no drift and clocks drift by up to 50 %', () => {
    const violations = []
    for (let seed = 60; seed <= 120; seed++) {
      const result = runSimulation({ seed, clockDrift: 0.5, raftInit: { maxClockDrift: 0 } })
      violations.push(...result.violations.filter((v) => v.includes('acting as leader')))
    }
    expect(violations.length).toBeGreaterThan(0)
  })

  it('catches an adapter that sends messages before their fsync (power losses lose acknowledged writes)', () => {
    const violations = []
    for (let seed = 95; seed <= 115; seed++) {
      const result = runSimulation({ seed, sendBeforeSync: true })
      violations.push(...result.violations.filter((v) => !v.includes('liveness')))
    }
    expect(violations.length).toBeGreaterThan(0)
  })
})
