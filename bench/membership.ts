/**
 * Membership benchmark: N in-process agents on 127.0.0.1 (preset `lan`), timed
 * through convergence, a late join and a crash, plus idle wire traffic; then RSS
 * and idle CPU of real agent processes.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from '../src/bootstrap/index.js'
import { LAN_TIMERS, type Member, type MemberState } from '../src/membership/index.js'
import { createLogger } from '../src/shared/logger.js'
import { render, summary, targets } from './membership-report.js'
import { measureProcesses, type ProcessResult } from './processes.js'
import { loopDelay, machine, round, source, TempDirs, waitFor } from './util.js'

const logger = createLogger({ level: 'error' })
const SETTLE_S = 3
const IDLE_WINDOW_S = 10
const SAMPLE_LIMIT = 10
/** Sizes the targets need always run; a larger one is skipped once the shared event loop ran later than a probe timeout. */
const ALWAYS_RUN_UP_TO = 50
const LOOP_LIMIT_MS = LAN_TIMERS.probeTimeout

export type Phase = 'converge' | 'idle' | 'join' | 'kill'
type Delay = { p99Ms: number; maxMs: number }

/** A suspect/dead event about a member that was not the one killed: a false positive. */
export interface Accusation {
  phase: Phase
  event: 'suspect' | 'dead'
  observer: number
  target: number
  atMs: number
}

export interface Skipped {
  n: number
  reason: string
}

export interface SizeResult {
  n: number
  /** Until the N-1 concurrent `Agent.start` calls (after agent 0's) resolved. */
  startMs: number | null
  completeViewsMs: number | null
  /** Median over agents of the first time its own view listed N alive. */
  medianAgentCompleteMs: number | null
  joinSeenByAllMs: number | null
  joinerCompleteMs: number | null
  killFirstSuspectMs: number | null
  killSuspectedByAllMs: number | null
  killDeadByAllMs: number | null
  idle: {
    windowS: number
    sentBytesPerNodePerSec: number
    receivedBytesPerNodePerSec: number
    meanConnections: number
    processRssMB: number
    rssPerAgentMB: number
    cpuPercentOfOneCorePerAgent: number
  } | null
  falsePositives: { suspect: number; dead: number; samples: Accusation[] }
  /** Membership stats summed over agents (health: max) when views converged, after the idle window, at the end. */
  stats: Partial<Record<'converged' | 'idle' | 'end', Record<string, number>>>
  loopDelay: Partial<Record<Phase, Delay>>
  notes: string[]
}

export async function runMembership(options: { sizes: number[]; processes: boolean }) {
  const began = Date.now()
  const results: SizeResult[] = []
  const skipped: Skipped[] = []
  for (const n of options.sizes) {
    const overloaded =
      n > ALWAYS_RUN_UP_TO &&
      results.find((r) => r.n < n && (r.loopDelay.converge?.p99Ms ?? 0) > LOOP_LIMIT_MS)
    if (overloaded) {
      const reason =
        `skipped: at N = ${overloaded.n} the shared event loop was already ${overloaded.loopDelay.converge?.p99Ms} ms late (p99) ` +
        `while converging, more than the ${LOOP_LIMIT_MS} ms probe timeout: a larger N would measure this machine, not membership`
      skipped.push({ n, reason })
      console.error(`membership: N = ${n} ${reason}`)
      continue
    }
    console.error(`membership: N = ${n} ...`)
    results.push(await measureSize(n))
    console.error(`membership: N = ${n} done (${summary(results.at(-1)!)})`)
  }
  let processes: ProcessResult | null = null
  if (options.processes) {
    console.error('membership: 5 agent processes ...')
    processes = await measureProcesses(5)
  }
  const report = {
    suite: 'membership',
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: machine(),
    source: source(),
    preset: 'lan',
    notes: [
      'In-process: all N agents share one Node.js event loop (one core), so each agent gets ~1/N of a core; ' +
        'loopDelay shows how late timers fired. Times are from the moment the N-1 agents are started (agent 0 first).',
      'falsePositives counts suspect/dead events about members that were never stopped.',
    ],
    results,
    skipped,
    processes,
    targets: targets(results, processes),
  }
  return { report, text: render(results, skipped, processes, report.targets) }
}

