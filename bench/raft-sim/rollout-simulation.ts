/**
 * The rollout simulation (issue 18: "max-unavailable never exceeded across the
 * whole cluster"; "the rollout engine and placement run from the committed log,
 * so a new leader resumes a rollout exactly where the log says; no node is
 * switched twice or skipped"). One seeded run:
 *
 * - 3 or 5 manager processes (rollout-host.ts: the Raft core, the REAL
 *   ClusterMachine, and the manager's decision loop with the real rollout
 *   engine, startRollout and controlRollout) on the simulated network, disks and
 *   drifting clocks the plain Raft simulation (simulation.ts) runs on too
 *   (network.ts, raft-process.ts, process-environment.ts);
 * - 4–8 app nodes (rollout-nodes.ts) that follow the state some voter applied,
 *   late, switch to what it targets for them (taking a random time, sometimes
 *   failing), and announce their runtime to every process by gossip, late;
 * - an operator that starts rolling rollouts (app@2, app@3, app@4, one after
 *   the other) with maxUnavailable 1 or 2 through client commands with request
 *   ids, and sometimes pauses and resumes one;
 * - faults for 30 s on the processes (raft-faults.ts: leader crashes, power
 *   losses, pauses, partitions of every shape, loss, duplication, reordering,
 *   leadership transfers) and, one seed in three, on the app nodes (crashes,
 *   cuts); then everything heals and every rollout must finish.
 *
 * rollout-checker.ts says what is checked. Everything random comes from one
 * seeded stream: a seed replays exactly.
 */
import { ClusterMachine, encodeChange } from '../../src/manager/consensus/cluster-machine.js'
import { genesisSnapshot, type Message, type NodeId } from '../../src/manager/raft/index.js'
import type { ClusterState } from '../../src/manager/record.js'
import { targetOf } from '../../src/manager/record.js'
import { isFinished } from '../../src/manager/rollout-engine.js'
import { intBetween, mulberry32, pick, type Random } from '../random.js'
import { actingLeader, convergedLeader } from './convergence.js'
import { EventQueue } from './event-queue.js'
import { scheduleFaults } from './fault-schedule.js'
import { SimNetwork } from './network.js'
import { processEnvironment, SIM_CLUSTER } from './process-environment.js'
import { type RaftFaultKind, RaftFaults } from './raft-faults.js'
import { RolloutChecker, type RolloutCheckStats } from './rollout-checker.js'
import {
  type OperatorCommand,
  type OperatorReply,
  type OperatorRequest,
  RolloutHost,
  type RolloutHostEnv,
} from './rollout-host.js'
import { AppNode, type Report } from './rollout-nodes.js'
import { type RunStats, runEvents } from './run-events.js'
import type { SeedResult } from './seed-campaign.js'

export interface RolloutSimOptions {
  readonly seed: number
  /** Manager processes, all voters (3 or 5 by default, from the seed). */
  readonly hosts?: number
  /** App nodes the rollouts move (4–8 by default). */
  readonly apps?: number
  /** maxUnavailable of every rollout (1 or 2 by default). */
  readonly maxUnavailable?: number
  /** Rollouts the operator starts, one after the other (while faults run). @default 3 */
  readonly rollouts?: number
  /** Simulated time with faults, ms. @default 30 000 */
  readonly faultMs?: number
  /** Simulated time allowed to finish every rollout after every fault healed, ms. @default 60 000 */
  readonly healMs?: number
  /** Inject faults. @default true */
  readonly faults?: boolean
  /** Crash and cut app nodes too (default: one seed in three). */
  readonly appFaults?: boolean
  /** Share of switches that fail (default: 5 % one seed in three, else none). */
  readonly failShare?: number
  /**
   * Deliberate bugs the checker must catch: a leader that lets one node more
   * than maxUnavailable go, or app nodes that adopt any state that arrives
   * (an older one too).
   */
  readonly mutation?: 'over-admit' | 'unordered-follow'
  /** Called with a line for each decision, verdict and switch (replaying a seed to see what broke). */
  readonly trace?: (line: string) => void
}

/** What every run reports, the checker's counts (RolloutCheckStats), and this simulation's own. */
export interface RolloutSimStats extends RunStats, RolloutCheckStats {
  hosts: number
  apps: number
  maxUnavailable: number
  rolloutsStarted: number
  rolloutsFinished: number
  pauses: number
  proposed: number
  conflicts: number
  overwritten: number
}

export type RolloutSimResult = SeedResult<RolloutSimStats>

const MAX_STEPS = 3_000_000
const OPERATOR = 'operator'

/** The genesis every process starts from: the cluster runs app@1 everywhere. */
function genesisWith(voters: readonly string[], version: string) {
  const machine = new ClusterMachine()
  const state = machine.state()
  state.defaultTarget = version
  const change = machine.diff(state, null)!
  machine.apply({ kind: 'command', index: 0, term: 0, request: null, data: encodeChange(change) })
  return { ...genesisSnapshot(voters), data: machine.encode() }
}

