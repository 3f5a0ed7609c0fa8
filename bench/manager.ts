/**
 * Manager benchmark (issue 6). Everything runs as separate agent processes with the
 * `lan` preset, the default for `shoal agent`.
 * 1. Failover at N = 5 and 10. The manager's agent gets SIGKILL. Every survivor's
 *    GET /api/manager is polled every ~20 ms until a new manager acts (its own
 *    view: `self` and `acting`, a higher term) and until every survivor follows it
 *    with quorum. One survivor's member list shows when the old manager was
 *    suspected and declared dead. The killed agent is then restarted on its data
 *    folder (same identity), so every kill happens at N alive agents of N voters.
 * 2. A rolling update of educa 1.0 → 1.1 on 10 nodes behind `shoal lb` (the
 *    built-in proxy), `--strategy rolling --max-unavailable 1` with the default
 *    min-ready, under a steady 100 req/s load. It reports the duration ÷ the sum
 *    over the nodes of drain + stop + start, readiness and min-ready (from each
 *    node's `lastSwitch`), the failed requests, and the nodes out of rotation.
 */
import type { ChildProcess } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { MemberView } from '../src/api/index.js'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ProxyStatus } from '../src/loadbalancer/index.js'
import type { ManagerStatus, RolloutView } from '../src/manager/index.js'
import { type MembershipTimers, suspicionBounds } from '../src/membership/index.js'
import type { RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { presetTimers } from '../src/shared/presets.js'
import { startLb } from './lb-process.js'
import { type Started, startProcess, terminate } from './processes.js'
import {
  clockTicks,
  hostCpu,
  machine,
  milestones,
  quietHost,
  round,
  source,
  TempDirs,
  table,
} from './util.js'

const _CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const PRESET = 'lan'
/** Manager tick of the preset (src/shared/presets.ts, not configurable). */
const MANAGER_TICK_MS = presetTimers(PRESET).manager.tickMs
const KILLS_PER_SIZE = 5
const POLL_MS = 20
/** Idle time before each kill, so probes have connected every agent to every other. */
const SETTLE_MS = 3000
const ROLLING_NODES = 10
const LOAD_RATE = 100
const LOAD_CONNECTIONS = 10

type ManagerView = ManagerStatus & { stateTerm: number; stateSeq: number }
export type Agent = Started & { dataDir: string }

interface FailoverRun {
  killed: string
  oldTerm: number
  newManager: string | null
  newTerm: number | null
  /** The new manager is the smallest surviving id, as the election says. */
  expectedSuccessor: boolean
  /** SIGKILL → the new manager's view lists the old one suspect (or dead). */
  suspectedMs: number | null
  /** SIGKILL → … lists it dead: until then a suspected manager keeps its place. */
  deadMs: number | null
  /** SIGKILL → the new manager reports itself acting (self, quorum, higher term). */
  actingMs: number | null
  /** SIGKILL → every survivor follows the new manager at its term with quorum. */
  agreedMs: number | null
  /** Mean time between two polls of all survivors. */
  pollPeriodMs: number
  /** Host CPU from the kill to the end of polling: this bench's processes and everything else. */
  cpu: CpuUse | null
}

interface CpuUse {
  busyCores: number
  /** The bench process and its descendants (agents, components, the load balancer). */
  benchCores: number
  /** Other processes on the host. */
  otherCores: number
}

interface FailoverSize {
  n: number
  suspicionMs: { min: number; max: number }
  runs: FailoverRun[]
  actingMs: { median: number | null; max: number | null }
  agreedMs: { median: number | null; max: number | null }
  deadMs: { median: number | null; max: number | null }
  loadAverageAtStart: number
  hostQuietBefore: { waitedS: number; quiet: boolean }
}

interface NodeSwitch {
  id: string
  /** requestedAt of the rollout → this node's startedAt and settledAt. */
  startedMs: number
  settledMs: number
  /** startedAt → installedAt: unpacking (not in the denominator). */
  installMs: number
  /** installedAt → spawnedAt: drained through the load balancer, old components stopped, new launched. */
  drainStartMs: number
  /** spawnedAt → settledAt: every new component healthy. */
  readinessMs: number
  startedAt: string
  settledAt: string
}

export async function runManager(options: { sizes: number[] }) {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const failover: FailoverSize[] = []
  let rolling: Awaited<ReturnType<typeof measureRolling>> | null = null
  let timers: MembershipTimers | null = null
  const loadAverageAtSuiteStart = round(loadavg()[0] ?? 0, 2)
  try {
    for (const n of options.sizes) {
      const result = await measureFailover(n, dirs, notes)
      failover.push(result.size)
      timers ??= result.timers
    }
    rolling = await measureRolling(dirs, notes)
  } catch (err) {
    notes.push(`benchmark failed: ${String(err)}`)
    console.error(err)
  } finally {
    await dirs.removeAll()
  }

  const targets = [
    ...failover.map((f) => ({
      target: `failover ≤ 2 s at N=${f.n} (every run)`,
      measured: `median ${f.actingMs.median} ms, max ${f.actingMs.max} ms`,
      pass: f.actingMs.max != null && f.actingMs.max <= 2000 && f.runs.every((r) => r.actingMs != null),
    })),
    {
      target: 'rolling update of 10 nodes ÷ Σ(drain + start + readiness) ≤ 1.25',
      measured: rolling == null ? 'not measured' : String(rolling.ratio),
      pass: rolling != null && rolling.ratio <= 1.25,
    },
    {
      target: '0 failed requests through the load balancer during the rolling update',
      measured: rolling == null ? 'not measured' : `${rolling.load.failed} of ${rolling.load.sent}`,
      pass: rolling != null && rolling.load.failed === 0,
    },
  ]
  const report = {
    suite: 'manager',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      preset: PRESET,
      membershipTimers: timers,
      managerTickMs: MANAGER_TICK_MS,
      killsPerSize: KILLS_PER_SIZE,
      pollMs: POLL_MS,
      settleBeforeKillMs: SETTLE_MS,
      loadAverageAtSuiteStart,
    },
    failover,
    rolling,
    targets,
    notes,
  }
  const ms = (v: number | null) => (v == null ? null : v)
  const text = [
    `failover (preset ${PRESET}; SIGKILL of the manager's agent → …), ms`,
    table(
      [
        'N',
        'run',
        'suspected',
        'dead',
        'new manager acting',
        'all survivors follow',
        'term',
        'poll period',
        'bench / other cores',
      ],
      failover.flatMap((f) =>
        f.runs.map((r, i) => [
          f.n,
          i + 1,
          ms(r.suspectedMs),
          ms(r.deadMs),
          ms(r.actingMs),
          ms(r.agreedMs),
          `${r.oldTerm} → ${r.newTerm ?? '-'}`,
          r.pollPeriodMs,
          r.cpu == null ? null : `${r.cpu.benchCores} / ${r.cpu.otherCores}`,
        ]),
      ),
    ),
    table(
      ['N', 'acting median', 'acting max', 'agreed median', 'agreed max', 'dead median'],
      failover.map((f) => [
        f.n,
        f.actingMs.median,
        f.actingMs.max,
        f.agreedMs.median,
        f.agreedMs.max,
        f.deadMs.median,
      ]),
    ),
    '',
    rolling == null
      ? 'rolling update: not measured'
      : [
          `rolling update educa 1.0 → 1.1 on ${rolling.n} nodes (max-unavailable 1, min-ready ${rolling.minReadyMs} ms): ${rolling.durationMs} ms`,
          table(
            ['node', 'install', 'drain + start', 'readiness'],
            rolling.nodes.map((s) => [s.id.slice(-8), s.installMs, s.drainStartMs, s.readinessMs]),
          ),
          `denominator Σ(drain + start + readiness + min-ready) = ${rolling.denominator.totalMs} ms; ratio ${rolling.ratio} (with install: ${rolling.ratioWithInstall})`,
          `hand-over between nodes (duration − Σ switch − Σ min-ready): ${rolling.handOverMs} ms; max concurrent switches ${rolling.maxConcurrentSwitches}; max out of rotation (LB, ${rolling.rotationSamples} samples) ${rolling.maxOutOfRotation}`,
          `most nodes updating in the record ${rolling.maxUpdatingInRecord}; agents not alive in the manager's view: ${JSON.stringify(rolling.notAliveInManagerView)}`,
          `load: ${rolling.load.sent} sent, ${rolling.load.failed} failed ${JSON.stringify(rolling.load.detail)}; CPU ${JSON.stringify(rolling.cpu)}`,
        ].join('\n'),
    '',
    table(
      ['target', 'measured', ''],
      targets.map((t) => [t.target, t.measured, t.pass ? 'pass' : 'FAIL']),
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

// --- failover --------------------------------------------------------------------------

async function measureFailover(n: number, dirs: TempDirs, notes: string[]) {
  const agents: Agent[] = []
  const hostQuietBefore = await waitQuiet(`failover N=${n}`, notes)
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  try {
    await startCluster(n, dirs, [], agents)
    await until(`${n} agents with one manager`, () => steady(agents), 60_000)
    const status = await getJson<{ config: { timers: MembershipTimers } }>(agents[0]!.info.api, '/api/status')
    const timers = status.config.timers
    const runs: FailoverRun[] = []
    try {
      for (let i = 0; i < KILLS_PER_SIZE; i++) {
        await sleep(SETTLE_MS)
        await until(`${n} agents with one manager`, () => steady(agents), 30_000)
        const { run, dataDir } = await killManager(agents)
        runs.push(run)
        // The same agent (data folder, identity) comes back: a fresh one would grow the
        // voting set, and dead voters leave it only after voterRemovalMs (30 s).
        await restartAgent(dataDir, tcpAddrs(agents[0]!), agents)
        await until(`the killed agent back (N=${n}, run ${i + 1})`, () => steady(agents), 60_000)
      }
    } catch (err) {
      notes.push(`N=${n}: stopped after ${runs.length} kills: ${String(err)}`)
    }
    const stats = (values: Array<number | null>) => {
      const got = values.filter((v): v is number => v != null).sort((a, b) => a - b)
      return {
        median: got.length === 0 ? null : got[Math.floor((got.length - 1) / 2)]!,
        max: got.length === 0 ? null : got.at(-1)!,
      }
    }
    for (const [i, r] of runs.entries()) {
      if (r.actingMs == null) notes.push(`N=${n} run ${i + 1}: no new manager acted within 20 s`)
      if (!r.expectedSuccessor)
        notes.push(`N=${n} run ${i + 1}: the new manager was not the smallest survivor`)
    }
    const bounds = suspicionBounds(timers, n)
    return {
      timers,
      size: {
        n,
        suspicionMs: { min: round(bounds.min), max: round(bounds.max) },
        runs,
        actingMs: stats(runs.map((r) => r.actingMs)),
        agreedMs: stats(runs.map((r) => r.agreedMs)),
        deadMs: stats(runs.map((r) => r.deadMs)),
        loadAverageAtStart,
        hostQuietBefore,
      },
    }
  } finally {
    await Promise.all(agents.map((a) => terminate(a.child)))
  }
}

/** SIGKILLs the manager's agent (removed from `agents`) and times the hand-over. */
async function killManager(agents: Agent[]): Promise<{ run: FailoverRun; dataDir: string }> {
  const before = await getJson<ManagerView>(agents[0]!.info.api, '/api/manager')
  const oldId = before.manager!
  const victim = agents.find((a) => a.info.id === oldId)!
  const survivors = agents.filter((a) => a !== victim)
  // The election's candidate once no claimer is alive: the smallest alive id.
  const successor = survivors.map((a) => a.info.id).sort()[0]!
  const successorApi = survivors.find((a) => a.info.id === successor)!.info.api
  let newManager: string | null = null
  let newTerm: number | null = null
  let polls = 0
  const exited = new Promise<void>((resolve) => victim.child.once('exit', () => resolve()))
  const cpu = await cpuWindow()
  const since = performance.now()
  victim.child.kill('SIGKILL')
  const reached = await milestones(
    async () => {
      polls++
      const [views, members] = await Promise.all([
        Promise.all(
          survivors.map((a) => getJson<ManagerView>(a.info.api, '/api/manager', 1000).catch(() => null)),
        ),
        getJson<MemberView[]>(successorApi, '/api/members', 1000).catch(() => null),
      ])
      const old = members?.find((m) => m.id === oldId)
      const acting = views.find((v) => v?.self && v.acting && v.manager !== oldId && v.term > before.term)
      if (acting != null && newManager == null) {
        newManager = acting.manager
        newTerm = acting.term
      }
      return {
        suspected: old != null && old.state !== 'alive',
        dead: old?.state === 'dead',
        acting: acting != null,
        agreed:
          newManager != null &&
          views.every((v) => v != null && v.manager === newManager && v.term === newTerm && v.quorum),
      }
    },
    { since, capMs: 20_000, everyMs: POLL_MS },
  )
  const elapsed = performance.now() - since
  await exited
  const used = await cpu()
  agents.splice(agents.indexOf(victim), 1)
  const run = {
    killed: oldId,
    oldTerm: before.term,
    newManager,
    newTerm,
    expectedSuccessor: newManager === successor,
    suspectedMs: reached.suspected,
    deadMs: reached.dead,
    actingMs: reached.acting,
    agreedMs: reached.agreed,
    pollPeriodMs: round(elapsed / Math.max(1, polls)),
    cpu: used,
  }
  return { run, dataDir: victim.dataDir }
}

/** Every agent lists every other alive and follows one manager (acting, with quorum, same term). */
async function steady(agents: Agent[]): Promise<boolean> {
  const ids = agents.map((a) => a.info.id)
  const [views, managers] = await Promise.all([
    Promise.all(agents.map((a) => getJson<MemberView[]>(a.info.api, '/api/members'))),
    Promise.all(agents.map((a) => getJson<ManagerView>(a.info.api, '/api/manager'))),
  ])
  const allAlive = views.every((v) => ids.every((id) => v.some((m) => m.id === id && m.state === 'alive')))
  const first = managers[0]!
  return (
    allAlive &&
    first.manager != null &&
    ids.includes(first.manager) &&
    managers.every((m) => m.manager === first.manager && m.term === first.term && m.quorum) &&
    managers.some((m) => m.self && m.acting)
  )
}

// --- rolling update --------------------------------------------------------------------

async function measureRolling(dirs: TempDirs, notes: string[]) {
  const n = ROLLING_NODES
  const agents: Agent[] = []
  let lb: ChildProcess | undefined
  let load: { stop: () => void; done: Promise<autocannon.Result> } | undefined
  const hostQuietBefore = await waitQuiet('the rolling update', notes)
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  try {
    const work = await dirs.make('shoal-bench-mgr-')
    const key = join(work, 'publisher.key')
    await writeNewKeyPair(key)
    const trust = ['--trust', `${key}.pub`]
    await startCluster(n, dirs, trust, agents)
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
    })
    lb = started.child
    const { url: lbUrl, admin: lbAdmin } = started
    const inRotation = async () =>
      new Set(
        (await getJson<ProxyStatus>(lbAdmin, '/_shoal/lb')).backends
          .filter((b) => b.state === 'ready' && !b.ejected)
          .map((b) => b.node),
      ).size
    await until(`${n} backends ready in the load balancer`, async () => (await inRotation()) === n)
    await sleep(SETTLE_MS)

    // Sampled every 100 ms: the load balancer's rotation, and the manager's own view of
    // the members and of the rollout (the engine counts only members it sees alive).
    const managerId = (await getJson<ManagerView>(agents[0]!.info.api, '/api/manager')).manager
    const managerApi = agents.find((a) => a.info.id === managerId)?.info.api ?? agents[0]!.info.api
    const ids = agents.map((a) => a.info.id)
    let rolloutId: string | null = null
    let maxOut = 0
    let maxUpdating = 0
    let samples = 0
    const outEvents: Array<{ atMs: number; out: Array<{ node: string; states: string[] }> }> = []
    const notAlive: Array<{ node: string; state: string; fromMs: number; toMs: number }> = []
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
        if (rolloutView != null)
          maxUpdating = Math.max(
            maxUpdating,
            rolloutView.members.filter((m) => m.status === 'updating').length,
          )
        await sleep(Math.max(0, next - performance.now()))
      }
    })()
    load = steadyLoad(lbUrl)
    await sleep(2000)
    const cpu = await cpuWindow()
    observedFrom = performance.now()
    const rollout = await client.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'educa@1.1', strategy: 'rolling', maxUnavailable: 1 },
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
    if (view?.state !== 'done') notes.push(`rolling update ended ${view?.state}: ${view?.reason}`)

    const statuses = await Promise.all(
      agents.map(async (a) => ({
        id: a.info.id,
        status: await getJson<RuntimeStatus>(a.info.api, '/api/components'),
      })),
    )
    const at = (iso: string | null) => Date.parse(iso ?? '')
    const nodes: NodeSwitch[] = statuses.map(({ id, status }) => {
      const t = status.lastSwitch
      if (status.active !== 'educa@1.1' || t?.to !== 'educa@1.1' || t.settledAt == null)
        notes.push(`node ${id} ended on ${status.active} (last switch ${JSON.stringify(t)})`)
      return {
        id,
        startedMs: at(t?.startedAt ?? null) - at(view!.startedAt),
        settledMs: at(t?.settledAt ?? null) - at(view!.startedAt),
        installMs: at(t?.installedAt ?? null) - at(t?.startedAt ?? null),
        drainStartMs: at(t?.spawnedAt ?? null) - at(t?.installedAt ?? null),
        readinessMs: at(t?.settledAt ?? null) - at(t?.spawnedAt ?? null),
        startedAt: t?.startedAt ?? '',
        settledAt: t?.settledAt ?? '',
      }
    })
    nodes.sort((a, b) => at(a.startedAt) - at(b.startedAt))
    const sum = (values: number[]) => values.reduce((s, v) => s + v, 0)
    const minReadyMs = view!.minReadyMs
    const drainStart = sum(nodes.map((s) => s.drainStartMs))
    const readiness = sum(nodes.map((s) => s.readinessMs))
    const install = sum(nodes.map((s) => s.installMs))
    const denominator = drainStart + readiness + n * minReadyMs
    const durationMs = at(view!.finishedAt) - at(view!.startedAt)
    // Switches that ran at the same time (sweep over [startedAt, settledAt]).
    let maxConcurrent = 0
    for (const s of nodes)
      maxConcurrent = Math.max(
        maxConcurrent,
        nodes.filter((o) => at(o.startedAt) <= at(s.startedAt) && at(s.startedAt) < at(o.settledAt)).length,
      )
    return {
      n,
      strategy: 'rolling',
      maxUnavailable: view!.maxUnavailable,
      minReadyMs,
      state: view!.state,
      loadAverageAtStart,
      /** requestedAt → finishedAt of the rollout record (the manager's clock). */
      durationMs,
      /** The bench's own POST → first poll (every 100 ms) that saw it finished. */
      observedMs,
      nodes,
      denominator: {
        definition:
          'Σ over nodes of (spawnedAt − installedAt) [drain through the LB + stop old + launch new] + (settledAt − spawnedAt) [readiness] + minReadyMs',
        drainStartMs: drainStart,
        readinessMs: readiness,
        minReadyMs: n * minReadyMs,
        totalMs: denominator,
        installMsNotIncluded: install,
      },
      ratio: round(durationMs / denominator, 2),
      ratioWithInstall: round(durationMs / (denominator + install), 2),
      /** What is left: the manager seeing a node ready, its ticks, the next node learning its turn. */
      handOverMs: durationMs - drainStart - readiness - install - n * minReadyMs,
      maxConcurrentSwitches: maxConcurrent,
      /** Most nodes `updating` at once in the manager's record (sampled). */
      maxUpdatingInRecord: maxUpdating,
      maxOutOfRotation: maxOut,
      rotationSamples: samples,
      /** Samples with more than one node out of the load balancer's rotation (first 30). */
      outOfRotationEvents: outEvents,
      /** Agents the manager saw other than alive during the run, ms since the rollout was requested. */
      notAliveInManagerView: notAlive,
      cpu: cpuUse,
      hostQuietBefore,
      load: {
        rate: LOAD_RATE,
        connections: LOAD_CONNECTIONS,
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
    if (lb != null) await terminate(lb)
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
  }
}

