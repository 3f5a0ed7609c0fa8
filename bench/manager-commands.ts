/**
 * Command latency (issue 18): API request → committed and applied, timed by the
 * client around `POST /api/rollouts/ID/pause` and `/resume` (the agent answers
 * once the entry is applied on the leader). N agent processes (preset lan, closed
 * by a secret) with `--voters 3` or `--voters 5`; a rolling rollout with
 * `--approve manual` waits for approval, so pause (→ paused) and resume (→
 * running; the leader's loop then commits running → waiting-approval) each
 * commit one entry and move no node. Sent in turn, one at a time, with a pause
 * between two commands, through the leader, through a follower voter and through
 * a non-voter (both forward to the leader over a libp2p stream). A GET
 * /api/manager to the same agent (no commit) is timed alongside, and right
 * after each answer a GET /api/rollouts/ID to the same agent checks that it
 * shows the command's effect (read-your-writes). The CPU each agent process
 * uses per committed entry, above its own rest, is measured by role. Every 25
 * rounds the bench waits (up to 30 s) for other processes on the host to calm
 * down.
 *
 * The floor, measured in the same run: one synced Raft storage write (level,
 * bench/raft-storage.ts) and one loopback TCP round trip between two processes.
 */
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { voterTarget } from '../src/manager/voter-policy.js'
import {
  type Agent,
  ApiClient,
  type CpuUse,
  clusterKeys,
  cpuWindow,
  Gates,
  getJson,
  leaderOf,
  type ManagerView,
  othersQuiet,
  post,
  quantiles,
  type RolloutView,
  reapComponents,
  sleep,
  startCluster,
  steady,
  until,
  waitQuiet,
} from './manager-cluster.js'
import { cpuTicks, terminate } from './processes.js'
import { runRaftStorage } from './raft-storage.js'
import { clockTicks, round, type TempDirs } from './util.js'

/** Between two commands: the leader's follow-up entry and the state's spread to every agent settle. */
const GAP_MS = 100
const IDLE_WINDOW_MS = 10_000
/** Every BLOCK rounds, wait (up to QUIET_MAX_WAIT_S) for processes outside the bench to use < QUIET_LIMIT_CORES. */
const BLOCK = 25
const QUIET_LIMIT_CORES = 0.5
const QUIET_MAX_WAIT_S = 30
/** After a stale read: poll the agent this often, this long, until it shows the command's effect. */
const VISIBLE_POLL_MS = 5
const VISIBLE_CAP_MS = 2000

type Path = 'leader' | 'follower voter' | 'non-voter'

export interface CommandPath {
  path: Path
  agent: string
  commands: number
  errors: number
  latencyMs: ReturnType<typeof quantiles>
  pauseMs: ReturnType<typeof quantiles>
  resumeMs: ReturnType<typeof quantiles>
  /** GET /api/manager on the same agent, in the same rounds: the API without a commit. */
  readMs: ReturnType<typeof quantiles>
  /**
   * Answers after which a GET /api/rollouts/ID to the same agent, sent at once, did
   * not show the command's effect yet (pause: `paused`; resume: no longer `paused`).
   */
  staleReads: { pause: number; resume: number }
  /** Answer → the same agent's GET /api/rollouts/ID shows the effect (polled every 5 ms, up to 2 s; 0: at once). */
  visibleAfterMs: ReturnType<typeof quantiles>
}

export interface CommandSeries {
  voters: number
  n: number
  votersSeen: number
  termBefore: number | null
  termAfter: number | null
  gapMs: number
  paths: CommandPath[]
  cpu: CpuUse | null
  /** The same cluster at rest for 10 s before the commands. */
  idleCpu: CpuUse | null
  /** Entries committed during the commands (leader's commit index), and the window, s. */
  entries: number
  windowS: number
  /** (bench cores during − at rest) × window ÷ entries: CPU the whole cluster spends per committed entry. */
  cpuMsPerEntry: number | null
  /**
   * The same per agent process (components excluded), by role: CPU ms per committed
   * entry above its own rest, the leader's and the mean of the others of each role.
   */
  cpuMsPerEntryByRole: { leader: number; followerVoter: number | null; nonVoter: number | null } | null
  /** Other processes' CPU in the 2 s before each block of 25 rounds (after waiting up to 30 s for < 0.5 core). */
  othersBeforeBlocks: Array<{ waitedS: number; otherCores: number; quiet: boolean }>
  loadAverageAtStart: number
  hostQuietBefore: { waitedS: number; quiet: boolean }
}

