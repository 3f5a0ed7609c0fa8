/**
 * The manager campaign's short slice (issue 18, "real processes"): three agent
 * processes, two SIGSTOP pauses of the Raft leader and one SIGKILL of it, and two
 * clients sending rollouts and control commands through random agents' APIs all
 * along. The history checker (bench/chaos/history-checker.ts) must find every
 * acknowledged command exactly once in the state every agent holds afterwards,
 * no refused one, rollout ids in real-time order and the agents in agreement.
 * Nothing here is timed: the waits are long and only safety is asserted.
 * The long campaign is `npm run chaos -- manager` (docs/reliability-chaos.md).
 */
import { describe, expect, it } from 'vitest'
import { MANAGER_DEFAULTS, runManagerCampaign } from '../../bench/chaos/manager-campaign.js'

describe('the manager on 3 agent processes under leader pauses and a leader kill', () => {
  it('keeps every acknowledged command once, no refused one, ids in real-time order, all agents agreeing', async () => {
    const lines: string[] = []
    const { report, text } = await runManagerCampaign({
      ...MANAGER_DEFAULTS,
      seed: 18,
      nodes: 3,
      schedule: ['pause-leader', 'pause-leader', 'kill-leader'],
      faultsPerRound: 3,
      clients: 2,
      maxOps: 80,
      pauseMs: [1000, 4000],
      gapMs: [1000, 2500],
      thinkMs: [400, 1200],
      healTimeoutS: 150,
      // A voter that never finds the leader again is a failure here, not something to restart.
      restartStuck: false,
      maxMinutes: 10,
      print: (line) => lines.push(line),
    })
    const story = `${lines.join('\n')}\n${text}\n${report.log.slice(-40).join('\n')}`
    expect(report.stoppedEarly, story).toBeNull()
    expect(report.violations, story).toEqual([])
    expect(
      report.rounds.map((r) => r.check?.ok),
      story,
    ).toEqual([true])
    expect(report.faults.byKind, story).toMatchObject({ 'pause-leader': 2, 'kill-leader': 1 })
    expect(report.ops.invoked, story).toBe(report.ops.ok + report.ops.fail + report.ops.unknown)
    expect(report.ops.ok, story).toBeGreaterThan(0)
  }, 300_000)
})
