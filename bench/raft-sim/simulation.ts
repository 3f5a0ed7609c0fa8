/**
 * One seeded run: N agents' Raft cores on a simulated network, disk and clocks,
 * clients writing and reading, an operator changing the voters, a forger, and
 * faults — partitions (symmetric, one-way, non-transitive), loss, duplication,
 * reordering, process pauses, crashes that lose unsynced writes. The checker
 * (checker.ts) runs after every event; at the end every fault heals, the cluster
 * must converge, and the history is checked.
 *
 * Everything random comes from one mulberry32 stream seeded by `seed`, and events
 * are ordered by (time, insertion): a seed replays exactly.
 */
import { genesisSnapshot, type Message, type NodeId, type RaftInit } from '../../src/manager/raft/index.js'
import { mulberry32, pick, type Random } from '../random.js'
import { Checker } from './checker.js'
import { type Op, SimClient } from './clients.js'
import { actingLeader, convergedLeader } from './convergence.js'
import { EventQueue } from './event-queue.js'
import { scheduleFaults } from './fault-schedule.js'
import { FORGER_ID, Forger } from './forger.js'
import { type ClientReply, type HostEnv, SimHost } from './host.js'
import { SimNetwork } from './network.js'
import { processEnvironment, SIM_CLUSTER } from './process-environment.js'
import { type RaftFaultKind, RaftFaults } from './raft-faults.js'
import { type RunStats, runEvents } from './run-events.js'
import type { SeedResult } from './seed-campaign.js'

export interface SimOptions {
  readonly seed: number
  /** Agents (3–7 by default, from the seed). */
  readonly nodes?: number
  /** Founding voters (3, or 1 for one seed in eight: a cluster grown from a single founder). */
  readonly genesisVoters?: number
  /** Simulated time with faults, ms. @default 30 000 */
  readonly faultMs?: number
  /** Simulated time allowed to converge after every fault healed, ms. @default 30 000 */
  readonly healMs?: number
  readonly clients?: number
  /** Inject faults (off: a calm run). @default true */
  readonly faults?: boolean
  /** Clock rate spread of the processes (each drifts uniformly within ±this). @default 0.01 */
  readonly clockDrift?: number
  /** Overrides for every core (checker tests make the lease unsafe on purpose). */
  readonly raftInit?: Partial<RaftInit>
  /** Adapter bugs the checker must catch: send a Ready's messages before its fsync. */
  readonly sendBeforeSync?: boolean
}

export interface SimStats extends RunStats {
  writes: { ok: number; fail: number; unknown: number }
  reads: { ok: number; unknown: number }
  configChanges: number
  transfers: number
  messages: { sent: number; dropped: number }
  forged: number
  snapshotsInstalled: number
  unverified: number
  chainVerified: number
}

export type SimResult = SeedResult<SimStats>

/** A run that takes more events than this is stuck in a storm: about 20 times a normal run. */
const MAX_STEPS = 2_000_000

