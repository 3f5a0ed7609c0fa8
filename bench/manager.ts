/**
 * Manager benchmark (issues 6 and 18). Every agent is a separate process started
 * through the CLI with the `lan` preset (the default of `shoal agent`), closed by
 * a cluster secret (`--secret-file`) as production runs them.
 * 1. Leader failover with a rollout in flight, at each `--sizes` N (default 5,10):
 *    SIGKILL of the Raft leader → a survivor leads and acts at a higher term, and
 *    the rollout step that was due is committed and published
 *    (bench/manager-failover.ts).
 * 2. Command latency, API request → committed and applied, with 3 and 5 voters,
 *    through the leader and through agents that forward; against the floor (a
 *    synced storage write, a loopback round trip) measured in the same run
 *    (bench/manager-commands.ts).
 * 3. A rolling update of educa 1.0 → 1.1 on 10 nodes behind `shoal lb` (the
 *    built-in proxy), `--strategy rolling --max-unavailable 1` with the default
 *    min-ready, under a steady 100 req/s load; then back to 1.0 the same way. It
 *    reports the duration ÷ the sum over the nodes of drain + start, readiness and
 *    min-ready (from each node's `lastSwitch`), the failed requests, the nodes out
 *    of rotation, and where the time between two nodes goes.
 *
 * Environment knobs (for partial runs): SHOAL_BENCH_MANAGER=failover,commands,rolling
 * (default all three), SHOAL_BENCH_KILLS=K (kills per size; default 20 at N < 10, 24
 * at N >= 10), SHOAL_BENCH_COMMAND_PAIRS=P (pause + resume pairs per path; default 150).
 * SHOAL_BENCH_AGENT_LOGS=DIR keeps every agent's log (bench/manager-cluster.ts).
 */
import type { ChildProcess } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemberView } from '../src/api/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ProxyStatus } from '../src/loadbalancer/index.js'
import type { RolloutView } from '../src/manager/index.js'
import type { RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { presetTimers } from '../src/shared/presets.js'
import { startLb } from './lb-process.js'
import {
  type Agent,
  clusterKeys,
  cpuWindow,
  getJson,
  othersQuiet,
  PRESET,
  reapComponents,
  startCluster,
  steady,
  steadyLoad,
  tcpAddrs,
  until,
  waitQuiet,
} from './manager-cluster.js'
import { type CommandSeries, type Floor, measureCommands, measureFloor } from './manager-commands.js'
import { type FailoverSeries, measureFailover } from './manager-failover.js'
import { terminate } from './processes.js'
import { machine, round, source, TempDirs, table } from './util.js'

export {
  type Agent,
  getJson,
  reapComponents,
  startCluster,
  steadyLoad,
  tcpAddrs,
  until,
  waitQuiet,
} from './manager-cluster.js'

const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const ROLLING_NODES = 10
/** 1.0 → 1.1, then 1.1 → 1.0. */
const ROLLING_RUNS = 2
const COMMAND_AGENTS = 6
const FAILOVER_TARGET_MS = 1500
const RATIO_TARGET = 1.25

export async function runManager(options: { sizes: number[] }) {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const phases = new Set((process.env.SHOAL_BENCH_MANAGER ?? 'failover,commands,rolling').split(','))
  const killsFor = (n: number) => Number(process.env.SHOAL_BENCH_KILLS ?? (n >= 10 ? 24 : 20))
  const pairs = Number(process.env.SHOAL_BENCH_COMMAND_PAIRS ?? 150)
  const failover: FailoverSeries[] = []
  const commands: CommandSeries[] = []
  let floor: Floor | null = null
  let rolling: RollingRun[] = []
  const loadAverageAtSuiteStart = round(loadavg()[0] ?? 0, 2)
  try {
    if (phases.has('failover'))
      for (const n of options.sizes)
        failover.push(
          await measureFailover(n, killsFor(n), dirs, notes, { handOver: n === Math.max(...options.sizes) }),
        )
    if (phases.has('commands')) {
      floor = await measureFloor()
      for (const voters of [3, 5] as const)
        commands.push(await measureCommands(voters, COMMAND_AGENTS, pairs, dirs, notes))
    }
    if (phases.has('rolling')) rolling = await measureRolling(dirs, notes)
  } catch (err) {
    notes.push(`benchmark failed: ${String(err)}`)
    console.error(err)
  } finally {
    await dirs.removeAll()
  }

  const targets = [
    ...failover.map((f) => ({
      target: `failover (acting + step resumed) p99 ≤ ${FAILOVER_TARGET_MS / 1000} s at N=${f.n} (${f.kills.length} kills${f.n < 10 ? '; the target is for N = 10' : ''})`,
      measured: `resumed p50 ${f.resumedMs.p50} ms, p99 ${f.resumedMs.p99} ms (acting p50 ${f.actingMs.p50}, p99 ${f.actingMs.p99})`,
      pass:
        (f.n < 10 || f.kills.length >= 20) &&
        f.resumedMs.missing === 0 &&
        f.resumedMs.p99 != null &&
        f.resumedMs.p99 <= FAILOVER_TARGET_MS,
    })),
    ...rolling.map((r) => ({
      target: `rolling update of 10 nodes (${r.from} → ${r.to}) ÷ Σ(drain + start + readiness + min-ready) ≤ ${RATIO_TARGET}`,
      measured: String(r.ratio),
      pass: r.ratio <= RATIO_TARGET,
    })),
    ...rolling.map((r) => ({
      target: `0 failed requests through the load balancer (${r.from} → ${r.to})`,
      measured: `${r.load.failed} of ${r.load.sent}`,
      pass: r.load.failed === 0,
    })),
  ]
  const report = {
    suite: 'manager',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      preset: PRESET,
      managerTimers: presetTimers(PRESET).manager,
      sizes: options.sizes,
      phases: [...phases],
      commandAgents: COMMAND_AGENTS,
      commandPairsPerPath: pairs,
      loadAverageAtSuiteStart,
      secretFile: true,
    },
    failover,
    commands: { floor, series: commands, vsFloor: vsFloor(floor, commands) },
    rolling,
    targets,
    notes,
  }
  return { report, text: textOf(report) }
}

