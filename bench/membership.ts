/**
 * Membership benchmark: N in-process agents on 127.0.0.1 (preset `lan`) spread over
 * W event loops (worker threads; W = 1 keeps them all on the main thread), timed
 * through convergence, a late join and a crash, plus idle wire traffic; then memory
 * and idle CPU of real agent processes.
 */
import { availableParallelism } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemberState } from '../src/membership/index.js'
import type { TimerPreset } from '../src/shared/presets.js'
import type { CellAgent, CellKind, Delay, Stats, TrafficSample, ViewSample } from './membership-cell.js'
import { Fleet, type FleetMode } from './membership-fleet.js'
import { describe, render, STARVED_MS, summary, targets } from './membership-report.js'
import { measureProcesses, type ProcessResult } from './processes.js'
import { hostCpu, machine, milestones, quietHost, round, source } from './util.js'

/** One event loop per core: the main thread only coordinates. */
export const DEFAULT_WORKERS = availableParallelism()
/** After convergence, at least this long, then until every agent is connected to every other (probes connect lazily). */
const SETTLE_S = 3
const SETTLE_CAP_S = 30
/** Longest wait for a quiet machine before one part, and over the whole run. */
const QUIET_WAIT_S = 60
const QUIET_WAIT_BUDGET_S = 150
const IDLE_WINDOW_S = 10
const SAMPLE_LIMIT = 10
/** Counting every view sorts it: poll convergence a little less often than the other phases. */
const CONVERGE_POLL_MS = 50
/** Sizes the targets need always run; a larger one is skipped once a smaller one could not converge at all. */
const ALWAYS_RUN_UP_TO = 50

export type Phase = 'converge' | 'idle' | 'join' | 'kill'

/** A suspect/dead event about a member that was not the one killed (or before it was): a false positive. */
export interface Accusation {
  phase: Phase
  event: 'suspect' | 'dead'
  observer: number
  target: number
  /** ms since the phase began. */
  atMs: number
}

export interface Skipped {
  n: number
  reason: string
}

export interface InProcessSetup {
  mode: FleetMode
  /** Event loops the agents ran on (worker threads, or 1: the main thread). */
  workers: number
}

export interface SizeResult {
  n: number
  /** Whole agents, or members running only the libp2p node and Membership (membership-cell.ts). */
  kind: CellKind
  /** Membership timers the members ran. */
  preset: TimerPreset
  /** ceil(N / workers): agents sharing the busiest event loop. */
  agentsPerLoop: number
  /** Until the N-1 concurrent `Agent.start` calls (after agent 0's) resolved; with a rolling start, until the last batch's did. */
  startMs: number | null
  /**
   * A rolling start (`rollingBatch`): agents start `batch` at a time, each batch once every
   * earlier agent lists all started ones alive (or after a 60 s cap); `completeViewsMs` then
   * counts from the last batch's start. null: all N-1 at once.
   */
  rolling: { batch: number; batches: number; batchesComplete: number; totalMs: number } | null
  completeViewsMs: number | null
  /** Median over agents of the first time its own view listed N alive. */
  medianAgentCompleteMs: number | null
  joinSeenByAllMs: number | null
  joinerCompleteMs: number | null
  killFirstSuspectMs: number | null
  killSuspectedByAllMs: number | null
  killDeadByAllMs: number | null
  idle: {
    /** Seconds from convergence to the window: at least SETTLE_S, then until the full mesh (capped). */
    settleS: number
    /** Whether every agent was connected to every other when the window began. */
    fullMesh: boolean
    windowS: number
    sentBytesPerNodePerSec: number
    receivedBytesPerNodePerSec: number
    meanConnections: number
    processRssMB: number
    rssPerAgentMB: number
    cpuPercentOfOneCorePerAgent: number
    /** Busy share of each agents' event loop over the window (event-loop utilisation). */
    loopUtilizationPercent: number[]
    /** Cores' worth of CPU other processes on the host used over the window: above ~0.1 the figures are disturbed. */
    foreignCores: number | null
  } | null
  /** Host CPU over this size's whole run: all of it, and what other processes used. */
  hostCpu: { busyCores: number; foreignCores: number } | null
  falsePositives: { suspect: number; dead: number; samples: Accusation[] }
  /** Membership stats summed over agents (health: max) when views converged, after the idle window, at the end. */
  stats: Partial<Record<'converged' | 'idle' | 'end', Stats>>
  /** Event-loop delay per phase, the worst loop's. */
  loopDelay: Partial<Record<Phase, Delay>>
  /** Phases in which the worst loop was later (p99) than a probe timeout: their figures measure CPU starvation. */
  starvedPhases: Phase[]
  notes: string[]
}

