/**
 * The world both simulations give their Raft processes: one cluster name,
 * 100 ms ticks and 10-tick elections, small snapshots, messages and windows (so
 * that snapshots, truncation and flow control happen often), compaction every
 * 60 applied entries, and disks of the speed the seed picks.
 */
import type { Message, RaftInit, Snapshot } from '../../src/manager/raft/index.js'
import type { Random } from '../random.js'
import type { EventQueue } from './event-queue.js'
import type { RaftProcessEnv } from './raft-process.js'

export const SIM_CLUSTER = 'sim-cluster'

const TICK_MS = 100
const ELECTION_TICKS = 10

export interface ProcessEnvironmentInit {
  readonly queue: EventQueue
  readonly random: Random
  readonly genesis: Snapshot
  /** How far each process's clock rate may drift (±), which the lease must allow for. */
  readonly drift: number
  /**
   * Fast disks (NVMe, where races between messages are tightest: fsync under a
   * millisecond) or slow ones with long tails.
   */
  readonly fastDisks: boolean
  /** Overrides for every core. */
  readonly raftInit?: Partial<RaftInit>
  /** Sends a Raft message over the simulated network. */
  send(message: Message): void
}

export function processEnvironment(init: ProcessEnvironmentInit): RaftProcessEnv {
  const { random } = init
  return {
    queue: init.queue,
    cluster: SIM_CLUSTER,
    genesis: init.genesis,
    raftInit: {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
      maxClockDrift: init.drift,
      snapshotThreshold: 40,
      maxEntriesPerMessage: 16,
      maxInflight: 8,
      ...init.raftInit,
    },
    tickMs: TICK_MS,
    compactEvery: 60,
    random,
    send: init.send,
    fsyncDelay: init.fastDisks
      ? () => 0.05 + random() * 0.5
      : () => (random() < 0.3 ? 20 + random() * 180 : 1 + random() * 9),
  }
}
