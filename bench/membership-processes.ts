/**
 * Membership with real agent processes (issue 19): N `shoal agent` processes on
 * this machine, one agent per process as in production (started through the CLI,
 * preset lan, a closed cluster: `--secret-file`, each with its own data folder and
 * API port). `npm run bench -- membership --processes 50` writes
 * bench/results/membership-processes-50.json.
 *
 * 1. Start: agent 0, then `BATCH` at a time through it, each batch once every
 *    earlier agent lists all started ones alive; until every agent lists N alive.
 * 2. Idle: after `SETTLE_S`, over `IDLE_WINDOW_S` with no API polls: CPU per agent
 *    (/proc/PID/stat), private memory (/proc/PID/smaps_rollup Private_Clean +
 *    Private_Dirty), libp2p connections (established TCP sockets, proc-sockets.ts).
 * 3. Rounds: SIGSTOP one agent for `STOP_MS` and SIGKILL another at the same
 *    moment; every survivor's `GET /api/members` is polled every `POLL_MS`
 *    (staggered), and the stopped one's too once it runs again. A member other
 *    than the killed one listed `dead` is a false dead verdict; `suspect`, a false
 *    suspicion. Then the killed agent restarts on its data folder, until N alive.
 *
 * Before the measured phases the bench waits for other heavy runs on the machine
 * to end (heavy-neighbours.ts) and for a quiet CPU. Every phase has a cap; every
 * agent is stopped on exit, also on error or a signal. Agents log at debug into
 * files, kept (and quoted in the report) when a verdict was false or late;
 * SHOAL_BENCH_KEEP=1 keeps them always.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { type NeighbourWait, waitForNeighbours } from './heavy-neighbours.js'
import { type CpuUse, clusterKeys, cpuWindow, othersQuiet, PRESET, quantiles } from './manager-cluster.js'
import { type Sighting, VerdictWatch } from './membership-verdicts.js'
import { libp2pConnections } from './proc-sockets.js'
import { cpuTicks, memory, type Started, startProcess, terminate } from './processes.js'
import { clockTicks, machine, round, source, TempDirs, table, waitFor } from './util.js'

const BATCH = 10
const STOP_MS = 3000
const POLL_MS = 200
const STARTUP_POLL_MS = 1000
const BATCH_CAP_MS = 120_000
/** Longest wait for a quiet CPU (other processes < 0.3 core) before the start. */
const START_QUIET_WAIT_S = 600
const SETTLE_S = 30
const IDLE_WINDOW_S = 30
/** A round watches at least this long after the kill (a suspicion of the stopped agent runs out within ~5 s). */
const ROUND_OBSERVE_MS = 15_000
/** The killed agent dead in every view within this, or the round records a timeout. */
const ROUND_CAP_MS = 30_000
const REJOIN_CAP_MS = 90_000
/** The whole run, whatever happens: then every agent is killed and the bench exits. */
const RUN_CAP_MS = 90 * 60_000
/** Victims by agent index, one pair per round (never agent 0, the bootstrap address). */
const STOPPED = [5, 21, 37]
const KILLED = [12, 28, 44]
/** Issue 19's targets. */
const TARGET_DEAD_MS = 3000
const TARGET_CPU_PERCENT = 1
const TARGET_PRIVATE_MB = 60
/** Membership's connection budget (docs/decisions.md). */
const CONNECTION_BUDGET = 48
const LOG_LEVEL = process.env.SHOAL_BENCH_AGENT_LOG_LEVEL ?? 'debug'
/** Longest wait for other heavy runs to end before a phase (SHOAL_BENCH_NEIGHBOUR_WAIT_S, default 20 min). */
const NEIGHBOUR_WAIT_S = Number(process.env.SHOAL_BENCH_NEIGHBOUR_WAIT_S ?? 1200)
const SAMPLES = 20

type Agent = Started & { index: number; dataDir: string; p2pPort: number; log: string }

export interface ProcessesOptions {
  count: number
}

export interface IdleAgent {
  index: number
  /** Its Raft role (`observer`: not in the voter set), asked after the window. */
  role: string
  cpuPercent: number
  /** Private_Clean + Private_Dirty (smaps_rollup): memory only this process holds. */
  privateMB: number | null
  /** RssAnon (status): resident anonymous pages, the figure issue 19 quoted (145 MB). */
  anonMB: number
  pssMB: number | null
  rssMB: number
  connections: number | null
  peers: number | null
}

/** Counters from each agent's /metrics, summed (health: max) over a round. */
interface Counters {
  suspicionsRaised: number
  probeFailures: number
  inconclusiveProbes: number
  maxLocalHealth: number
  probes: number
  syncs: number
  gossipSent: number
  gossipReceived: number
  wireSent: number
  wireReceived: number
}