/** Each path's p50 and p99 ÷ the floor (one synced write + one loopback round trip, p50s). */
function vsFloor(floor: Floor | null, series: CommandSeries[]) {
  if (floor == null) return []
  const over = (v: number | null) => (v == null ? null : round(v / floor.oneWritePlusRttMs, 0))
  return series.flatMap((s) =>
    s.paths.map((p) => ({
      voters: s.votersSeen,
      path: p.path,
      p50Ms: p.latencyMs.p50,
      p99Ms: p.latencyMs.p99,
      p50OverFloor: over(p.latencyMs.p50),
      p99OverFloor: over(p.latencyMs.p99),
      p50OverGet:
        p.latencyMs.p50 == null || p.readMs.p50 == null ? null : round(p.latencyMs.p50 / p.readMs.p50, 1),
    })),
  )
}

function textOf(report: {
  failover: FailoverSeries[]
  commands: { floor: Floor | null; series: CommandSeries[]; vsFloor: ReturnType<typeof vsFloor> }
  rolling: RollingRun[]
  targets: Array<{ target: string; measured: string; pass: boolean }>
  notes: string[]
}): string {
  const { failover, commands, rolling } = report
  const lines: string[] = []
  if (failover.length > 0) {
    lines.push(`failover (preset ${PRESET}; SIGKILL of the Raft leader, a rollout step due), ms`)
    lines.push(
      table(
        [
          'N',
          'kill',
          'acting',
          'resumed',
          'node settled',
          'term',
          'poll',
          'bench / other cores',
          'pre-vote / candidate / leader (logs)',
        ],
        failover.flatMap((f) =>
          f.kills.map((k) => [
            f.n,
            k.run,
            k.actingMs,
            k.resumedMs,
            k.nodeSettledMs,
            `${k.oldTerm} → ${k.newTerm ?? '-'}`,
            k.pollPeriodMs,
            k.cpu == null ? null : `${k.cpu.benchCores} / ${k.cpu.otherCores}`,
            k.election == null
              ? null
              : `${k.election.firstPreCandidateMs ?? '-'} / ${k.election.firstCandidateMs ?? '-'} ×${k.election.candidatesFirstTerm} / ${k.election.leaderMs ?? '-'}`,
          ]),
        ),
      ),
    )
    lines.push(
      table(
        [
          'N',
          'kills',
          'acting p50',
          'acting p99',
          'resumed p50',
          'resumed p99',
          'quiet kills',
          'quiet p50',
          'quiet p99',
          '> 1 election',
          'terms between kills',
        ],
        failover.map((f) => [
          f.n,
          f.kills.length,
          f.actingMs.p50,
          f.actingMs.p99,
          f.resumedMs.p50,
          f.resumedMs.p99,
          f.quiet.kills,
          f.quiet.resumedMs.p50,
          f.quiet.resumedMs.p99,
          f.killsWithMoreThanOneElection,
          f.termsBetweenKills,
        ]),
      ),
      '',
    )
    for (const f of failover.filter((x) => x.handOver.length > 0)) {
      const h = f.handOverMs
      lines.push(
        `hand-over between two nodes at N=${f.n} (gate distribution, min-ready 0, ${h.steps} steps), ms p50 / max`,
        table(
          ['gap', 'p50', 'max'],
          (
            [
              ['gate open → ready', h.gateToReady],
              ['ready → settled', h.readyToSettled],
              ['settled → leader decides next', h.settledToDecided],
              ['decided → next switch starts', h.decidedToStarted],
              ['  of which decided → published (polled)', h.decidedToPublished],
              ['  published → next node holds it (polled)', h.publishedToAdopted],
              ['settled → next switch starts', h.settledToStarted],
            ] as const
          ).map(([name, q]) => [name, q.p50, q.max]),
        ),
        '',
      )
    }
  }
  if (commands.floor != null) {
    const f = commands.floor
    lines.push(
      `floor: synced write p50 ${f.syncedWriteMs.p50} ms (p99 ${f.syncedWriteMs.p99}), loopback RTT p50 ${f.loopbackRttMs.p50} ms; write + RTT ${f.oneWritePlusRttMs} ms, 2 writes + RTT ${f.twoWritesPlusRttMs} ms`,
    )
  }
  if (commands.series.length > 0)
    lines.push(
      table(
        [
          'voters',
          'path',
          'commands',
          'errors',
          'p50',
          'p90',
          'p99',
          'max',
          'p50 ÷ floor',
          'p99 ÷ floor',
          'GET p50',
          'stale pause/resume',
          'visible p50',
          'visible max',
          'CPU ms/entry',
        ],
        commands.series.flatMap((s) =>
          s.paths.map((p) => {
            const ratio = commands.vsFloor.find((r) => r.voters === s.votersSeen && r.path === p.path)
            return [
              s.votersSeen,
              p.path,
              p.commands,
              p.errors,
              p.latencyMs.p50,
              p.latencyMs.p90,
              p.latencyMs.p99,
              p.latencyMs.max,
              ratio?.p50OverFloor ?? null,
              ratio?.p99OverFloor ?? null,
              p.readMs.p50,
              `${p.staleReads.pause}/${p.staleReads.resume}`,
              p.visibleAfterMs.p50,
              p.visibleAfterMs.max,
              s.cpuMsPerEntry,
            ]
          }),
        ),
      ),
      ...commands.series.map(
        (s) =>
          `${s.votersSeen} voters: CPU ms per committed entry by agent process: ${JSON.stringify(s.cpuMsPerEntryByRole)}; ${s.entries} entries in ${s.windowS} s; others ${s.cpu?.otherCores ?? '-'} cores`,
      ),
      '',
    )
  for (const r of rolling)
    lines.push(
      `rolling update ${r.from} → ${r.to} on ${r.n} nodes (max-unavailable 1, min-ready ${r.minReadyMs} ms): ${r.durationMs} ms, ratio ${r.ratio} (with install ${r.ratioWithInstall})`,
      table(
        [
          'node',
          'starts',
          'install',
          'drain + start',
          'readiness',
          'done seen',
          'leader saw done',
          'next told',
        ],
        r.nodes.map((s) => [
          s.id.slice(-8),
          s.startedMs,
          s.installMs,
          s.drainStartMs,
          s.readinessMs,
          s.doneSeenMs,
          s.seenDoneMs,
          s.nextToldMs,
        ]),
      ),
      `denominator ${r.denominator.totalMs} ms; hand-over ${r.handOverMs} ms (${JSON.stringify(r.handOver)})`,
      `load: ${r.load.sent} sent, ${r.load.failed} failed ${JSON.stringify(r.load.detail)}; max out of rotation ${r.maxOutOfRotation}; CPU ${JSON.stringify(r.cpu)}`,
      '',
    )
  lines.push(
    table(
      ['target', 'measured', ''],
      report.targets.map((t) => [t.target, t.measured, t.pass ? 'pass' : 'FAIL']),
    ),
    ...report.notes,
  )
  return lines.join('\n')
}

