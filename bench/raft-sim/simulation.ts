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
import { intBetween, mulberry32, pick, type Random } from '../random.js'
import { Checker } from './checker.js'
import { type Op, SimClient } from './clients.js'
import { EventQueue } from './event-queue.js'
import { FORGER_ID, Forger } from './forger.js'
import { type ClientReply, type HostEnv, SimHost } from './host.js'
import { CALM, type NetworkConditions, SimNetwork } from './network.js'

export const SIM_CLUSTER = 'sim-cluster'

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

export interface SimStats {
  simulatedMs: number
  events: number
  leaders: number
  maxActingAtOnce: number
  writes: { ok: number; fail: number; unknown: number }
  reads: { ok: number; unknown: number }
  faults: Record<string, number>
  configChanges: number
  transfers: number
  messages: { sent: number; dropped: number }
  forged: number
  snapshotsInstalled: number
  unverified: number
  chainVerified: number
}

export interface SimResult {
  readonly seed: number
  readonly ok: boolean
  readonly violations: readonly string[]
  readonly stats: SimStats
}

const TICK_MS = 100
/** A run that takes more events than this is stuck in a storm: about 20 times a normal run. */
const MAX_STEPS = 2_000_000
const ELECTION_TICKS = 10

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
  const sendRaft = (m: Message) => deliver(m.from, m.to, () => hostById.get(m.to)?.receive(m))

  const env: HostEnv = {
    queue,
    cluster: SIM_CLUSTER,
    genesis,
    raftInit: {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
      maxClockDrift: drift,
      snapshotThreshold: 40,
      maxEntriesPerMessage: 16,
      maxInflight: 8,
      ...options.raftInit,
    },
    tickMs: TICK_MS,
    random,
    send: sendRaft,
    reply: (from: NodeId, to: string, reply: ClientReply) =>
      deliver(from, to, () => clients.get(to)?.onReply(reply)),
    // Disks differ by seed: fast (NVMe, where races between messages are tightest) or slow with long tails.
    fsyncDelay: fastDisks
      ? () => 0.05 + random() * 0.5
      : () => (random() < 0.3 ? 20 + random() * 180 : 1 + random() * 9),
    compactEvery: 60,
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
  if (options.faults !== false) scheduleFaults({ queue, random, network, hosts, forger, stats, faultMs })

  // Heal: every fault ends, every process runs; then wait for convergence.
  let healed = false
  queue.schedule(faultMs, () => {
    healed = true
    network.healAll()
    for (const host of hosts) {
      host.resume()
      host.restart()
    }
  })

  const actingLeader = (): SimHost | undefined => hosts.find((h) => h.alive && h.raft.isActingLeader())
  const converged = (): boolean => {
    if (!healed) return false
    if ([...clients.values()].some((c) => c.busy)) return false
    const leader = actingLeader()
    if (leader === undefined) return false
    const s = leader.raft.status()
    if (s.commit !== s.lastIndex) return false
    for (const id of [...s.config.voters, ...s.config.learners]) {
      const h = hostById.get(id)!
      if (!h.alive || h.machine.lastIndex !== s.commit) return false
    }
    return true
  }

  const end = faultMs + healMs
  let steps = 0
  try {
    for (;;) {
      if (!queue.step(end)) break
      if (checker.violations.length > 0) break
      if (++steps > MAX_STEPS) {
        checker.violations.push(
          `t=${queue.now.toFixed(1)}ms liveness: more than ${MAX_STEPS} events (a message storm?)`,
        )
        break
      }
      if (healed && stats.events % 64 === 0 && converged()) break
    }
  } catch (err) {
    checker.violations.push(`t=${queue.now.toFixed(1)}ms exception: ${(err as Error).stack ?? err}`)
  }
  stats.simulatedMs = Math.round(queue.now)

  const history = [...clients.values()].flatMap((c) => c.history)
  if (checker.violations.length === 0) {
    const leader = actingLeader()
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
  stats.leaders = checker.leadersSeen
  stats.maxActingAtOnce = checker.maxActing
  stats.messages = { sent: network.sent, dropped: network.dropped }
  stats.forged = forger.sent
  return { seed, ok: checker.violations.length === 0, violations: checker.violations, stats }
}

interface FaultContext {
  readonly queue: EventQueue
  readonly random: Random
  readonly network: SimNetwork
  readonly hosts: readonly SimHost[]
  readonly forger: Forger
  readonly stats: SimStats
  readonly faultMs: number
}

type FaultKind =
  | 'partition'
  | 'one-way'
  | 'non-transitive'
  | 'isolate-leader'
  | 'leader-link'
  | 'loss'
  | 'duplicate'
  | 'reorder'
  | 'pause'
  | 'crash'
  | 'power-loss'
  | 'config'
  | 'transfer'
  | 'forge'

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

function scheduleFaults(ctx: FaultContext): void {
  const { queue, random, network, hosts, stats, faultMs } = ctx
  const total = FAULT_WEIGHTS.reduce((s, [, w]) => s + w, 0)
  const conditionsActive: Partial<Record<keyof NetworkConditions, number>> = {}

  const leaderOrAny = (): SimHost => {
    const leader = hosts.find((h) => h.alive && h.raft.status().role === 'leader')
    return leader !== undefined && random() < 0.6 ? leader : pick(random, hosts)
  }
  const until = (ms: number) => Math.min(queue.now + ms, faultMs)
  const cutFor = (pairs: Array<readonly [string, string]>, ms: number) => {
    for (const [a, b] of pairs) network.cut(a, b)
    queue.schedule(until(ms), () => {
      for (const [a, b] of pairs) network.heal(a, b)
    })
  }
  const condition = (key: keyof NetworkConditions, value: number, ms: number) => {
    network.conditions[key] = value
    conditionsActive[key] = (conditionsActive[key] ?? 0) + 1
    queue.schedule(until(ms), () => {
      conditionsActive[key] = (conditionsActive[key] ?? 1) - 1
      if (conditionsActive[key] === 0) network.conditions[key] = CALM[key]
    })
  }
  const ids = hosts.map((h) => h.id)

  const inject = (kind: FaultKind) => {
    stats.faults[kind] = (stats.faults[kind] ?? 0) + 1
    const duration = 300 + random() * 5000
    switch (kind) {
      case 'partition': {
        const side = new Set(ids.filter(() => random() < 0.5))
        const pairs: Array<readonly [string, string]> = []
        for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) pairs.push([a, b])
        cutFor(pairs, duration)
        return
      }
      case 'one-way': {
        const pairs: Array<readonly [string, string]> = []
        for (const a of ids) for (const b of ids) if (a !== b && random() < 0.3) pairs.push([a, b])
        cutFor(pairs, duration)
        return
      }
      case 'non-transitive': {
        const a = pick(random, ids)
        const b = pick(
          random,
          ids.filter((x) => x !== a),
        )
        cutFor(
          [
            [a, b],
            [b, a],
          ],
          duration,
        )
        return
      }
      case 'isolate-leader': {
        const victim = leaderOrAny().id
        const way = random()
        const pairs: Array<readonly [string, string]> = []
        for (const other of ids) {
          if (other === victim) continue
          if (way < 0.6 || way < 0.8) pairs.push([victim, other])
          if (way < 0.6 || way >= 0.8) pairs.push([other, victim])
        }
        cutFor(pairs, duration)
        return
      }
      case 'leader-link': {
        // One follower loses the leader but keeps everyone else: it will campaign, and the
        // others' stickiness (and the leader's lease) are what stands in its way.
        const leader = hosts.find((h) => h.alive && h.raft.status().role === 'leader')
        if (leader === undefined) return
        const other = pick(
          random,
          ids.filter((id) => id !== leader.id),
        )
        const way = random()
        const pairs: Array<readonly [string, string]> = []
        if (way < 0.7) pairs.push([leader.id, other])
        if (way >= 0.4) pairs.push([other, leader.id])
        cutFor(pairs, duration)
        return
      }
      case 'loss':
        condition('loss', 0.05 + random() * 0.35, duration)
        return
      case 'duplicate':
        condition('duplicate', 0.05 + random() * 0.25, duration)
        return
      case 'reorder':
        condition('reorder', 0.1 + random() * 0.3, duration)
        condition('reorderDelayMax', 50 + random() * 400, duration)
        return
      case 'pause': {
        const victim = leaderOrAny()
        victim.pause()
        queue.schedule(until(100 + random() * 4000), () => victim.resume())
        return
      }
      case 'crash': {
        const victim = leaderOrAny()
        victim.crash(intBetween(random, 0, victim.disk.unsynced))
        queue.schedule(until(50 + random() * 4000), () => victim.restart())
        return
      }
      case 'power-loss': {
        // Several processes die at once (a rack loses power): what they had not synced is gone on all of them.
        const everyone = random() < 0.3
        const victims = hosts.filter(() => everyone || random() < 0.6)
        const back = 50 + random() * 3000
        for (const victim of victims) {
          victim.crash(intBetween(random, 0, victim.disk.unsynced))
          queue.schedule(until(back + random() * 200), () => victim.restart())
        }
        return
      }
      case 'config':
        if (changeConfig(ctx)) stats.configChanges++
        return
      case 'transfer': {
        const leader = hosts.find((h) => h.alive && h.raft.status().role === 'leader')
        if (leader === undefined) return
        const voters = leader.raft.status().config.voters.filter((v) => v !== leader.id)
        if (voters.length === 0) return
        if (leader.act((r) => r.transferLeadership(pick(random, voters)))) stats.transfers++
        return
      }
      case 'forge':
        ctx.forger.attack(hosts)
        return
    }
  }

  const next = () => {
    if (queue.now >= faultMs) return
    let r = random() * total
    let kind: FaultKind = 'partition'
    for (const [k, w] of FAULT_WEIGHTS) {
      r -= w
      if (r < 0) {
        kind = k
        break
      }
    }
    inject(kind)
    queue.after(200 + random() * 2000, next)
  }
  queue.after(1000 + random() * 1000, next)
}

/** The operator: one single-server change through the current leader (add, promote, demote, remove). */
function changeConfig(ctx: FaultContext): boolean {
  const { random, hosts } = ctx
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