export function runSimulation(options: SimOptions): SimResult {
  const { seed } = options
  const random = mulberry32(seed)
  const queue = new EventQueue()
  const network = new SimNetwork(random)
  const n = options.nodes ?? 3 + (seed % 5)
  const founders = Math.min(n, options.genesisVoters ?? (seed % 8 === 7 ? 1 : 3))
  const faultMs = options.faultMs ?? 30_000
  const healMs = options.healMs ?? 30_000
  const drift = options.clockDrift ?? 0.01
  const fastDisks = seed % 3 === 0
  // Quiet seeds: clients mostly idle, so a node cut off from the leader keeps an up-to-date log and can win votes.
  const quiet = seed % 4 === 1
  const ids = Array.from({ length: n }, (_, i) => `n${i}`)
  const genesis = genesisSnapshot(ids.slice(0, founders))
  const checker = new Checker(SIM_CLUSTER, () => queue.now)
  const stats: SimStats = {
    simulatedMs: 0,
    events: 0,
    leaders: 0,
    maxActingAtOnce: 0,
    writes: { ok: 0, fail: 0, unknown: 0 },
    reads: { ok: 0, unknown: 0 },
    faults: {},
    configChanges: 0,
    transfers: 0,
    messages: { sent: 0, dropped: 0 },
    forged: 0,
    snapshotsInstalled: 0,
    unverified: 0,
    chainVerified: 0,
  }

  const hosts: SimHost[] = []
  const hostById = new Map<NodeId, SimHost>()
  const clients = new Map<string, SimClient>()

  const deliver = (from: string, to: string, run: () => void) => {
    for (const delay of network.deliveries(from, to)) queue.after(delay, run)
  }

  const env: HostEnv = {
    ...processEnvironment({
      queue,
      random,
      genesis,
      drift,
      fastDisks,
      raftInit: options.raftInit,
      send: (m: Message) => deliver(m.from, m.to, () => hostById.get(m.to)?.receive(m)),
    }),
    reply: (from: NodeId, to: string, reply: ClientReply) =>
      deliver(from, to, () => clients.get(to)?.onReply(reply)),
    onApplied: (host, entry, position) => checker.onApplied(host, entry, position),
    onSnapshotRestored: (host, snapshot) => checker.onSnapshotRestored(host, snapshot),
    afterEvent: (host) => {
      stats.events++
      checker.step(hosts, host)
    },
    sendBeforeSync: options.sendBeforeSync === true,
  }

  for (const id of ids) {
    const host = new SimHost(id, env, (random() * 2 - 1) * drift)
    hosts.push(host)
    hostById.set(id, host)
  }

  const clientCount = options.clients ?? 3
  for (let i = 0; i < clientCount; i++) {
    const name = `c${i}`
    const client = new SimClient(
      name,
      {
        queue,
        random,
        hosts: () => ids,
        send: (from, to, request) => deliver(from, to, () => hostById.get(to)?.request(from, request)),
        completed: (op: Op) => {
          if (op.kind === 'write' && op.status === 'ok') checker.onAcknowledged(op)
        },
      },
      {
        timeoutMs: 1500,
        maxAttempts: 30,
        thinkMs: 150,
        idleShare: quiet ? 0.5 : 0.1,
        idleMs: 4000,
        readShare: 0.3,
        stopAt: faultMs,
      },
    )
    clients.set(name, client)
    client.start()
  }

  const forger = new Forger(random, (m) => deliver(FORGER_ID, m.to, () => hostById.get(m.to)?.receive(m)))
  const faults = new RaftFaults({ queue, random, network, processes: hosts, faultMs, leaderBias: 0.6 })
  if (options.faults !== false)
    scheduleFaults({
      queue,
      random,
      faultMs,
      weights: FAULT_WEIGHTS,
      firstMs: [1000, 2000],
      gapMs: [200, 2200],
      counts: stats.faults,
      inject: (kind, duration) => {
        if (kind === 'config') {
          if (changeConfig(random, hosts)) stats.configChanges++
        } else if (kind === 'forge') forger.attack(hosts)
        else faults.inject(kind, duration)
      },
    })

  // Heal: every fault ends, every process runs; then wait for convergence.
  let healed = false
  queue.schedule(faultMs, () => {
    healed = true
    faults.healAll()
  })

  const converged = (): boolean => {
    if (!healed) return false
    if ([...clients.values()].some((c) => c.busy)) return false
    return convergedLeader(hosts) !== undefined
  }

  runEvents({
    queue,
    end: faultMs + healMs,
    maxSteps: MAX_STEPS,
    failed: () => checker.violations.length > 0,
    settled: () => healed && stats.events % 64 === 0 && converged(),
    fail: (message) => checker.violations.push(`t=${queue.now.toFixed(1)}ms ${message}`),
  })
  stats.simulatedMs = Math.round(queue.now)

  const history = [...clients.values()].flatMap((c) => c.history)
  if (checker.violations.length === 0) {
    const leader = actingLeader(hosts)
    const members =
      leader == null ? ids : [...leader.raft.status().config.voters, ...leader.raft.status().config.learners]
    if (leader == null) checker.violations.push('liveness: no acting leader at the end')
    checker.final(hosts, members, history, ![...clients.values()].some((c) => c.busy))
  }

  for (const op of history) {
    if (op.kind === 'write') {
      if (op.status === 'ok') stats.writes.ok++
      else if (op.status === 'fail') stats.writes.fail++
      else stats.writes.unknown++
    } else if (op.status === 'ok') stats.reads.ok++
    else stats.reads.unknown++
  }
  for (const h of hosts) {
    stats.snapshotsInstalled += h.raft.counters.snapshotsInstalled
    stats.unverified += h.raft.counters.unverified
    stats.chainVerified += h.raft.counters.chainVerified
  }
  stats.leaders = checker.raftChecks.leaders
  stats.maxActingAtOnce = checker.raftChecks.maxActing
  stats.messages = { sent: network.sent, dropped: network.dropped }
  stats.forged = forger.sent
  stats.transfers = faults.transfers
  return { seed, ok: checker.violations.length === 0, violations: checker.violations, stats }
}

/** The Raft faults, and two of this simulation's own: the operator's voter changes and the forger. */
type FaultKind = RaftFaultKind | 'config' | 'forge'

const FAULT_WEIGHTS: ReadonlyArray<readonly [FaultKind, number]> = [
  ['partition', 3],
  ['one-way', 2],
  ['non-transitive', 2],
  ['isolate-leader', 3],
  ['leader-link', 3],
  ['loss', 2],
  ['duplicate', 1],
  ['reorder', 2],
  ['pause', 3],
  ['crash', 3],
  ['power-loss', 3],
  ['config', 4],
  ['transfer', 1],
  ['forge', 1],
]

/** The operator: one single-server change through the current leader (add, promote, demote, remove). */
function changeConfig(random: Random, hosts: readonly SimHost[]): boolean {
  const leader = hosts.find((h) => h.alive && h.raft.status().role === 'leader')
  if (leader === undefined) return false
  const { voters, learners } = leader.raft.status().config
  const outsiders = hosts.map((h) => h.id).filter((id) => !voters.includes(id) && !learners.includes(id))
  const choices: Array<() => void> = []
  const propose = (op: 'add-learner' | 'add-voter' | 'demote' | 'remove', node: NodeId) => () =>
    leader.raft.proposeConfigChange({ op, node })
  if (outsiders.length > 0) choices.push(propose('add-learner', pick(random, outsiders)))
  if (learners.length > 0 && voters.length < 5) choices.push(propose('add-voter', pick(random, learners)))
  if (voters.length >= 3) {
    choices.push(propose('remove', pick(random, voters)))
    choices.push(propose('demote', pick(random, voters)))
  }
  if (learners.length > 0) choices.push(propose('remove', pick(random, learners)))
  if (choices.length === 0) return false
  const choice = pick(random, choices)
  return leader.act(() => choice())
}