// --- rolling update --------------------------------------------------------------------

interface NodeSwitch {
  id: string
  /** requestedAt of the rollout → this node's startedAt and settledAt. */
  startedMs: number
  settledMs: number
  /** startedAt → installedAt: unpacking (not in the denominator). */
  installMs: number
  /** installedAt → spawnedAt: drained through the load balancer, old components stopped, new launched. */
  drainStartMs: number
  /** spawnedAt → settledAt: every new component healthy, the old ones drained and stopped. */
  readinessMs: number
  /** spawnedAt → readyAt: every new component healthy. */
  readyMs: number | null
  /**
   * This node's settledAt → the leader's step that made the next node `updating`
   * (its updatingSince), minus min-ready: the node's phase reaching the leader by
   * gossip and the leader's loop (null for the last node).
   */
  seenDoneMs: number | null
  /** The leader's step (the next node's updatingSince) → the next node's startedAt: commit, publish, fetch. */
  nextToldMs: number | null
  /** settledAt → the sampler's first sight of `done` in the leader's record (min-ready included; 100 ms polls). */
  doneSeenMs: number | null
  startedAt: string
  settledAt: string
}

export interface RollingRun {
  n: number
  from: string
  to: string
  strategy: string
  maxUnavailable: number
  minReadyMs: number
  state: string
  loadAverageAtStart: number
  durationMs: number
  observedMs: number
  nodes: NodeSwitch[]
  denominator: {
    definition: string
    drainStartMs: number
    readinessMs: number
    minReadyMs: number
    totalMs: number
    installMsNotIncluded: number
  }
  ratio: number
  ratioWithInstall: number
  handOverMs: number
  handOver: {
    /** requestedAt → the first node's startedAt. */
    firstStartMs: number
    /** Σ over the node pairs of seenDoneMs (the leader seeing a node done, beyond min-ready). */
    seenDoneMs: number
    /** Σ of nextToldMs (commit → the next node starting its switch). */
    nextToldMs: number
    /** The last node's settledAt + min-ready → finishedAt. */
    lastMs: number
  }
  maxConcurrentSwitches: number
  maxUpdatingInRecord: number
  maxOutOfRotation: number
  rotationSamples: number
  outOfRotationEvents: Array<{ atMs: number; out: Array<{ node: string; states: string[] }> }>
  notAliveInManagerView: Array<{ node: string; state: string; fromMs: number; toMs: number }>
  cpu: Awaited<ReturnType<Awaited<ReturnType<typeof cpuWindow>>>>
  hostQuietBefore: { waitedS: number; quiet: boolean }
  /** Other processes' CPU in the 2 s before the load began (after waiting up to 60 s for < 0.5 core). */
  othersBefore: { waitedS: number; otherCores: number; quiet: boolean }
  load: {
    rate: number
    connections: number
    paths: string[]
    sent: number
    failed: number
    detail: Record<string, number>
    p99Ms: number
  }
}