export interface Round {
  round: number
  stopped: { index: number; id: string; role: string }
  killed: { index: number; id: string; role: string }
  /** SIGSTOP to SIGCONT, as the bench's timer fired. */
  stoppedForMs: number
  loadAverage: number
  neighbours: NeighbourWait
  quiet: { waitedS: number; otherCores: number; quiet: boolean }
  /** ms from the SIGKILL to the first poll of each survivor that listed the killed agent dead. */
  killedDead: ReturnType<typeof quantiles> & {
    observers: number
    maxAfterMs: number
    suspectFirstMs: number | null
  }
  /** How the survivors last listed the killed agent (a timeout leaves more than `dead`). */
  killedLastStates: Record<string, number>
  /** The stopped agent, once running again: its first poll listing the killed one dead. */
  resumedSawKilledDeadMs: number | null
  /** The stopped agent: how many survivors listed it suspect, first at, and its incarnation after. */
  stoppedSuspectedBy: number
  stoppedFirstSuspectMs: number | null
  stoppedIncarnation: { before: number | null; after: number | null }
  falseDead: number
  falseSuspect: number
  sightings: Sighting[]
  /** From the agents' logs over the round: accusations ("member suspected") per target, and refutations. */
  logs: {
    accusations: Array<{ target: string; by: number }>
    /** Agents that refuted a `dead` claim about themselves: someone had declared them dead. */
    refutedDead: string[]
    refutedSuspect: number
  }
  counters: Pick<Counters, 'suspicionsRaised' | 'probeFailures' | 'inconclusiveProbes' | 'maxLocalHealth'>
  polls: { ok: number; failed: number; maxLatencyMs: number }
  /** CPU over the round (kill to end of watch): this bench's process tree and the rest. */
  cpu: CpuUse | null
  /** The killed agent restarted on its data folder: until every agent lists N alive. */
  rejoin: { ms: number | null; falseDead: number; falseSuspect: number; sightings: Sighting[] }
  evidence: Evidence[]
}

interface Evidence {
  what: string
  observer: string
  /** The observer's log lines around it (membership, raft and manager lines). */
  lines: string[]
  /** The accused member's membership lines around it (its refutation, when it ran). */
  targetLines: string[]
}

