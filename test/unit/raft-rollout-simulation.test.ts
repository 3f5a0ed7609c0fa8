/**
 * A slice of the rollout simulation campaign (bench/raft-sim/rollout-simulation.ts;
 * the full one is `npm run sim -- --rollouts --seeds 1000`): manager processes
 * running the real ClusterMachine and the manager's decision loop with the real
 * rollout engine, app nodes that follow the committed state late and switch,
 * rolling rollouts with maxUnavailable 1 or 2 started by an operator, and leader
 * crashes, pauses and partitions meanwhile. The checker
 * (bench/raft-sim/rollout-checker.ts) holds max-unavailable across the whole
 * fleet at every step, no node switched twice or skipped, and every rollout
 * finishing once the faults heal. Then proof that it has teeth.
 */
import { describe, expect, it } from 'vitest'
import { runRolloutSimulation } from '../../bench/raft-sim/rollout-simulation.js'

const SEEDS = Number(process.env.RAFT_ROLLOUT_SIM_SEEDS ?? 50)

describe('rollout simulation', () => {
  it(`${SEEDS} seeded runs keep max-unavailable and finish every rollout`, () => {
    const failed: string[] = []
    let finished = 0
    let leaders = 0
    let faults = 0
    let slotsUsed = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = runRolloutSimulation({ seed })
      const s = result.stats
      finished += s.rolloutsFinished
      leaders += s.leaders
      faults += Object.values(s.faults).reduce((a, b) => a + b, 0)
      if (s.maxUnavailableSeen === s.maxUnavailable) slotsUsed++
      if (!result.ok) failed.push(`seed ${seed}: ${result.violations.slice(0, 3).join(' | ')}`)
    }
    expect(failed).toEqual([])
    // The runs did something: rollouts finished under changing leaders and faults, using their slots.
    expect(finished).toBeGreaterThan(SEEDS)
    expect(leaders).toBeGreaterThan(SEEDS * 3)
    expect(faults).toBeGreaterThan(SEEDS * 10)
    expect(slotsUsed).toBeGreaterThan(SEEDS / 2)
  })

  it('replays a seed exactly', () => {
    expect(runRolloutSimulation({ seed: 7 })).toEqual(runRolloutSimulation({ seed: 7 }))
  })

  it('catches a leader that lets one node more than maxUnavailable go', () => {
    const caught = []
    for (let seed = 1; seed <= 10; seed++) {
      const result = runRolloutSimulation({ seed, mutation: 'over-admit' })
      caught.push(...result.violations.filter((v) => v.includes('maxUnavailable')))
    }
    expect(caught.length).toBeGreaterThan(5)
  })

  it('catches app nodes that adopt an older state (a node switched back and again)', () => {
    const caught = []
    for (let seed = 1; seed <= 10; seed++) {
      const result = runRolloutSimulation({ seed, mutation: 'unordered-follow' })
      caught.push(...result.violations.filter((v) => v.includes('switched again')))
    }
    expect(caught.length).toBeGreaterThan(5)
  })

  // Known bugs, found by the campaign (src/manager is not changed here): when one is fixed, its
  // test fails; make it a plain `it`.
  //
  // Manager.readySince (src/manager/manager.ts) outlives the
  // rollout it was kept for. A process that saw a node ready in an earlier rollout and next
  // leads when that node is already ready on the new version counts it done at once, skipping
  // min-ready. These seeds (of 1–1000) show it.
  it('holds min-ready when a leader saw the node ready in an earlier rollout (was a bug: the min-ready clock now belongs to one rollout in one term)', () => {
    const breaches = []
    for (const seed of [261, 527, 541, 543, 876]) {
      const result = runRolloutSimulation({ seed })
      breaches.push(...result.violations.filter((v) => v.includes('min-ready')))
    }
    expect(breaches).toEqual([])
  })

  // A leader whose membership view is not complete yet (it restarted and got the leadership by
  // a transfer before its join's sync, under loss) treats a node missing from its view as dead,
  // with no grace (rollout-engine.ts: only `seen(id)?.alive` counts; lostAfterMs only holds
  // nodes with a deadSince). Seed 1770: it finished r1 counting a4, alive and switching, `lost`.
  // Seed 3834: a2 was updating but unseen, so it gave a4 a turn: three nodes switched at once
  // with maxUnavailable 2.
  it('never counts a node it has not heard of yet as gone (was a bug: a new leader waits for its view, mayStep)', () => {
    const broken = []
    for (const seed of [1770, 3834]) broken.push(...runRolloutSimulation({ seed }).violations)
    expect(broken).toEqual([])
  })
})