/** A fixed-rate load (GET / and /slow?ms=100 in turn) that runs until stopped. */
export function steadyLoad(url: string) {
  let stop = () => {}
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: LOAD_CONNECTIONS,
        overallRate: LOAD_RATE,
        duration: 600,
        requests: [{ path: '/' }, { path: '/slow?ms=100' }],
      },
      (err, result) => (err == null ? resolve(result) : reject(err)),
    )
    stop = () => instance.stop()
  })
  return { stop: () => stop(), done }
}

// --- helpers ---------------------------------------------------------------------------

export async function startCluster(
  n: number,
  dirs: TempDirs,
  extra: string[],
  agents: Agent[],
): Promise<void> {
  const first = await startAgent(dirs, [], extra, agents)
  const boot = tcpAddrs(first)
  await Promise.all(Array.from({ length: n - 1 }, () => startAgent(dirs, boot, extra, agents)))
}

/** Starts one agent process (preset lan) and adds it to `agents` at once, so a failure still stops it. */
async function startAgent(dirs: TempDirs, boot: string[], extra: string[], agents: Agent[]): Promise<Agent> {
  const dataDir = await dirs.make('shoal-bench-mgr-node-')
  const agent = { ...(await startProcess(dataDir, boot, ['--preset', PRESET, ...extra])), dataDir }
  agents.push(agent)
  return agent
}