export async function runMembershipProcesses({ count }: ProcessesOptions) {
  const began = Date.now()
  const host = machine()
  const measured = source()
  const dirs = new TempDirs()
  const logDir = await mkdtemp(join(tmpdir(), 'shoal-bench-mproc-logs-'))
  const agents: Agent[] = []
  const notes: string[] = []
  const neighbours: NeighbourWait[] = []
  const rounds: Round[] = []
  let keepLogs = process.env.SHOAL_BENCH_KEEP === '1'
  let bare: ChildProcess | undefined
  const startup = {
    /** Each batch: until every started agent listed all started ones alive; the 1-minute load as it began; CPU meanwhile. */
    batches: [] as Array<{ size: number; listedMs: number | null; loadAverage: number; cpu: CpuUse | null }>,
    quiet: null as { waitedS: number; otherCores: number; quiet: boolean } | null,
    convergedMs: null as number | null,
    falseDead: 0,
    falseSuspect: 0,
    sightings: [] as Sighting[],
    /** From the logs: accusations (a poll every second misses a suspicion refuted sooner) and refutations. */
    logs: null as Round['logs'] | null,
  }
  let idle: Idle | null = null
  let end: { connections: Array<number | null>; privateMB: Array<number | null> } | null = null

  // Whatever happens, no agent outlives the bench.
  const killAll = () => {
    for (const a of agents) {
      if (a.child.exitCode == null && a.child.signalCode == null) a.child.kill('SIGKILL')
    }
    bare?.kill('SIGKILL')
  }
  const onSignal = (signal: NodeJS.Signals) => {
    killAll()
    // No finally runs after process.exit: once the agents are gone (or 3 s), their data folders go too.
    const exited = agents.map((a) =>
      a.child.exitCode != null || a.child.signalCode != null
        ? Promise.resolve()
        : new Promise<void>((resolve) => a.child.once('exit', () => resolve())),
    )
    void Promise.race([Promise.all(exited), sleep(3000)])
      .then(() =>
        Promise.all(agents.map((a) => rm(a.dataDir, { recursive: true, force: true }).catch(() => {}))),
      )
      .finally(() => {
        console.error(`membership processes: stopped by ${signal}; agent logs in ${logDir}`)
        process.exit(signal === 'SIGINT' ? 130 : 143)
      })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', killAll)
  // The phases' caps, plus the waits for other runs before the start, the idle window and each round.
  const capMs = RUN_CAP_MS + (2 + STOPPED.length) * NEIGHBOUR_WAIT_S * 1000
  const watchdog = setTimeout(() => {
    console.error(
      `membership processes: the run exceeded ${Math.round(capMs / 60_000)} min; killing every agent`,
    )
    onSignal('SIGTERM')
  }, capMs)
  watchdog.unref()

  try {
    neighbours.push(await waitForNeighbours('the start', { capS: NEIGHBOUR_WAIT_S }))
    // Also processes the list does not name: the start alone nearly fills two cores.
    startup.quiet = await othersQuiet(0.3, START_QUIET_WAIT_S)
    const keys = await clusterKeys(dirs)
    const flags = ['--preset', PRESET, ...keys.flags, '--log-level', LOG_LEVEL]
    const start = async (index: number, dataDir: string, boot: string[]) => {
      // A start line late on a saturated machine is tried once more before the run gives up.
      const started = await startProcess(dataDir, boot, flags).catch(async (err: unknown) => {
        notes.push(`agent ${index}: ${String(err)}; started again`)
        return startProcess(dataDir, boot, flags)
      })
      const log = join(logDir, `agent-${index}.log`)
      started.child.stderr!.pipe(createWriteStream(log, { flags: 'a' }))
      const p2pPort = Number(/\/tcp\/(\d+)/.exec(started.info.addrs.find((a) => a.includes('/tcp/'))!)![1])
      const agent: Agent = { ...started, index, dataDir, p2pPort, log }
      agents[index] = agent
      return agent
    }
    const live = () => agents.filter((a) => a.child.exitCode == null && a.child.signalCode == null)
    const ids = () => agents.map((a) => a.info.id)
    const view = (a: Agent) => ({ id: a.info.id, api: a.info.api })

    // 1. Rolling start.
    console.error(`membership processes: starting ${count} agents, ${BATCH} at a time ...`)
    const startedAt = performance.now()
    const startEpoch = Date.now()
    const watch = new VerdictWatch({ since: startedAt, everyMs: STARTUP_POLL_MS })
    const first = await start(0, await dirs.make('shoal-bench-mproc-'), [])
    const boot = first.info.addrs.filter((a) => a.includes('/tcp/'))
    watch.watch(view(first))
    for (let from = 1; from < count; from += BATCH) {
      const size = Math.min(BATCH, count - from)
      const batchAt = performance.now()
      const batchCpu = await cpuWindow()
      const loadAverage = round(loadavg()[0] ?? 0, 2)
      const batch = await Promise.all(
        Array.from({ length: size }, async (_, i) =>
          start(from + i, await dirs.make('shoal-bench-mproc-'), boot),
        ),
      )
      for (const [i, a] of batch.entries()) watch.watch(view(a), (i * STARTUP_POLL_MS) / size)
      const everyone = ids()
      const listedMs = await waitFor(() => watch.allAlive(everyone, everyone), {
        since: batchAt,
        capMs: BATCH_CAP_MS,
        everyMs: 100,
      })
      startup.batches.push({ size, listedMs, loadAverage, cpu: await batchCpu() })
      if (listedMs == null)
        notes.push(`start: batch from agent ${from} not listed by all within ${BATCH_CAP_MS / 1000} s`)
    }
    const everyone = ids()
    const convergedIn = await waitFor(() => watch.allAlive(everyone, everyone), {
      since: startedAt,
      capMs: Math.round(performance.now() - startedAt) + BATCH_CAP_MS,
      everyMs: 100,
    })
    await watch.stop()
    startup.convergedMs = convergedIn
    const startVerdicts = watch.falseVerdicts()
    startup.falseDead = startVerdicts.filter((s) => s.state === 'dead').length
    startup.falseSuspect = startVerdicts.filter((s) => s.state === 'suspect').length
    startup.sightings = sample(startVerdicts)
    startup.logs = await scanLogs(live(), null, startEpoch, Date.now())
    if (convergedIn == null) throw new Error(`the ${count} agents did not all list ${count} alive`)
    console.error(`membership processes: ${count} alive everywhere after ${convergedIn} ms`)

    // 2. Idle.
    await sleep(SETTLE_S * 1000)
    neighbours.push(await waitForNeighbours('the idle window', { capS: NEIGHBOUR_WAIT_S }))
    const idleQuiet = await othersQuiet(0.3, 60)
    bare = spawn(process.execPath, [...AGENT_NODE_FLAGS, '-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    })
    console.error(`membership processes: idle window (${IDLE_WINDOW_S} s) ...`)
    idle = { ...(await measureIdle(live(), bare)), quiet: idleQuiet }
    const idleCheck = await viewsOnce(live(), everyone)
    if (!idleCheck) notes.push('idle: after the window, not every agent listed every other alive')
    bare.kill('SIGKILL')

    // 3. Rounds.
    for (let r = 0; r < Math.min(STOPPED.length, KILLED.length); r++) {
      const [stopIndex, killIndex] = victims(r, count)
      const stopped = agents[stopIndex]!
      const killed = agents[killIndex]!
      const wait = await waitForNeighbours(`round ${r + 1}`, { capS: NEIGHBOUR_WAIT_S })
      neighbours.push(wait)
      const quiet = await othersQuiet(0.3, 60)
      console.error(
        `membership processes: round ${r + 1}: SIGSTOP agent ${stopped.index}, SIGKILL agent ${killed.index} ...`,
      )
      const result = await runRound(r + 1, {
        agents: live(),
        stopped,
        killed,
        neighbours: wait,
        quiet,
      })
      rounds.push(result)
      console.error(
        `membership processes: round ${r + 1}: killed dead everywhere in ${result.killedDead.max} ms ` +
          `(p50 ${result.killedDead.p50}), false dead ${result.falseDead}, false suspect ${result.falseSuspect}`,
      )
      // The killed agent again, on its data folder (same identity), until every agent lists N alive.
      const rejoinAt = performance.now()
      const rejoin = new VerdictWatch({ since: rejoinAt, everyMs: STARTUP_POLL_MS })
      rejoin.excuse(killed.info.id, ['suspect', 'dead'])
      try {
        await start(killed.index, killed.dataDir, boot)
      } catch (err) {
        notes.push(
          `round ${r + 1}: agent ${killed.index} did not start again (${String(err)}); no more rounds`,
        )
        break
      }
      rejoin.watchAll(live().map(view))
      const all = ids()
      result.rejoin.ms = await waitFor(() => rejoin.allAlive(all, all), {
        since: rejoinAt,
        capMs: REJOIN_CAP_MS,
        everyMs: 100,
      })
      await rejoin.stop()
      const rejoinVerdicts = rejoin.falseVerdicts()
      result.rejoin.falseDead = rejoinVerdicts.filter((s) => s.state === 'dead').length
      result.rejoin.falseSuspect = rejoinVerdicts.filter((s) => s.state === 'suspect').length
      result.rejoin.sightings = sample(rejoinVerdicts)
      for (const s of rejoinVerdicts.filter((v) => v.state === 'dead').slice(0, 3))
        result.evidence.push(await evidence(`rejoin: false dead verdict on ${s.target}`, s, agents, rejoinAt))
      console.error(
        `membership processes: round ${r + 1}: agent ${killed.index} back in ${result.rejoin.ms} ms`,
      )
      // Not all alive: the next round starts anyway, and counts what stays suspect or dead as false.
      if (result.rejoin.ms == null)
        notes.push(`round ${r + 1}: not every agent listed all ${count} alive within 90 s of the restart`)
    }
    const pids = live()
    const ends = await libp2pConnections(pids.map((a) => ({ pid: a.child.pid!, p2pPort: a.p2pPort })))
    end = {
      connections: ends.map((c) => c?.connections ?? null),
      privateMB: await Promise.all(pids.map((a) => privateMemory(a.child.pid!))),
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
    keepLogs = true
  } finally {
    clearTimeout(watchdog)
    for (const a of agents) if (a.child.exitCode == null) a.child.kill('SIGCONT')
    bare?.kill('SIGKILL')
    await Promise.all(agents.map((a) => terminate(a.child)))
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', killAll)
    await dirs.removeAll()
  }

  const failed = rounds.some(
    (r) =>
      r.falseDead > 0 || r.logs.refutedDead.length > 0 || (r.killedDead.max ?? Infinity) > TARGET_DEAD_MS,
  )
  if (failed) keepLogs = true
  if (keepLogs) notes.push(`agent logs (level ${LOG_LEVEL}) kept in ${logDir}`)
  else await rm(logDir, { recursive: true, force: true })

  const targets = targetsOf(idle, rounds)
  const report = {
    suite: 'membership-processes',
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: host,
    loadAverageAtEnd: round(loadavg()[0] ?? 0, 2),
    /** Taken as the run began: the build measured (src may change while it runs). */
    source: measured,
    count,
    preset: PRESET,
    agentFlags: [
      ...AGENT_NODE_FLAGS,
      '<cli> agent',
      '--preset',
      PRESET,
      '--secret-file',
      '--trust',
      '--log-level',
      LOG_LEVEL,
    ],
    method: {
      batch: BATCH,
      settleS: SETTLE_S,
      idleWindowS: IDLE_WINDOW_S,
      stopMs: STOP_MS,
      pollMs: POLL_MS,
      roundObserveMs: ROUND_OBSERVE_MS,
      roundCapMs: ROUND_CAP_MS,
      victims: { stopped: STOPPED, killed: KILLED },
    },
    notes: [
      'Times are the bench clock from the SIGKILL to the first poll that showed it (polls every 200 ms per agent, staggered, stamped on receipt): up to one poll interval plus the answer late.',
      'falseDead/falseSuspect: distinct (observer, member, state) sightings of a member other than the killed one listed dead/suspect; logs.refutedDead also catches a dead verdict shorter than a poll (the accused refutes it).',
      'idle.cpuPercent is of one core, per agent process, over the window; no API was polled during it. neighbours: waits for other heavy runs (bench, simulations, vitest, CI) before each phase.',
      ...notes,
    ],
    neighbours,
    startup,
    idle,
    rounds,
    end,
    targets,
  }
  return { report, text: render(report.count, startup, idle, rounds, targets) }
}

type Idle = Awaited<ReturnType<typeof measureIdle>> & {
  /** The CPU-quiet wait before the window (other processes than this bench's). */
  quiet: { waitedS: number; otherCores: number; quiet: boolean }
}

// --- one round --------------------------------------------------------------------------------

interface RoundSetup {
  agents: Agent[]
  stopped: Agent
  killed: Agent
  neighbours: NeighbourWait
  quiet: { waitedS: number; otherCores: number; quiet: boolean }
}

async function runRound(
  n: number,
  { agents, stopped, killed, neighbours, quiet }: RoundSetup,
): Promise<Round> {
  const survivors = agents.filter((a) => a !== stopped && a !== killed)
  const before = await countersOf(agents)
  const roles = await rolesOf([stopped, killed])
  const stoppedIncarnationBefore = await incarnationOf(survivors[0]!, stopped.info.id)
  const loadAverage = round(loadavg()[0] ?? 0, 2)
  const cpu = await cpuWindow()
  const t0 = performance.now()
  const epoch0 = Date.now()
  const watch = new VerdictWatch({ since: t0, everyMs: POLL_MS })
  watch.excuse(killed.info.id, ['suspect', 'dead'])
  watch.track(stopped.info.id)
  killed.child.kill('SIGKILL')
  stopped.child.kill('SIGSTOP')
  watch.watchAll(survivors.map((a) => ({ id: a.info.id, api: a.info.api })))
  await sleep(STOP_MS - (performance.now() - t0))
  stopped.child.kill('SIGCONT')
  const stoppedForMs = Math.round(performance.now() - t0)
  watch.watch({ id: stopped.info.id, api: stopped.info.api })
  const observers = survivors.map((a) => a.info.id)
  await waitFor(() => watch.seen(killed.info.id, 'dead').size >= observers.length, {
    since: t0,
    capMs: ROUND_CAP_MS,
    everyMs: 50,
  })
  // Then long enough for any suspicion of the stopped agent to end one way or the other.
  const everyone = [...observers, stopped.info.id]
  await sleep(Math.max(0, ROUND_OBSERVE_MS - (performance.now() - t0)))
  await waitFor(() => watch.allAlive(everyone, everyone), {
    capMs: ROUND_CAP_MS - ROUND_OBSERVE_MS,
    everyMs: 100,
  })
  await watch.stop()
  const cpuUse = await cpu()
  const after = await countersOf(agents.filter((a) => a !== killed))
  const spanMs = Math.round(performance.now() - t0)

  const deadAt = watch.seen(killed.info.id, 'dead')
  const notDeadYet = watch.notDeadYet(killed.info.id)
  const killedDead = {
    ...quantiles(observers.map((id) => deadAt.get(id) ?? null)),
    observers: observers.length,
    /** The last survivor's verdict came after this (its last poll without it was sent then): the true figure is between this and `max`. */
    maxAfterMs: Math.max(0, ...observers.map((id) => notDeadYet.get(id) ?? 0)),
    suspectFirstMs: min(
      [...watch.seen(killed.info.id, 'suspect').entries()]
        .filter(([o]) => o !== stopped.info.id)
        .map(([, ms]) => ms),
    ),
  }
  const stoppedSeen = watch.seen(stopped.info.id, 'suspect')
  const verdicts = watch.falseVerdicts()
  const polls = [...watch.stats().values()]
  const logs = await scanLogs(agents, killed, epoch0 - 1000, epoch0 + spanMs)
  const round_: Round = {
    round: n,
    stopped: { index: stopped.index, id: stopped.info.id, role: roles.get(stopped.info.id) ?? 'unknown' },
    killed: { index: killed.index, id: killed.info.id, role: roles.get(killed.info.id) ?? 'unknown' },
    stoppedForMs,
    loadAverage,
    neighbours,
    quiet,
    killedDead,
    killedLastStates: watch.lastStates(observers, killed.info.id),
    resumedSawKilledDeadMs: deadAt.get(stopped.info.id) ?? null,
    stoppedSuspectedBy: [...stoppedSeen.keys()].length,
    stoppedFirstSuspectMs: min([...stoppedSeen.values()]),
    stoppedIncarnation: { before: stoppedIncarnationBefore, after: watch.incarnation(stopped.info.id) },
    falseDead: verdicts.filter((s) => s.state === 'dead').length,
    falseSuspect: verdicts.filter((s) => s.state === 'suspect').length,
    sightings: sample(verdicts),
    logs,
    counters: {
      suspicionsRaised: sumDiff(before, after, 'suspicionsRaised'),
      probeFailures: sumDiff(before, after, 'probeFailures'),
      inconclusiveProbes: sumDiff(before, after, 'inconclusiveProbes'),
      maxLocalHealth: Math.max(0, ...[...after.values()].map((c) => c.maxLocalHealth)),
    },
    polls: {
      ok: polls.reduce((s, p) => s + p.ok, 0),
      failed: polls.reduce((s, p) => s + p.failed, 0),
      maxLatencyMs: Math.max(0, ...polls.map((p) => p.maxLatencyMs)),
    },
    cpu: cpuUse,
    rejoin: { ms: null, falseDead: 0, falseSuspect: 0, sightings: [] },
    evidence: [],
  }
  // Evidence: the observers of each false dead verdict, the slowest observers of the killed one.
  for (const s of verdicts.filter((v) => v.state === 'dead').slice(0, 3))
    round_.evidence.push(await evidence(`false dead verdict on ${s.target}`, s, agents, t0))
  if ((killedDead.max ?? Infinity) > TARGET_DEAD_MS) {
    const late = observers
      .map((id) => ({ id, ms: deadAt.get(id) ?? Infinity }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 2)
    for (const { id, ms } of late) {
      const sighting = {
        observer: id,
        target: killed.info.id,
        state: 'dead' as const,
        firstMs: Number.isFinite(ms) ? ms : spanMs,
        lastMs: 0,
        polls: 0,
      }
      round_.evidence.push(
        await evidence(
          `killed agent listed dead late (${Number.isFinite(ms) ? `${ms} ms` : 'never'})`,
          sighting,
          agents,
          t0,
        ),
      )
    }
  }
  return round_
}

// --- measurements ----------------------------------------------------------------------------

async function measureIdle(agents: Agent[], bare: ChildProcess) {
  const loadAverage = round(loadavg()[0] ?? 0, 2)
  const ticks = clockTicks()
  const countersBefore = await countersOf(agents)
  const cpu = await cpuWindow()
  const from = performance.now()
  const before = await Promise.all(agents.map((a) => cpuTicks(a.child.pid!)))
  await sleep(IDLE_WINDOW_S * 1000)
  const after = await Promise.all(agents.map((a) => cpuTicks(a.child.pid!)))
  const seconds = (performance.now() - from) / 1000
  const countersAfter = await countersOf(agents)
  const rate = (key: keyof Counters) =>
    round(sumDiff(countersBefore, countersAfter, key) / agents.length / seconds, 2)
  const host = await cpu()
  const connections = await libp2pConnections(agents.map((a) => ({ pid: a.child.pid!, p2pPort: a.p2pPort })))
  const roles = await rolesOf(agents)
  const perAgent: IdleAgent[] = await Promise.all(
    agents.map(async (a, i) => {
      const mem = await memory(a.child.pid!)
      return {
        index: a.index,
        role: roles.get(a.info.id) ?? 'unknown',
        cpuPercent: round(((after[i]! - before[i]!) / ticks / seconds) * 100, 2),
        privateMB: await privateMemory(a.child.pid!),
        anonMB: mem.privateMB,
        pssMB: mem.pssMB,
        rssMB: mem.rssMB,
        connections: connections[i]?.connections ?? null,
        peers: connections[i]?.peers ?? null,
      }
    }),
  )
  const of = (pick: (a: IdleAgent) => number | null) => quantiles(perAgent.map(pick))
  return {
    windowS: round(seconds),
    loadAverage,
    cpu: host,
    cpuPercent: of((a) => a.cpuPercent),
    privateMB: of((a) => a.privateMB),
    anonMB: of((a) => a.anonMB),
    pssMB: of((a) => a.pssMB),
    connections: of((a) => a.connections),
    peers: of((a) => a.peers),
    /** Per agent per second over the window, from /metrics: what the agents did while idle. */
    traffic: {
      wireSentBytes: rate('wireSent'),
      wireReceivedBytes: rate('wireReceived'),
      probes: rate('probes'),
      gossipSent: rate('gossipSent'),
      gossipReceived: rate('gossipReceived'),
      syncs: rate('syncs'),
      suspicionsRaised: rate('suspicionsRaised'),
    },
    /** CPU of the agents outside the Raft voter set, and of the voters (the leader heartbeats them every 50 ms). */
    cpuPercentByRole: Object.fromEntries(
      [...new Set(perAgent.map((a) => a.role))].map((role) => [
        role,
        quantiles(perAgent.filter((a) => a.role === role).map((a) => a.cpuPercent)),
      ]),
    ),
    /** A bare `node` with the agents' flags, idling: what a process costs before Shoal. */
    bareNode: { ...(await memory(bare.pid!)), privateMB: await privateMemory(bare.pid!) },
    agents: perAgent,
  }
}

/** Each agent's Raft role, from GET /api/manager. */
async function rolesOf(agents: Agent[]): Promise<Map<string, string>> {
  const roles = await Promise.all(
    agents.map((a) =>
      fetch(`${a.info.api}/api/manager`, { signal: AbortSignal.timeout(3000) })
        .then((res) => res.json() as Promise<{ role?: string }>)
        .then((status) => status.role ?? 'unknown')
        .catch(() => 'unknown'),
    ),
  )
  return new Map(agents.map((a, i) => [a.info.id, roles[i]!]))
}

/** Private_Clean + Private_Dirty of a process, MB. */
async function privateMemory(pid: number): Promise<number | null> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '')
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? Number.NaN)
  const total = kb('Private_Clean') + kb('Private_Dirty')
  return Number.isNaN(total) ? null : round(total / 1024)
}

/** One poll of every agent: does each list every one of `ids` alive? */
async function viewsOnce(agents: Agent[], ids: string[]): Promise<boolean> {
  const watch = new VerdictWatch({ since: performance.now(), everyMs: 60_000 })
  watch.watchAll(agents.map((a) => ({ id: a.info.id, api: a.info.api })))
  const ok = await waitFor(() => watch.allAlive(ids, ids), { capMs: 5000, everyMs: 100 })
  await watch.stop()
  return ok != null
}

/** The incarnation of `id` in one agent's view. */
async function incarnationOf(agent: Agent, id: string): Promise<number | null> {
  const members = await fetch(`${agent.info.api}/api/members`, { signal: AbortSignal.timeout(3000) })
    .then((res) => res.json() as Promise<Array<{ id: string; incarnation: number }>>)
    .catch(() => [])
  return members.find((m) => m.id === id)?.incarnation ?? null
}

async function countersOf(agents: Agent[]): Promise<Map<string, Counters>> {
  const out = new Map<string, Counters>()
  await Promise.all(
    agents.map(async (a) => {
      const text = await fetch(`${a.info.api}/metrics`, { signal: AbortSignal.timeout(3000) })
        .then((res) => res.text())
        .catch(() => '')
      const value = (name: string, direction?: string) => {
        const series = direction == null ? name : `${name}{direction="${direction}"}`
        const line = text.split('\n').find((l) => l.startsWith(`${series} `))
        return Number(line?.slice(series.length + 1) ?? 0)
      }
      out.set(a.info.id, {
        suspicionsRaised: value('shoal_suspicions_total'),
        probeFailures: value('shoal_probe_failures_total'),
        inconclusiveProbes: value('shoal_probes_inconclusive_total'),
        maxLocalHealth: value('shoal_local_health'),
        probes: value('shoal_probes_total'),
        syncs: value('shoal_syncs_total'),
        gossipSent: value('shoal_gossip_messages_total', 'sent'),
        gossipReceived: value('shoal_gossip_messages_total', 'received'),
        wireSent: value('shoal_wire_bytes_total', 'sent'),
        wireReceived: value('shoal_wire_bytes_total', 'received'),
      })
    }),
  )
  return out
}

function sumDiff(before: Map<string, Counters>, after: Map<string, Counters>, key: keyof Counters): number {
  let sum = 0
  for (const [id, c] of after) sum += c[key] - (before.get(id)?.[key] ?? 0)
  return sum
}

// --- logs ------------------------------------------------------------------------------------

const LINE_TIME = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) /

async function linesBetween(file: string, fromEpoch: number, toEpoch: number): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.split('\n').filter((line) => {
    const at = LINE_TIME.exec(line)?.[1]
    if (at == null) return false
    const t = Date.parse(at)
    return t >= fromEpoch && t <= toEpoch
  })
}