export async function measureCommands(
  maxVoters: 3 | 5,
  n: number,
  pairsPerPath: number,
  dirs: TempDirs,
  notes: string[],
): Promise<CommandSeries> {
  const agents: Agent[] = []
  const hostQuietBefore = await waitQuiet(`commands (${maxVoters} voters)`, notes)
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  const series: CommandSeries = {
    voters: maxVoters,
    n,
    votersSeen: 0,
    termBefore: null,
    termAfter: null,
    gapMs: GAP_MS,
    paths: [],
    cpu: null,
    idleCpu: null,
    entries: 0,
    windowS: 0,
    cpuMsPerEntry: null,
    cpuMsPerEntryByRole: null,
    othersBeforeBlocks: [],
    loadAverageAtStart,
    hostQuietBefore,
  }
  try {
    const { key, flags } = await clusterKeys(dirs)
    await startCluster(n, dirs, [...flags, '--voters', String(maxVoters)], agents)
    await until(`${n} agents with one manager`, () => steady(agents), 60_000)
    const gates = await Gates.build(dirs)
    await gates.publish(new ApiClient(agents[0]!.info.api), key, agents)
    const wanted = voterTarget(n, maxVoters)
    await until(`${wanted} voters`, async () => {
      const view = await getJson<ManagerView>(agents[0]!.info.api, '/api/manager')
      return view.voters.length === wanted && view.learners.length === 0
    })
    await until(`${n} agents steady`, () => steady(agents), 60_000)
    await sleep(3000)
    const { agent: leader, view } = await leaderOf(agents)
    series.votersSeen = view.voters.length
    series.termBefore = view.term
    const follower = agents.find((a) => a !== leader && view.voters.includes(a.info.id))
    const observer = agents.find(
      (a) => !view.voters.includes(a.info.id) && !view.learners.includes(a.info.id),
    )
    const paths: Array<{ path: Path; agent: Agent }> = [{ path: 'leader', agent: leader }]
    if (follower != null) paths.push({ path: 'follower voter', agent: follower })
    if (observer != null) paths.push({ path: 'non-voter', agent: observer })

    const rollout = await post<RolloutView>(leader.info.api, '/api/rollouts', {
      distribution: 'gate@1.0',
      strategy: 'rolling',
      approve: 'manual',
    })
    await until('the rollout waiting for approval', async () => {
      const r = await getJson<RolloutView>(leader.info.api, `/api/rollouts/${rollout.id}`)
      return r.state === 'waiting-approval'
    })
    // The cluster's own CPU at rest, then during the commands: what one committed entry costs.
    const ticksOf = () => Promise.all(agents.map((a) => cpuTicks(a.child.pid!)))
    const idle = await cpuWindow()
    const idleTicks = await ticksOf()
    const idleFrom = performance.now()
    await sleep(IDLE_WINDOW_MS)
    series.idleCpu = await idle()
    const idleTicksAfter = await ticksOf()
    const idleS = (performance.now() - idleFrom) / 1000
    const indexBefore = (await getJson<ManagerView>(leader.info.api, '/api/manager')).commitIndex
    const windowStart = performance.now()
    const samples = new Map(
      paths.map((p) => [
        p.path,
        {
          pause: [] as number[],
          resume: [] as number[],
          read: [] as number[],
          visible: [] as Array<number | null>,
          errors: 0,
          stale: { pause: 0, resume: 0 },
        },
      ]),
    )
    const cpu = await cpuWindow()
    const windowTicks = await ticksOf()
    for (let i = 0; i < pairsPerPath; i++) {
      // A shared host: let other processes' bursts pass between blocks (the window's CPU says how busy it was).
      if (i % BLOCK === 0)
        series.othersBeforeBlocks.push(await othersQuiet(QUIET_LIMIT_CORES, QUIET_MAX_WAIT_S))
      for (const { path, agent } of paths) {
        const got = samples.get(path)!
        for (const op of ['pause', 'resume'] as const) {
          const t = performance.now()
          try {
            await post<RolloutView>(agent.info.api, `/api/rollouts/${rollout.id}/${op}`)
            got[op].push(performance.now() - t)
            // Read-your-writes on the agent that answered (docs/manager.md, step 5).
            const answered = performance.now()
            const shows = async () =>
              (op === 'pause') ===
              ((await getJson<RolloutView>(agent.info.api, `/api/rollouts/${rollout.id}`)).state === 'paused')
            if (await shows()) got.visible.push(0)
            else {
              got.stale[op]++
              let after: number | null = null
              while (after == null && performance.now() - answered < VISIBLE_CAP_MS) {
                await sleep(VISIBLE_POLL_MS)
                if (await shows()) after = performance.now() - answered
              }
              got.visible.push(after)
            }
          } catch (err) {
            got.errors++
            if (got.errors <= 3) notes.push(`${maxVoters} voters, ${path} ${op}: ${String(err)}`)
          }
          await sleep(GAP_MS)
        }
        const t = performance.now()
        await getJson<ManagerView>(agent.info.api, '/api/manager')
        got.read.push(performance.now() - t)
      }
    }
    series.cpu = await cpu()
    const windowTicksAfter = await ticksOf()
    const windowS = (performance.now() - windowStart) / 1000
    series.entries = (await getJson<ManagerView>(leader.info.api, '/api/manager')).commitIndex - indexBefore
    series.windowS = round(windowS, 1)
    if (series.cpu != null && series.idleCpu != null && series.entries > 0)
      series.cpuMsPerEntry = round(
        (((series.cpu.benchCores - series.idleCpu.benchCores) * windowS) / series.entries) * 1000,
        1,
      )
    if (series.entries > 0) {
      const hz = clockTicks()
      const perEntry = agents.map((a, i) => {
        const during = (windowTicksAfter[i]! - windowTicks[i]!) / hz
        const rest = ((idleTicksAfter[i]! - idleTicks[i]!) / hz / idleS) * windowS
        return { id: a.info.id, ms: ((during - rest) / series.entries) * 1000 }
      })
      const mean = (ids: (id: string) => boolean) => {
        const got = perEntry.filter((p) => ids(p.id))
        return got.length === 0 ? null : round(got.reduce((sum, p) => sum + p.ms, 0) / got.length, 1)
      }
      series.cpuMsPerEntryByRole = {
        leader: mean((id) => id === leader.info.id) ?? 0,
        followerVoter: mean((id) => id !== leader.info.id && view.voters.includes(id)),
        nonVoter: mean((id) => !view.voters.includes(id)),
      }
    }
    series.termAfter = (await getJson<ManagerView>(leader.info.api, '/api/manager')).term
    if (series.termAfter !== series.termBefore)
      notes.push(
        `${maxVoters} voters: the term changed during the commands (${series.termBefore} → ${series.termAfter})`,
      )
    const q = (values: Array<number | null>) => {
      const s = quantiles(values)
      const r = (v: number | null) => (v == null ? null : round(v, 2))
      return { ...s, min: r(s.min), p50: r(s.p50), p90: r(s.p90), p99: r(s.p99), max: r(s.max) }
    }
    series.paths = paths.map(({ path, agent }) => {
      const got = samples.get(path)!
      return {
        path,
        agent: agent.info.id,
        commands: got.pause.length + got.resume.length,
        errors: got.errors,
        latencyMs: q([...got.pause, ...got.resume]),
        pauseMs: q(got.pause),
        resumeMs: q(got.resume),
        readMs: q(got.read),
        staleReads: got.stale,
        visibleAfterMs: q(got.visible),
      }
    })
  } catch (err) {
    notes.push(`commands (${maxVoters} voters): ${String(err)}`)
    console.error(err)
  } finally {
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
  }
  return series
}