async function measureSize(n: number): Promise<SizeResult> {
  const dirs = new TempDirs()
  const agents: Agent[] = []
  const index = new Map<string, number>()
  const notes: string[] = []
  const delay: SizeResult['loopDelay'] = {}
  const falsePositives = { suspect: 0, dead: 0, samples: [] as Accusation[] }
  let phase: Phase = 'converge'
  let phaseStart = performance.now()
  let victim: string | undefined
  const cluster = `bench-${n}`

  const start = async (bootstrap: string[]) => {
    const dataDir = await dirs.make('shoal-bench-')
    const agent = await Agent.start(
      {
        cluster,
        dataDir,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        api: '127.0.0.1:0',
        bootstrap,
        mdns: false,
        preset: 'lan',
      },
      logger,
    )
    const observer = agents.push(agent) - 1
    index.set(agent.id, observer)
    const accuse = (event: Accusation['event']) => (member: Member) => {
      if (member.id === victim) return
      falsePositives[event]++
      if (falsePositives.samples.length < SAMPLE_LIMIT) {
        const atMs = Math.round(performance.now() - phaseStart)
        falsePositives.samples.push({ phase, event, observer, target: index.get(member.id) ?? -1, atMs })
      }
    }
    agent.membership.events.on('member:suspect', accuse('suspect'))
    agent.membership.events.on('member:dead', accuse('dead'))
    return agent
  }
  const enter = (next: Phase) => {
    phase = next
    phaseStart = performance.now()
    const done = loopDelay()
    return () => {
      delay[next] = done()
    }
  }
  const stateOf = (agent: Agent, id: string): MemberState | undefined => agent.membership.get(id)?.state
  const aliveCount = (agent: Agent) => agent.membership.members().filter((m) => m.state === 'alive').length

  const result: SizeResult = {
    n,
    startMs: null,
    completeViewsMs: null,
    medianAgentCompleteMs: null,
    joinSeenByAllMs: null,
    joinerCompleteMs: null,
    killFirstSuspectMs: null,
    killSuspectedByAllMs: null,
    killDeadByAllMs: null,
    idle: null,
    falsePositives,
    stats: {},
    loopDelay: delay,
    notes,
  }
  try {
    // 1. Start agent 0, then N-1 at once through it; wait for every view to list N alive.
    const first = await start([])
    const boot = first.membership.self.addrs.filter((addr) => addr.includes('/tcp/'))
    let leave = enter('converge')
    const since = performance.now()
    const firstComplete = new Map<number, number>()
    let startError: unknown
    const starting = Promise.all(Array.from({ length: n - 1 }, () => start(boot))).then(
      () => {
        result.startMs = Math.round(performance.now() - since)
      },
      (err: unknown) => {
        startError = err ?? new Error('agent start failed')
      },
    )
    const completeViewsMs = await waitFor(
      () => {
        if (startError != null) return true
        const now = Math.round(performance.now() - since)
        agents.forEach((agent, i) => {
          if (!firstComplete.has(i) && aliveCount(agent) === n) firstComplete.set(i, now)
        })
        return agents.length === n && agents.every((agent) => aliveCount(agent) === n)
      },
      { since, capMs: 60_000 },
    )
    leave()
    await starting
    if (startError != null) throw startError
    result.completeViewsMs = completeViewsMs
    result.medianAgentCompleteMs = median([...firstComplete.values()])
    result.stats.converged = sumStats(agents)
    if (result.completeViewsMs == null)
      notes.push(`views not complete within 60 s (start took ${result.startMs} ms)`)

    // 4. Idle wire traffic, CPU and memory (whole process) over a window after convergence.
    await sleep(SETTLE_S * 1000)
    leave = enter('idle')
    const sum = (key: 'sentBytes' | 'receivedBytes') => agents.reduce((s, a) => s + a.wireTraffic()[key], 0)
    const [sent0, received0, cpu0] = [sum('sentBytes'), sum('receivedBytes'), process.cpuUsage()]
    await sleep(IDLE_WINDOW_S * 1000)
    const cpu = process.cpuUsage(cpu0)
    const rssMB = process.memoryUsage().rss / 2 ** 20
    const perNodePerSec = (bytes: number) => Math.round(bytes / n / IDLE_WINDOW_S)
    result.idle = {
      windowS: IDLE_WINDOW_S,
      sentBytesPerNodePerSec: perNodePerSec(sum('sentBytes') - sent0),
      receivedBytesPerNodePerSec: perNodePerSec(sum('receivedBytes') - received0),
      meanConnections: round(agents.reduce((s, a) => s + a.node.getConnections().length, 0) / n),
      processRssMB: round(rssMB),
      rssPerAgentMB: round(rssMB / n),
      cpuPercentOfOneCorePerAgent: round(((cpu.user + cpu.system) / 1e6 / IDLE_WINDOW_S / n) * 100, 2),
    }
    leave()
    result.stats.idle = sumStats(agents)

    // 2. A late joiner: until every earlier agent lists it alive.
    leave = enter('join')
    const joinStart = performance.now()
    const joiner = await start(boot)
    const others = agents.slice(0, n)
    result.joinSeenByAllMs = await waitFor(() => others.every((a) => stateOf(a, joiner.id) === 'alive'), {
      since: joinStart,
    })
    result.joinerCompleteMs = await waitFor(() => aliveCount(joiner) === n + 1, { since: joinStart })
    leave()
    if (result.joinSeenByAllMs == null) notes.push('late joiner not seen alive by all within 30 s')

    // 3. A crash (no leave): until every remaining agent has it dead.
    leave = enter('kill')
    const target = agents[n - 1]!
    victim = target.id
    const remaining = agents.filter((a) => a !== target)
    const killStart = performance.now()
    const stopped = target.stop({ leave: false })
    const seen = (states: MemberState[]) => (a: Agent) => {
      const state = stateOf(a, target.id)
      return state != null && states.includes(state)
    }
    const suspicion = waitFor(() => remaining.some(seen(['suspect', 'dead'])), {
      since: killStart,
      everyMs: 10,
    })
    const suspectedByAll = waitFor(() => remaining.every(seen(['suspect', 'dead'])), { since: killStart })
    result.killDeadByAllMs = await waitFor(() => remaining.every(seen(['dead'])), { since: killStart })
    result.killFirstSuspectMs = await suspicion
    result.killSuspectedByAllMs = await suspectedByAll
    await stopped
    leave()
    if (result.killDeadByAllMs == null) {
      const states = countBy(remaining.map((a) => stateOf(a, target.id) ?? 'absent'))
      notes.push(`killed agent not dead everywhere within 30 s: ${JSON.stringify(states)}`)
    }
    result.stats.end = sumStats(remaining)
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
  } finally {
    await Promise.all(agents.map((a) => a.stop({ leave: false }).catch(() => {})))
    await dirs.removeAll()
  }
  return result
}

function sumStats(agents: Agent[]): Record<string, number> {
  const total: Record<string, number> = {}
  for (const agent of agents) {
    for (const [key, value] of Object.entries(agent.membership.stats())) {
      total[key] = key === 'health' ? Math.max(total[key] ?? 0, value) : (total[key] ?? 0) + value
    }
  }
  return total
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