/** Accusations and refutations the agents logged between two epoch times (the killed agent's own refutations excepted). */
async function scanLogs(
  agents: Agent[],
  killed: Agent | null,
  fromEpoch: number,
  toEpoch: number,
): Promise<Round['logs']> {
  const accusations = new Map<string, number>()
  const refutedDead: string[] = []
  let refutedSuspect = 0
  for (const a of agents) {
    if (a === killed) continue
    for (const line of await linesBetween(a.log, fromEpoch, toEpoch)) {
      const accused = /member suspected member=(\S+)/.exec(line)?.[1]
      if (accused != null) accusations.set(accused, (accusations.get(accused) ?? 0) + 1)
      const refuted = /refuting claim about self kind=(\S+)/.exec(line)?.[1]
      if (refuted === 'dead' && !refutedDead.includes(a.info.id)) refutedDead.push(a.info.id)
      if (refuted === 'suspect') refutedSuspect++
    }
  }
  return {
    accusations: [...accusations].map(([target, by]) => ({ target, by })).sort((a, b) => b.by - a.by),
    refutedDead,
    refutedSuspect,
  }
}

/** The observer's membership, raft and manager log lines from 5 s before a sighting to 1 s after. */
async function evidence(what: string, s: Sighting, agents: Agent[], t0: number): Promise<Evidence> {
  const observer = agents.find((a) => a.info.id === s.observer)
  const target = agents.find((a) => a.info.id === s.target)
  const at = performance.timeOrigin + t0 + s.firstMs
  const excerpt = async (agent: Agent | undefined, from: number, to: number, only: RegExp) =>
    agent == null
      ? []
      : (await linesBetween(agent.log, from, to))
          .filter((l) => only.test(l))
          .slice(-40)
          .map((l) => l.slice(0, 300))
  return {
    what: `${what} (observer agent ${observer?.index ?? '?'}, ${s.firstMs} ms)`,
    observer: s.observer,
    lines: await excerpt(observer, at - 5000, at + 1000, /\[shoal(:membership|:raft|:manager)?\]/),
    targetLines: await excerpt(target, at - 5000, at + 4000, /\[shoal:membership\]/),
  }
}