export interface MembershipOptions {
  sizes: number[]
  processes: boolean
  workers: number
  /** Sizes at or above `from` start `batch` agents at a time (a rolling start) rather than all at once. */
  rolling?: { from: number; batch: number }
  /** What each member runs (default: whole agents). */
  kind?: CellKind
  /** Membership timers (default lan). */
  preset?: TimerPreset
}

export async function runMembership(options: MembershipOptions) {
  const began = Date.now()
  const host = machine()
  const setup: InProcessSetup = {
    mode: options.workers <= 1 ? 'single-loop' : 'worker-threads',
    workers: Math.max(1, options.workers),
  }
  const results: SizeResult[] = []
  const skipped: Skipped[] = []
  const quietWaits: Array<{ before: string; waitedS: number; quiet: boolean }> = []
  /** Waits for other processes to go quiet before each part, within a budget for the whole run. */
  let waitBudgetS = QUIET_WAIT_BUDGET_S
  const waitForQuiet = async (before: string) => {
    const wait = await quietHost({ maxWaitS: Math.min(QUIET_WAIT_S, Math.max(2, waitBudgetS)) })
    waitBudgetS -= wait.waitedS
    quietWaits.push({ before, ...wait })
    if (wait.waitedS > 2 || !wait.quiet)
      console.error(
        `membership: waited ${wait.waitedS} s for other processes to go quiet before ${before}` +
          (wait.quiet ? '' : ' (they did not: measuring anyway)'),
      )
  }
  for (const n of options.sizes) {
    const failed = n > ALWAYS_RUN_UP_TO && results.find((r) => r.n < n && r.completeViewsMs == null)
    if (failed) {
      const reason =
        `skipped: at N = ${failed.n} views did not even complete within 60 s on this machine's event loops ` +
        `(${failed.loopDelay.converge?.p99Ms} ms late, p99): a larger N would only measure this machine`
      skipped.push({ n, reason })
      console.error(`membership: N = ${n} ${reason}`)
      continue
    }
    await waitForQuiet(`N = ${n}`)
    const kind = options.kind ?? 'agent'
    console.error(
      `membership: N = ${n} (${kind === 'agent' ? 'whole agents' : 'membership only'}) on ${describe(setup)} ...`,
    )
    results.push(
      await measureSize(n, {
        workers: setup.workers,
        rollingBatch: options.rolling != null && n >= options.rolling.from ? options.rolling.batch : null,
        kind,
        preset: options.preset ?? 'lan',
      }),
    )
    console.error(`membership: N = ${n} done (${summary(results.at(-1)!)})`)
  }
  let processes: ProcessResult | null = null
  if (options.processes) {
    await waitForQuiet('agent processes')
    console.error('membership: 5 agent processes ...')
    processes = await measureProcesses(5)
  }
  const report = {
    suite: 'membership',
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: host,
    source: source(),
    preset: options.preset ?? 'lan',
    inProcess: setup,
    notes: [
      setup.mode === 'single-loop'
        ? "In-process, single loop: all N agents share the main thread's event loop (one core), so each gets ~1/N of a core."
        : `In-process, worker threads: agent i runs on worker thread i mod ${setup.workers}, each worker an event loop ` +
          `on its own core (~${setup.workers}/N of a core per agent); the main thread only starts, stops and polls agents by messages.`,
      'Times are from the moment the N-1 agents are started (agent 0 first), polled and stamped on the main thread ' +
        "(an answer from a busy loop counts late). loopDelay is the worst agents' loop: how late timers fired.",
      'Each part starts after a 2 s stretch with other processes using < 0.1 core (quietWaits; at most 60 s per part, 150 s per run). ' +
        'hostCpu.foreignCores and idle.foreignCores: CPU other processes used meanwhile (from /proc/stat); ' +
        'anything above ~0.1 core means the figures were measured on a shared, busy machine.',
      `idle: a ${IDLE_WINDOW_S} s window at steady state, once every agent is connected to every other (probes connect ` +
        `lazily, so the full mesh forms over ~N/2 s) or ${SETTLE_CAP_S} s after convergence (idle.fullMesh says which).`,
      'falsePositives counts suspect/dead events about members that were never stopped (or about the victim before it was).',
    ],
    quietWaits,
    results,
    skipped,
    processes,
    targets: targets(results, processes),
  }
  return { report, text: render(setup, results, skipped, processes, report.targets) }
}

/** How one size runs: on how many event loops, started how, with what members and timers. */
interface SizeSetup {
  workers: number
  /** Members started this many at a time; null: all at once. */
  rollingBatch: number | null
  kind: CellKind
  preset: TimerPreset
}