async function measureRolling(dirs: TempDirs, notes: string[]): Promise<RollingRun[]> {
  const n = ROLLING_NODES
  const agents: Agent[] = []
  const runs: RollingRun[] = []
  let lb: ChildProcess | undefined
  const hostQuietBefore = await waitQuiet('the rolling update', notes)
  try {
    const { work, key, flags } = await clusterKeys(dirs)
    await startCluster(n, dirs, flags, agents)
    await until(`${n} agents with one manager`, () => steady(agents), 60_000)
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const client = new ApiClient(agents[0]!.info.api)
    for (const version of ['1.0', '1.1'] as const)
      await publish(client, { dir: builds[version], name: 'educa', version, keyFile: key, progress: false })
    await until('both versions complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) => getJson<Array<{ complete: boolean }>>(a.info.api, '/api/distributions')),
      )
      return lists.every((l) => l.length === 2 && l.every((d) => d.complete))
    })
    const first = await client.post<RolloutView>('/api/rollouts', { json: { distribution: 'educa@1.0' } })
    await until(
      'educa@1.0 everywhere',
      async () => (await client.get<RolloutView>(`/api/rollouts/${first.id}`)).state === 'done',
      120_000,
    )
    const started = await startLb({
      port: await freePort(),
      data: await dirs.make('shoal-bench-mgr-lb-'),
      bootstrap: tcpAddrs(agents[0]!),
      flags: flags.slice(0, 2),
    })
    lb = started.child
    const versions = ['educa@1.0', 'educa@1.1']
    for (let i = 0; i < ROLLING_RUNS; i++) {
      const from = versions[i % 2]!
      const to = versions[(i + 1) % 2]!
      runs.push(await rollingRun(agents, client, started, from, to, notes, hostQuietBefore))
    }
  } catch (err) {
    notes.push(`rolling update: ${String(err)}`)
    console.error(err)
  } finally {
    if (lb != null) await terminate(lb)
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
  }
  return runs
}