// --- targets and text ------------------------------------------------------------------------

interface Target {
  target: string
  measured: string
  pass: boolean | null
}

function targetsOf(idle: Idle | null, rounds: Round[]): Record<string, Target> {
  const falseDead = rounds.reduce((s, r) => s + r.falseDead + r.logs.refutedDead.length, 0)
  const falseSuspect = rounds.reduce((s, r) => s + r.falseSuspect, 0)
  const deadMax = rounds.map((r) => r.killedDead.max)
  const worst = deadMax.some((ms) => ms == null) ? null : Math.max(...(deadMax as number[]))
  const ran = rounds.length > 0
  return {
    falseDeadVerdicts: {
      target: '0 false dead verdicts (SIGSTOP 3 s + SIGKILL, every round)',
      measured: ran ? `${falseDead} (false suspicions: ${falseSuspect})` : 'not run',
      pass: ran ? falseDead === 0 : null,
    },
    killedDeadEverywhere: {
      target: `killed agent dead everywhere <= ${TARGET_DEAD_MS} ms`,
      measured: ran
        ? `max ${deadMax.map((ms) => ms ?? 'timeout').join(' / ')} ms; p50 ${rounds.map((r) => r.killedDead.p50 ?? '-').join(' / ')} ms`
        : 'not run',
      pass: ran ? worst != null && worst <= TARGET_DEAD_MS : null,
    },
    idleCpu: {
      target: `<= ${TARGET_CPU_PERCENT} % of a core per agent at idle`,
      measured:
        idle == null
          ? 'not run'
          : `mean ${idle.cpuPercent.mean} %, max ${idle.cpuPercent.max} %; by Raft role: ${Object.entries(
              idle.cpuPercentByRole,
            )
              .map(([role, q]) => `${role} (${q.count}) mean ${q.mean} max ${q.max}`)
              .join(', ')}`,
      pass: idle == null || idle.cpuPercent.max == null ? null : idle.cpuPercent.max <= TARGET_CPU_PERCENT,
    },
    privateMemory: {
      target: `<= ${TARGET_PRIVATE_MB} MB private memory per agent (Private_Clean + Private_Dirty)`,
      measured: idle == null ? 'not run' : `mean ${idle.privateMB.mean} MB, max ${idle.privateMB.max} MB`,
      pass: idle == null || idle.privateMB.max == null ? null : idle.privateMB.max <= TARGET_PRIVATE_MB,
    },
    connections: {
      target: `libp2p connections per agent (reported; budget ${CONNECTION_BUDGET})`,
      measured:
        idle == null
          ? 'not run'
          : `mean ${idle.connections.mean}, max ${idle.connections.max} (peers: max ${idle.peers.max})`,
      pass: null,
    },
  }
}