export function runRolloutSimulation(options: RolloutSimOptions): RolloutSimResult {
  const { seed } = options
  const random = mulberry32(seed ^ 0x5eed_0f)
  const queue = new EventQueue()
  const network = new SimNetwork(random)
  const n = options.hosts ?? pick(random, [3, 3, 5])
  const m = options.apps ?? intBetween(random, 4, 8)
  const k = options.maxUnavailable ?? pick(random, [1, 2])
  const rollouts = options.rollouts ?? 3
  const faultMs = options.faultMs ?? 30_000
  const healMs = options.healMs ?? 60_000
  const appFaults = options.appFaults ?? seed % 3 === 2
  const failShare = options.failShare ?? (seed % 3 === 1 ? 0.05 : 0)
  const minReadyMs = pick(random, [0, 300, 1000])
  const drift = 0.01
  const fastDisks = seed % 3 === 0
  const ids = Array.from({ length: n }, (_, i) => `m${i}`)
  const appIds = Array.from({ length: m }, (_, i) => `a${i}`)
  const genesis = genesisWith(ids, 'app@1')

  const trace = options.trace
  const t = () => `t=${queue.now.toFixed(1)}`
  const hosts: RolloutHost[] = []
  const hostById = new Map<NodeId, RolloutHost>()
  const apps = new Map<string, AppNode>()
  const checker = new RolloutChecker(SIM_CLUSTER, () => queue.now, k, apps)
  const stats: RolloutSimStats = {
    simulatedMs: 0,
    events: 0,
    hosts: n,
    apps: m,
    maxUnavailable: k,
    leaders: 0,
    maxActingAtOnce: 0,
    faults: {},
    rolloutsStarted: 0,
    rolloutsFinished: 0,
    pauses: 0,
    // Filled in at the end; here so that they keep their place among the stats.
    ...checker.stats,
    proposed: 0,
    conflicts: 0,
    overwritten: 0,
  }

  const deliver = (from: string, to: string, run: () => void) => {
    for (const delay of network.deliveries(from, to)) queue.after(delay, run)
  }
  const operator = new Operator(queue, random, ids, (to, request) =>
    deliver(OPERATOR, to, () => hostById.get(to)?.request(OPERATOR, request)),
  )

  const env: RolloutHostEnv = {
    ...processEnvironment({
      queue,
      random,
      genesis,
      drift,
      fastDisks,
      send: (msg: Message) => deliver(msg.from, msg.to, () => hostById.get(msg.to)?.receive(msg)),
    }),
    loopMs: 100,
    lostAfterMs: 5000,
    suspectMs: 1000,
    deadMs: 3000,
    overAdmit: options.mutation === 'over-admit',
    reply: (from: NodeId, to: string, reply: OperatorReply) =>
      deliver(from, to, () => operator.onReply(reply)),
    onApplied: (_host, entry) => checker.onApplied(_host, entry),
    onSnapshotRestored: (host, snapshot) => checker.onSnapshotRestored(host, snapshot),
    onDecided: (host, before, after, at) => {
      if (trace != null) {
        const views = host.view
          .members()
          .map((mm) => `${mm.id}:${mm.state[0]}`)
          .join(' ')
        trace(
          `${t()} ${host.id} proposes ${at.index}@${at.term}: ${after?.id ?? '-'} ${after?.state ?? ''} ${JSON.stringify(after?.progress ?? {})} | view ${views}`,
        )
      }
      checker.onDecided(host, before, after, at)
    },
    onDeclaredDead: (host, node) => trace?.(`${t()} ${host.id} declares ${node} dead`),
    join: (host, done) => {
      const peers = hosts.filter((h) => h !== host && h.alive && h.view.size > 0)
      if (peers.length === 0) return
      const peer = pick(random, peers)
      // A round trip: the request, then the peer's whole view back.
      const there = network.deliveries(host.id, peer.id)
      if (there.length === 0) return
      queue.after(there[0]!, () => {
        if (!peer.alive) return
        const view = peer.view.copy()
        const back = network.deliveries(peer.id, host.id)
        if (back.length > 0) queue.after(back[0]!, () => done(view))
      })
    },
    afterEvent: (host) => {
      stats.events++
      checker.step(hosts, host)
    },
  }
  for (const id of ids) {
    const host = new RolloutHost(id, env, (random() * 2 - 1) * drift, (random() * 2 - 1) * 200)
    hosts.push(host)
    hostById.set(id, host)
  }

  for (const id of appIds) {
    const app = new AppNode(
      id,
      {
        queue,
        random,
        failShare,
        unordered: options.mutation === 'unordered-follow',
        fetchState: (node, onState) => {
          const up = hosts.filter((h) => h.alive)
          if (up.length === 0) return
          const host = pick(random, up)
          const index = host.machine.lastIndex
          const state = host.machine.state()
          const delays = network.deliveries(host.id, node)
          if (delays.length > 0) queue.after(delays[0]! + random() * 100, () => onState(index, state))
        },
        gossip: (report: Report) => {
          // SWIM spreads it in a few rounds: each process hears it a little later.
          for (const host of hosts)
            for (const delay of network.deliveries(report.node, host.id))
              queue.after(delay + random() * 300, () => host.hear(report))
        },
        changed: (app) => {
          stats.events++
          if (trace != null)
            trace(
              `${t()} ${app.id} ${app.up ? (app.reachable ? 'up' : 'cut') : 'down'} ${app.active}→${app.target} ${app.phase}${app.current == null ? '' : ` (${app.current.cause} ${app.current.rollout ?? ''})`}`,
            )
          checker.fleet()
        },
        violation: (message) => checker.fail(message),
      },
      'app@1',
    )
    apps.set(id, app)
    app.start()
  }

  // The operator's plan: rollouts one after the other, sometimes a pause and a resume.
  const acknowledged: Array<{ distribution: string; rollout: string }> = []
  let scriptBusy = false
  const nextRollout = () => {
    if (scriptBusy || operator.busy || stats.rolloutsStarted >= rollouts || queue.now > faultMs - 3000) return
    const last = acknowledged.at(-1)
    const latest = checker.latest
    if (last != null && (latest == null || latest.id !== last.rollout || !isFinished(latest))) return
    scriptBusy = true
    queue.after(300 + random() * 1200, () => {
      const distribution = `app@${stats.rolloutsStarted + 2}`
      stats.rolloutsStarted++
      const command: OperatorCommand = {
        op: 'rollout',
        distribution,
        maxUnavailable: k,
        minReadyMs,
        failureThreshold: m + 1,
      }
      operator.submit(command, (reply) => {
        if (reply.kind === 'ok') {
          acknowledged.push({ distribution, rollout: reply.rollout })
          if (random() < 0.35) {
            const id = reply.rollout
            queue.after(1000 + random() * 4000, () => pauseAndResume(id))
            return
          }
        }
        scriptBusy = false
      })
    })
  }
  const pauseAndResume = (id: string) => {
    operator.submit({ op: 'pause', id }, (reply) => {
      if (reply.kind !== 'ok') {
        scriptBusy = false
        return
      }
      stats.pauses++
      queue.after(500 + random() * 2500, () =>
        operator.submit({ op: 'resume', id }, () => {
          scriptBusy = false
        }),
      )
    })
  }
  const script = () => {
    nextRollout()
    queue.after(200, script)
  }
  queue.after(1000 + random() * 1500, script)

  const faultTrace = trace == null ? null : (line: string) => trace(`${t()} ${line}`)
  // Leaders are the favourite victims: a rollout must resume where the log says under a new one.
  const faults = new RaftFaults({
    queue,
    random,
    network,
    processes: hosts,
    faultMs,
    leaderBias: 0.7,
    trace: faultTrace,
  })
  if (options.faults !== false)
    injectFaults({
      faults,
      queue,
      random,
      apps: [...apps.values()],
      appFaults,
      stats,
      faultMs,
      trace: faultTrace,
    })

  let healed = false
  queue.schedule(faultMs, () => {
    healed = true
    faults.healAll()
    for (const app of apps.values()) app.healAll()
  })

  const converged = (): boolean => {
    if (!healed || scriptBusy || operator.busy) return false
    // Every process is a voter (no configuration changes here).
    const leader = convergedLeader(hosts)
    if (leader === undefined) return false
    const state = leader.machine.state()
    const latest = state.rollouts[0]
    if (latest != null && !isFinished(latest)) return false
    for (const app of apps.values())
      if (!app.reachable || app.midSwitch || app.target !== targetOf(state, app.id)) return false
    return true
  }

  let lastConvergeCheck = 0
  runEvents({
    queue,
    end: faultMs + healMs,
    maxSteps: MAX_STEPS,
    failed: () => checker.violations.length > 0,
    settled: () => {
      if (!healed || queue.now - lastConvergeCheck < 100) return false
      lastConvergeCheck = queue.now
      return converged()
    },
    fail: (message) => checker.fail(message),
  })
  stats.simulatedMs = Math.round(queue.now)

  if (checker.violations.length === 0) {
    const leader = actingLeader(hosts)
    if (leader == null) checker.fail('liveness: no acting leader at the end')
    else {
      const state: ClusterState = leader.machine.state()
      checker.final(state, acknowledged, stats.rolloutsStarted)
      stats.rolloutsFinished = state.rollouts.filter((r) => r.state === 'done').length
    }
  }
  Object.assign(stats, {
    leaders: checker.raftChecks.leaders,
    maxActingAtOnce: checker.raftChecks.maxActing,
    ...checker.stats,
  })
  for (const h of hosts) {
    stats.proposed += h.counters.proposed
    stats.conflicts += h.counters.conflicts
    stats.overwritten += h.counters.overwritten
  }
  return { seed, ok: checker.violations.length === 0, violations: checker.violations, stats }
}