/** Starts an agent again on its data folder (same identity and persisted term). */
async function restartAgent(dataDir: string, boot: string[], agents: Agent[]): Promise<Agent> {
  const agent = { ...(await startProcess(dataDir, boot, ['--preset', PRESET])), dataDir }
  agents.push(agent)
  return agent
}

/** Waits up to 20 s for the host to be quiet before a phase; notes it when it was not. */
export async function waitQuiet(phase: string, notes: string[]) {
  const quiet = await quietHost({ limitCores: 0.3, maxWaitS: 20 })
  if (!quiet.quiet)
    notes.push(`${phase}: other processes used more than 0.3 core for ${quiet.waitedS} s before it began`)
  return quiet
}

/** Starts a CPU window: the returned function gives the host's use since, split into this bench and the rest. */
async function cpuWindow(): Promise<() => Promise<CpuUse | null>> {
  const host = hostCpu()
  const tree = await descendantTicks()
  const from = performance.now()
  return async () => {
    const used = host()
    const treeCores = ((await descendantTicks()) - tree) / clockTicks() / ((performance.now() - from) / 1000)
    if (used == null) return null
    const own = used.busyCores - used.foreignCores
    return {
      busyCores: used.busyCores,
      benchCores: round(own + treeCores, 2),
      otherCores: round(Math.max(0, used.foreignCores - treeCores), 2),
    }
  }
}