async function measureSize(
  n: number,
  { workers, rollingBatch, kind, preset }: SizeSetup,
): Promise<SizeResult> {
  const fleet = new Fleet(workers, kind, preset)
  const ids: string[] = []
  const index = new Map<string, number>()
  const notes: string[] = []
  const delay: SizeResult['loopDelay'] = {}
  const falsePositives = { suspect: 0, dead: 0, samples: [] as Accusation[] }
  /** Phase starts in epoch ms, the clock accusations carry. */
  const phases: Array<{ phase: Phase; at: number }> = []
  const epoch = () => performance.timeOrigin + performance.now()
  let victim: { id: string; killedAt: number } | undefined
  const cluster = `bench-${n}`
  const cpuOfHost = hostCpu()

  fleet.onAccusation(({ event, observer, target, at }) => {
    if (target === victim?.id && at >= victim.killedAt) return
    falsePositives[event]++
    const phase = phases.findLast((p) => p.at <= at) ?? phases[0]
    if (falsePositives.samples.length < SAMPLE_LIMIT && phase != null) {
      const atMs = Math.round(at - phase.at)
      falsePositives.samples.push({
        phase: phase.phase,
        event,
        observer,
        target: index.get(target) ?? -1,
        atMs,
      })
    }
  })
  const start = async (i: number, bootstrap: string[]): Promise<CellAgent> => {
    const agent = await fleet.start(i, cluster, bootstrap)
    ids[i] = agent.id
    index.set(agent.id, i)
    return agent
  }
  const enter = async (next: Phase) => {
    phases.push({ phase: next, at: epoch() })
    const end = await fleet.loopDelay()
    return async () => {
      const worst = await end()
      if (worst != null) delay[next] = worst
    }
  }

  const result: SizeResult = {
    n,
    kind,
    preset,
    agentsPerLoop: Math.ceil(n / fleet.loops),
    startMs: null,
    rolling: null,
    completeViewsMs: null,
    medianAgentCompleteMs: null,
    joinSeenByAllMs: null,
    joinerCompleteMs: null,
    killFirstSuspectMs: null,
    killSuspectedByAllMs: null,
    killDeadByAllMs: null,
    idle: null,
    hostCpu: null,
    falsePositives,
    stats: {},
    loopDelay: delay,
    starvedPhases: [],
    notes,
  }
  try {
    // 1. Start agent 0, then N-1 at once through it (or a batch at a time: a rolling start);
    // wait for every view to list N alive.
    const first = await start(0, [])
    const boot = first.addrs.filter((addr) => addr.includes('/tcp/'))
    let leave = await enter('converge')
    const began = performance.now()
    let startedCount = 1
    if (rollingBatch != null) {
      const rolling = { batch: rollingBatch, batches: 0, batchesComplete: 0, totalMs: 0 }
      while (startedCount + rollingBatch < n) {
        const from = startedCount
        await Promise.all(Array.from({ length: rollingBatch }, (_, i) => start(from + i, boot)))
        startedCount += rollingBatch
        rolling.batches++
        const batchSince = performance.now()
        const settled = await milestones(
          async () => {
            const views = await fleet.views({ alive: 'all' })
            return { complete: views.every((view) => view.alive === startedCount) }
          },
          { since: batchSince, capMs: 60_000, everyMs: CONVERGE_POLL_MS },
        )
        if (settled.complete != null) rolling.batchesComplete++
      }
      rolling.batches++
      rolling.totalMs = Math.round(performance.now() - began)
      result.rolling = rolling
    }
    const since = performance.now()
    const firstComplete = new Map<number, number>()
    let startError: unknown
    const starting = Promise.all(
      Array.from({ length: n - startedCount }, (_, i) => start(startedCount + i, boot)),
    ).then(
      () => {
        result.startMs = Math.round(performance.now() - (rollingBatch == null ? since : began))
      },
      (err: unknown) => {
        startError = err ?? new Error('agent start failed')
      },
    )
    const converged = await milestones(
      async () => {
        if (startError != null) return { complete: true }
        const views = await fleet.views({ alive: 'all' })
        const now = Math.round(performance.now() - since)
        for (const view of views) {
          if (view.alive === n && !firstComplete.has(view.index)) firstComplete.set(view.index, now)
        }
        return { complete: views.length === n && views.every((view) => view.alive === n) }
      },
      { since, capMs: 60_000, everyMs: CONVERGE_POLL_MS },
    )
    await leave()
    await starting
    if (startError != null) throw startError
    result.completeViewsMs = converged.complete
    result.medianAgentCompleteMs = median([...firstComplete.values()])
    result.stats.converged = await fleet.stats()
    if (result.completeViewsMs == null)
      notes.push(`views not complete within 60 s (start took ${result.startMs} ms)`)

    // 4. Idle wire traffic, CPU and memory (whole process, every thread) over a window at steady
    // state: probes open connections one member at a time, so the full mesh forms over ~N/2 s.
    const settleStart = performance.now()
    await sleep(SETTLE_S * 1000)
    const settled = await milestones(
      async () => {
        const traffic = await fleet.traffic()
        return { fullMesh: traffic.every((sample) => sample.connections >= n - 1) }
      },
      { since: settleStart, capMs: SETTLE_CAP_S * 1000, everyMs: 500 },
    )
    const settleS = round((performance.now() - settleStart) / 1000)
    leave = await enter('idle')
    const before = await fleet.traffic()
    const cpu0 = process.cpuUsage()
    const busy = fleet.utilization()
    const idleHost = hostCpu()
    await sleep(IDLE_WINDOW_S * 1000)
    const cpu = process.cpuUsage(cpu0)
    const loopUtilizationPercent = busy()
    const after = await fleet.traffic()
    const rssMB = process.memoryUsage().rss / 2 ** 20
    const sum = (samples: TrafficSample[], key: 'sentBytes' | 'receivedBytes' | 'connections') =>
      samples.reduce((total, sample) => total + sample[key], 0)
    const perNodePerSec = (key: 'sentBytes' | 'receivedBytes') =>
      Math.round((sum(after, key) - sum(before, key)) / n / IDLE_WINDOW_S)
    result.idle = {
      settleS,
      fullMesh: settled.fullMesh != null,
      windowS: IDLE_WINDOW_S,
      sentBytesPerNodePerSec: perNodePerSec('sentBytes'),
      receivedBytesPerNodePerSec: perNodePerSec('receivedBytes'),
      meanConnections: round(sum(after, 'connections') / n),
      processRssMB: round(rssMB),
      rssPerAgentMB: round(rssMB / n),
      cpuPercentOfOneCorePerAgent: round(((cpu.user + cpu.system) / 1e6 / IDLE_WINDOW_S / n) * 100, 2),
      loopUtilizationPercent,
      foreignCores: idleHost()?.foreignCores ?? null,
    }
    await leave()
    result.stats.idle = await fleet.stats()

    // 2. A late joiner: until every earlier agent lists it alive.
    leave = await enter('join')
    const joinStart = performance.now()
    const joiner = await start(n, boot)
    const joined = await milestones(
      async () => {
        const views = await fleet.views({ alive: [n], watch: joiner.id })
        return {
          seenByAll: views.every((view) => view.index === n || view.watched === 'alive'),
          joinerComplete: views.find((view) => view.index === n)?.alive === n + 1,
        }
      },
      { since: joinStart },
    )
    await leave()
    result.joinSeenByAllMs = joined.seenByAll
    result.joinerCompleteMs = joined.joinerComplete
    if (result.joinSeenByAllMs == null) notes.push('late joiner not seen alive by all within 30 s')

    // 3. A crash (no leave): until every remaining agent has it dead.
    leave = await enter('kill')
    const target = n - 1
    const targetId = ids[target]!
    victim = { id: targetId, killedAt: epoch() }
    const killStart = performance.now()
    const stopped = fleet.stop(target)
    let remaining: ViewSample[] = []
    const seen = (states: MemberState[]) => (view: ViewSample) =>
      view.watched != null && states.includes(view.watched)
    const killed = await milestones(
      async () => {
        remaining = (await fleet.views({ alive: [], watch: targetId })).filter(
          (view) => view.index !== target,
        )
        return {
          firstSuspect: remaining.some(seen(['suspect', 'dead'])),
          suspectedByAll: remaining.every(seen(['suspect', 'dead'])),
          deadByAll: remaining.every(seen(['dead'])),
        }
      },
      { since: killStart, everyMs: 10 },
    )
    await stopped
    await leave()
    result.killFirstSuspectMs = killed.firstSuspect
    result.killSuspectedByAllMs = killed.suspectedByAll
    result.killDeadByAllMs = killed.deadByAll
    if (result.killDeadByAllMs == null) {
      const states = countBy(remaining.map((view) => view.watched ?? 'absent'))
      notes.push(`killed agent not dead everywhere within 30 s: ${JSON.stringify(states)}`)
    }
    result.stats.end = await fleet.stats()
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
  } finally {
    result.hostCpu = cpuOfHost()
    result.starvedPhases = (Object.keys(delay) as Phase[]).filter((p) => (delay[p]?.p99Ms ?? 0) > STARVED_MS)
    await fleet.close()
  }
  return result
}

function median(values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of values) out[v] = (out[v] ?? 0) + 1
  return out
}