/**
 * The operator's client: one command at a time, with one request id for every
 * attempt (a retry that reaches the log twice applies once); it follows
 * redirects, retries on another process after a timeout or a "retry", and stops
 * on an answer or a refusal.
 */
class Operator {
  private seq = 0
  private attemptId = 0
  private current: {
    command: OperatorCommand
    seq: number
    id: number
    done: (reply: OperatorReply) => void
  } | null = null

  constructor(
    private readonly queue: EventQueue,
    private readonly random: Random,
    private readonly hosts: readonly NodeId[],
    private readonly send: (to: NodeId, request: OperatorRequest) => void,
  ) {}

  get busy(): boolean {
    return this.current != null
  }

  submit(command: OperatorCommand, done: (reply: OperatorReply) => void): void {
    this.current = { command, seq: ++this.seq, id: 0, done }
    this.attempt(null)
  }

  onReply(reply: OperatorReply): void {
    const current = this.current
    if (current == null || reply.id !== current.id) return
    switch (reply.kind) {
      case 'ok':
      case 'refused':
        this.current = null
        current.done(reply)
        return
      case 'redirect':
        current.id = -1
        this.queue.after(reply.leader != null ? 1 + this.random() * 5 : 50 + this.random() * 100, () => {
          if (this.current === current && current.id === -1) this.attempt(reply.leader)
        })
        return
      case 'retry':
        current.id = -1
        this.queue.after(5 + this.random() * 20, () => {
          if (this.current === current && current.id === -1) this.attempt(null)
        })
        return
    }
  }