function render(
  count: number,
  startup: {
    convergedMs: number | null
    falseDead: number
    falseSuspect: number
    logs: Round['logs'] | null
  },
  idle: Idle | null,
  rounds: Round[],
  targets: Record<string, Target>,
): string {
  const lines = [
    `Membership with ${count} agent processes (preset ${PRESET}, closed cluster)`,
    `start: ${count} alive everywhere after ${startup.convergedMs ?? 'timeout'} ms; false dead ${startup.falseDead}, ` +
      `false suspect ${startup.falseSuspect} (polled); accusations logged ${
        startup.logs?.accusations.reduce((sum, a) => sum + a.by, 0) ?? '-'
      }`,
  ]
  if (idle != null)
    lines.push(
      `idle (${idle.windowS} s, load ${idle.loadAverage}, other processes ${idle.cpu?.otherCores ?? '?'} cores): ` +
        `CPU ${idle.cpuPercent.mean} % (max ${idle.cpuPercent.max}), private ${idle.privateMB.mean} MB (max ${idle.privateMB.max}), ` +
        `RssAnon ${idle.anonMB.mean} MB, connections ${idle.connections.mean} (max ${idle.connections.max}), ` +
        `wire ${idle.traffic.wireSentBytes} B/s sent per agent`,
    )
  lines.push(
    '',
    table(
      [
        'round',
        'stopped',
        'killed',
        'dead p50 ms',
        'dead max ms',
        'dead max after ms',
        'false dead',
        'false suspect',
        'stopped suspected by',
        'rejoin ms',
        'load',
      ],
      rounds.map((r) => [
        r.round,
        r.stopped.index,
        r.killed.index,
        r.killedDead.p50,
        r.killedDead.max,
        r.killedDead.maxAfterMs,
        r.falseDead + r.logs.refutedDead.length,
        r.falseSuspect,
        r.stoppedSuspectedBy,
        r.rejoin.ms,
        r.loadAverage,
      ]),
    ),
    '',
    table(
      ['target', 'measured', 'pass'],
      Object.values(targets).map((t) => [t.target, t.measured, t.pass == null ? '-' : t.pass ? 'yes' : 'NO']),
    ),
  )
  return lines.join('\n')
}

/** Round r's stopped and killed agent indexes: never agent 0, never the same one (also for a small N). */
function victims(r: number, count: number): [number, number] {
  const pick = (index: number) => 1 + ((index - 1) % (count - 1))
  const stop = pick(STOPPED[r]!)
  const kill = pick(KILLED[r]!)
  return [stop, kill === stop ? 1 + (kill % (count - 1)) : kill]
}

/** Every dead sighting (up to 100), and the first suspect ones. */
function sample(sightings: Sighting[]): Sighting[] {
  return [
    ...sightings.filter((s) => s.state === 'dead').slice(0, 100),
    ...sightings.filter((s) => s.state === 'suspect').slice(0, SAMPLES),
  ]
}

function min(values: number[]): number | null {
  return values.length === 0 ? null : Math.min(...values)
}
