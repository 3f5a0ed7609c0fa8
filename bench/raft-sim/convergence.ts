/**
 * Whether a simulated Raft cluster has converged once its faults healed: a node
 * acts as leader (leader with a valid lease), everything in its log is
 * committed, and every member of its configuration is up and has applied all of
 * it.
 */
import type { AnyRaftProcess } from './raft-process.js'

export function actingLeader<Process extends AnyRaftProcess>(
  processes: readonly Process[],
): Process | undefined {
  return processes.find((p) => p.alive && p.raft.isActingLeader())
}

/** The acting leader of a converged cluster; undefined while it has not converged. */
export function convergedLeader<Process extends AnyRaftProcess>(
  processes: readonly Process[],
): Process | undefined {
  const leader = actingLeader(processes)
  if (leader === undefined) return undefined
  const s = leader.raft.status()
  if (s.commit !== s.lastIndex) return undefined
  for (const id of [...s.config.voters, ...s.config.learners]) {
    const member = processes.find((p) => p.id === id)
    if (member === undefined || !member.alive || member.machine.lastIndex !== s.commit) return undefined
  }
  return leader
}