  private attempt(target: NodeId | null): void {
    const current = this.current!
    const id = ++this.attemptId
    current.id = id
    const to = target ?? pick(this.random, this.hosts)
    this.send(to, { id, request: { client: OPERATOR, seq: current.seq }, command: current.command })
    this.queue.after(1500, () => {
      if (this.current === current && current.id === id) this.attempt(null)
    })
  }
}

interface FaultContext {
  readonly faults: RaftFaults<RolloutHost>
  readonly queue: EventQueue
  readonly random: Random
  readonly apps: readonly AppNode[]
  readonly appFaults: boolean
  readonly stats: RolloutSimStats
  readonly faultMs: number
  readonly trace: ((line: string) => void) | null
}

/** The Raft faults on the manager processes, and (with appFaults) crashes and cuts of app nodes. */
type FaultKind = RaftFaultKind | 'app-crash' | 'app-cut'

const FAULT_WEIGHTS: ReadonlyArray<readonly [FaultKind, number]> = [
  ['partition', 3],
  ['one-way', 2],
  ['non-transitive', 2],
  ['isolate-leader', 3],
  ['leader-link', 2],
  ['loss', 2],
  ['duplicate', 1],
  ['reorder', 2],
  ['pause', 4],
  ['crash', 4],
  ['power-loss', 2],
  ['transfer', 2],
  ['app-crash', 3],
  ['app-cut', 3],
]

function injectFaults(ctx: FaultContext): void {
  const { faults, queue, random, apps } = ctx
  // An app node in the middle of its switch is the interesting victim.
  const appVictim = (): AppNode => {
    const switching = apps.filter((a) => a.midSwitch)
    return switching.length > 0 && random() < 0.6 ? pick(random, switching) : pick(random, apps)
  }
  scheduleFaults({
    queue,
    random,
    faultMs: ctx.faultMs,
    weights: FAULT_WEIGHTS.filter(([kind]) => ctx.appFaults || !kind.startsWith('app-')),
    firstMs: [1500, 3000],
    gapMs: [200, 2000],
    counts: ctx.stats.faults,
    inject: (kind, duration) => {
      if (ctx.trace != null) {
        const l = faults.leader()
        ctx.trace(`fault ${kind} (leader ${l == null ? 'none' : `${l.id} term ${l.raft.status().term}`})`)
      }
      if (kind === 'app-crash') {
        const victim = appVictim()
        victim.crash()
        queue.schedule(faults.until(100 + random() * 6000), () => victim.restart())
      } else if (kind === 'app-cut') {
        const victim = appVictim()
        victim.isolate()
        queue.schedule(faults.until(300 + random() * 6000), () => victim.reconnect())
      } else faults.inject(kind, duration)
    },
  })
}