/**
 * CPU ticks of this process's descendants (utime + stime + cutime + cstime, so a child
 * that exits moves into its parent's count rather than vanishing), plus this process's
 * reaped children (cutime + cstime): the agents, their components, the load balancer.
 */
async function descendantTicks(): Promise<number> {
  const procs: Array<{ pid: number; ppid: number; ticks: number; reaped: number }> = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
    if (stat == null) continue
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const reaped = Number(f[13]) + Number(f[14])
    procs.push({ pid, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + reaped, reaped })
  }
  const tree = new Set([process.pid])
  for (let grew = true; grew; ) {
    grew = false
    for (const p of procs)
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.add(p.pid)
        grew = true
      }
  }
  return procs.reduce((sum, p) => sum + (p.pid === process.pid ? p.reaped : tree.has(p.pid) ? p.ticks : 0), 0)
}

export function tcpAddrs(agent: Agent): string[] {
  return agent.info.addrs.filter((a) => a.includes('/tcp/'))
}

export async function getJson<T>(base: string, path: string, timeoutMs = 3000): Promise<T> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`GET ${base}${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

/** Polls `check` (every 100 ms) until it holds; throws after `capMs`. */
export async function until(what: string, check: () => Promise<boolean>, capMs = 60_000): Promise<void> {
  const { held } = await milestones(async () => ({ held: await check().catch(() => false) }), {
    capMs,
    everyMs: 100,
  })
  if (held == null) throw new Error(`benchmark: timed out waiting for ${what}`)
}

/** SIGKILLs component processes an agent left behind (marked with its data folder). */
export async function reapComponents(dataDirs: string[]): Promise<void> {
  const marks = new Set(dataDirs.map((d) => `SHOAL_RUNTIME_DATA=${d}`))
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (environ.split('\0').some((v) => marks.has(v))) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  }
}