// --- the floor --------------------------------------------------------------------------

export interface Floor {
  /** One synced RaftStorage.persist() of a 1-entry batch (level, fsync), and the unsynced one. */
  syncedWriteMs: { p50: number; p99: number }
  unsyncedWriteMs: { p50: number; p99: number }
  /** append + fdatasync of the same bytes on an open file: the disk's own limit. */
  fdatasyncMs: { p50: number; p99: number }
  /** A 64-byte TCP ping-pong on loopback between this process and a child process. */
  loopbackRttMs: { p50: number; p99: number }
  /** What the brief calls the physical limit: one synced write + one round trip (p50s). */
  oneWritePlusRttMs: number
  /**
   * The order this Raft keeps: the leader's entry synced before it sends, the
   * follower's synced before it answers: two synced writes + one round trip (p50s).
   */
  twoWritesPlusRttMs: number
}

export async function measureFloor(): Promise<Floor> {
  const storage = (await runRaftStorage()).report as {
    results: Record<string, { p50Ms: number; p99Ms: number }>
  }
  const r = storage.results
  const rtt = await loopbackRtt(2000)
  const synced = { p50: r.persistSynced!.p50Ms, p99: r.persistSynced!.p99Ms }
  return {
    syncedWriteMs: synced,
    unsyncedWriteMs: { p50: r.persistUnsynced!.p50Ms, p99: r.persistUnsynced!.p99Ms },
    fdatasyncMs: { p50: r.appendFdatasync!.p50Ms, p99: r.appendFdatasync!.p99Ms },
    loopbackRttMs: rtt,
    oneWritePlusRttMs: round(synced.p50 + rtt.p50, 3),
    twoWritesPlusRttMs: round(2 * synced.p50 + rtt.p50, 3),
  }
}

async function loopbackRtt(count: number): Promise<{ p50: number; p99: number }> {
  const echo = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer((c)=>{c.setNoDelay(true);c.pipe(c)});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  try {
    const port = Number(
      await new Promise<string>((resolve) => createInterface({ input: echo.stdout! }).once('line', resolve)),
    )
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    const payload = Buffer.alloc(64, 1)
    const times: number[] = []
    for (let i = 0; i < count + 100; i++) {
      const t = performance.now()
      await new Promise<void>((resolve) => {
        let got = 0
        const onData = (chunk: Buffer) => {
          got += chunk.length
          if (got >= payload.length) {
            socket.off('data', onData)
            resolve()
          }
        }
        socket.on('data', onData)
        socket.write(payload)
      })
      if (i >= 100) times.push(performance.now() - t)
    }
    socket.destroy()
    const s = quantiles(times)
    return { p50: round(s.p50 ?? Number.NaN, 3), p99: round(s.p99 ?? Number.NaN, 3) }
  } finally {
    echo.kill('SIGKILL')
  }
}