async function rollingRun(
  agents: Agent[],
  client: ApiClient,
  lbProcess: { url: string; admin: string },
  from: string,
  to: string,
  notes: string[],
  hostQuietBefore: { waitedS: number; quiet: boolean },
): Promise<RollingRun> {
  const n = agents.length
  const { url: lbUrl, admin: lbAdmin } = lbProcess
  let load: ReturnType<typeof steadyLoad> | undefined
  const inRotation = async () =>
    new Set(
      (await getJson<ProxyStatus>(lbAdmin, '/_shoal/lb')).backends
        .filter((b) => b.state === 'ready' && !b.ejected)
        .map((b) => b.node),
    ).size
  await until(`${n} backends ready in the load balancer`, async () => (await inRotation()) === n)
  await until(`${n} agents steady`, () => steady(agents), 60_000)
  await sleep(3000)
  // A shared host: wait (a while) for other processes' bursts to pass; the run's CPU says how busy it was.
  const othersBefore = await othersQuiet(0.5, 60)
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  try {
    // Sampled every 100 ms: the load balancer's rotation, and the leader's own view of
    // the members and of the rollout (the engine counts only members it sees alive).
    const managerId = (await getJson<{ manager: string }>(agents[0]!.info.api, '/api/manager')).manager
    const managerApi = agents.find((a) => a.info.id === managerId)?.info.api ?? agents[0]!.info.api
    const ids = agents.map((a) => a.info.id)
    let rolloutId: string | null = null
    let maxOut = 0
    let maxUpdating = 0
    let samples = 0
    /** When the sampler first saw each node `done` in the leader's published record (wall clock, 100 ms polls). */
    const doneSeen = new Map<string, number>()
    const outEvents: RollingRun['outOfRotationEvents'] = []
    const notAlive: RollingRun['notAliveInManagerView'] = []
    const open = new Map<string, { node: string; state: string; fromMs: number; toMs: number }>()
    let observedFrom = performance.now()
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const next = performance.now() + 100
        const [lbStatus, members, rolloutView] = await Promise.all([
          getJson<ProxyStatus>(lbAdmin, '/_shoal/lb', 2000).catch(() => null),
          getJson<MemberView[]>(managerApi, '/api/members', 2000).catch(() => null),
          rolloutId == null
            ? null
            : getJson<RolloutView>(managerApi, `/api/rollouts/${rolloutId}`, 2000).catch(() => null),
        ])
        const atMs = Math.round(performance.now() - observedFrom)
        if (lbStatus != null) {
          const ready = new Set(
            lbStatus.backends.filter((b) => b.state === 'ready' && !b.ejected).map((b) => b.node),
          )
          const out = ids.filter((id) => !ready.has(id))
          maxOut = Math.max(maxOut, out.length)
          samples++
          if (out.length > 1 && outEvents.length < 30)
            outEvents.push({
              atMs,
              out: out.map((id) => ({
                node: id.slice(-8),
                states: lbStatus.backends
                  .filter((b) => b.node === id)
                  .map((b) => `${b.component}:${b.state}${b.ejected ? ':ejected' : ''}`),
              })),
            })
        }
        if (members != null)
          for (const id of ids) {
            const state = members.find((m) => m.id === id)?.state ?? 'missing'
            const current = open.get(id)
            if (state === 'alive') {
              if (current != null) open.delete(id)
            } else if (current == null || current.state !== state) {
              const entry = { node: id.slice(-8), state, fromMs: atMs, toMs: atMs }
              open.set(id, entry)
              notAlive.push(entry)
            } else current.toMs = atMs
          }
        if (rolloutView != null) {
          maxUpdating = Math.max(
            maxUpdating,
            rolloutView.members.filter((m) => m.status === 'updating').length,
          )
          const wall = Date.now()
          for (const m of rolloutView.members)
            if (m.status === 'done' && !doneSeen.has(m.id)) doneSeen.set(m.id, wall)
        }
        await sleep(Math.max(0, next - performance.now()))
      }
    })()
    load = steadyLoad(lbUrl)
    const rate = { rate: load.rate, connections: load.connections }
    await sleep(2000)
    const cpu = await cpuWindow()
    observedFrom = performance.now()
    const rollout = await client.post<RolloutView>('/api/rollouts', {
      json: { distribution: to, strategy: 'rolling', maxUnavailable: 1 },
    })
    rolloutId = rollout.id
    let view: RolloutView | undefined
    await until(
      'the rolling update to finish',
      async () => {
        view = await client.get<RolloutView>(`/api/rollouts/${rollout.id}`)
        return view.state !== 'running'
      },
      240_000,
    )
    const observedMs = Math.round(performance.now() - observedFrom)
    const cpuUse = await cpu()
    await sleep(1000)
    load.stop()
    const result = await load.done
    load = undefined
    sampling = false
    await sampler
    if (view?.state !== 'done')
      notes.push(`rolling update ${from} → ${to} ended ${view?.state}: ${view?.reason}`)

    const statuses = await Promise.all(
      agents.map(async (a) => ({
        id: a.info.id,
        status: await getJson<RuntimeStatus>(a.info.api, '/api/components'),
      })),
    )
    const at = (iso: string | null | undefined) => Date.parse(iso ?? '')
    const minReadyMs = view!.minReadyMs
    const updatingSince = view!.updatingSince ?? {}
    const nodes: NodeSwitch[] = statuses.map(({ id, status }) => {
      const t = status.lastSwitch
      if (status.active !== to || t?.to !== to || t.settledAt == null)
        notes.push(`node ${id} ended on ${status.active} (last switch ${JSON.stringify(t)})`)
      return {
        id,
        startedMs: at(t?.startedAt) - at(view!.startedAt),
        settledMs: at(t?.settledAt) - at(view!.startedAt),
        installMs: at(t?.installedAt) - at(t?.startedAt),
        drainStartMs: at(t?.spawnedAt) - at(t?.installedAt),
        readinessMs: at(t?.settledAt) - at(t?.spawnedAt),
        readyMs: t?.readyAt == null ? null : at(t.readyAt) - at(t.spawnedAt),
        seenDoneMs: null,
        nextToldMs: null,
        doneSeenMs: doneSeen.has(id) && t?.settledAt != null ? doneSeen.get(id)! - at(t.settledAt) : null,
        startedAt: t?.startedAt ?? '',
        settledAt: t?.settledAt ?? '',
      }
    })
    nodes.sort((a, b) => at(a.startedAt) - at(b.startedAt))
    for (const [i, node] of nodes.entries()) {
      const next = nodes[i + 1]
      const told = next == null ? null : at(updatingSince[next.id])
      if (next == null || told == null || Number.isNaN(told)) continue
      node.seenDoneMs = told - minReadyMs - at(node.settledAt)
      node.nextToldMs = at(next.startedAt) - told
    }
    const sum = (values: number[]) => values.reduce((s, v) => s + v, 0)
    const drainStart = sum(nodes.map((s) => s.drainStartMs))
    const readiness = sum(nodes.map((s) => s.readinessMs))
    const install = sum(nodes.map((s) => s.installMs))
    const denominator = drainStart + readiness + n * minReadyMs
    const durationMs = at(view!.finishedAt) - at(view!.startedAt)
    let maxConcurrent = 0
    for (const s of nodes)
      maxConcurrent = Math.max(
        maxConcurrent,
        nodes.filter((o) => at(o.startedAt) <= at(s.startedAt) && at(s.startedAt) < at(o.settledAt)).length,
      )
    const last = nodes.at(-1)
    return {
      n,
      from,
      to,
      strategy: 'rolling',
      maxUnavailable: view!.maxUnavailable,
      minReadyMs,
      state: view!.state,
      loadAverageAtStart,
      durationMs,
      observedMs,
      nodes,
      denominator: {
        definition:
          'Σ over nodes of (spawnedAt − installedAt) [drain through the LB + stop old + launch new] + (settledAt − spawnedAt) [readiness, then the old drained] + minReadyMs',
        drainStartMs: drainStart,
        readinessMs: readiness,
        minReadyMs: n * minReadyMs,
        totalMs: denominator,
        installMsNotIncluded: install,
      },
      ratio: round(durationMs / denominator, 2),
      ratioWithInstall: round(durationMs / (denominator + install), 2),
      handOverMs: durationMs - drainStart - readiness - install - n * minReadyMs,
      handOver: {
        firstStartMs: nodes[0] == null ? 0 : nodes[0].startedMs,
        seenDoneMs: sum(nodes.map((s) => s.seenDoneMs ?? 0)),
        nextToldMs: sum(nodes.map((s) => s.nextToldMs ?? 0)),
        lastMs: last == null ? 0 : at(view!.finishedAt) - at(last.settledAt) - minReadyMs,
      },
      maxConcurrentSwitches: maxConcurrent,
      maxUpdatingInRecord: maxUpdating,
      maxOutOfRotation: maxOut,
      rotationSamples: samples,
      outOfRotationEvents: outEvents,
      notAliveInManagerView: notAlive,
      cpu: cpuUse,
      hostQuietBefore,
      othersBefore,
      load: {
        rate: rate.rate,
        connections: rate.connections,
        paths: ['/', '/slow?ms=100'],
        sent: result.requests.sent,
        failed: result.errors + result.timeouts + result.non2xx,
        detail: {
          ...(result.errors > 0 ? { errors: result.errors } : {}),
          ...(result.timeouts > 0 ? { timeouts: result.timeouts } : {}),
          ...(result.non2xx > 0 ? { non2xx: result.non2xx } : {}),
        },
        p99Ms: result.latency.p99,
      },
    }
  } finally {
    load?.stop()
  }
}
