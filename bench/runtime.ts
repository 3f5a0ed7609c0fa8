/**
 * Runtime benchmark: N separate agent processes with both versions of a sample
 * application already held everywhere; how long from the desired version being
 * recorded to every component ready on every node, split into install, start and
 * readiness, for a first rollout, a switch to a new version and a switch back.
 * Two applications, each on its own N fresh agents, in the same run:
 * - Node.js: examples/educa (web and catalog processes, switched make-before-break;
 *   the switch back reuses the installed folders);
 * - OSGi: examples/educa-osgi (bundles educa.api, educa.catalog and educa.web, DS
 *   components in one framework JVM per node, updated in place; web is drained
 *   first, so it is out of rotation during the update). Also: the framework's first
 *   start, and that later switches keep it.
 * During every rollout each node's GET /api/components is polled to see when its
 * web component left rotation and came back. Then agent and component (process or
 * framework JVM) CPU and memory while supervising. Baseline, same run: educa's two
 * Node.js components started directly with `node` and polled for health every
 * 10 ms, i.e. how fast the app itself can be up.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import * as tar from 'tar'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { RolloutView } from '../src/manager/index.js'
import type { ComponentStatus, RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { cpuTicks, memory, type Started, startProcess, terminate } from './processes.js'
import {
  type FrameworkStart,
  frameworkLogSize,
  frameworkStart,
  maximum,
  median,
  type OsgiSetup,
  parentPid,
  prepareOsgi,
  webServerEvents,
} from './runtime-osgi.js'
import { clockTicks, hostCpu, machine, round, source, TempDirs, table } from './util.js'

const WINDOW_S = 10
/** The sample app's build script, from the compiled bench (dist/bench → examples). */
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
/** Each agent's /api/components is polled this often per 3 agents (20 ms at N=3, 80 ms at N=10). */
const POLL_MS_PER_3 = 20

type Kind = 'node' | 'osgi'

const STEPS = [
  ['first rollout 1.0', '1.0'],
  ['switch 1.0 → 1.1', '1.1'],
  ['back 1.1 → 1.0 (installed)', '1.0'],
] as const

/** One node in one switch; times in ms from the desired version being recorded. */
interface NodeSwitch {
  node: number
  /** lastSwitch from the node's GET /api/components. */
  startedMs: number
  installedMs: number | null
  spawnedMs: number | null
  readyMs: number | null
  settledMs: number | null
  /** Its web component first seen out of rotation (no instance `ready`; polled) … */
  webOutMs: number | null
  /** … and the new version's web first seen `ready`. */
  webReadyMs: number | null
  /** Out → back in rotation (any web `ready`): 0 when some instance stayed ready throughout (make before break). */
  outOfRotationMs: number | null
  /** Of that, seen `draining` (OSGi: the bundles being updated in place) … */
  drainingMs: number | null
  /** … and then `starting` (updated, until its health check passes). */
  startingMs: number | null
  /** OSGi: the framework JVM's pid after this switch. */
  frameworkPid?: number | null
  /** OSGi: how often educa.web's HTTP server stopped (HttpServer.stop(1)) and started during the switch (its log). */
  webServerStops?: number
  webServerStarts?: number
}

interface SwitchRow {
  n: number
  step: string
  /** Desired version recorded → rollout seen done by the asking agent (its 50 ms polls). */
  totalMs: number
  /** Recorded → each node began its switch (gossip + reconcile), max over nodes. */
  propagationMs: number
  /** Unpacking packages and config, max over nodes (OSGi: also the in-place bundle update). */
  installMs: number
  /** Stopping the old components and launching the new, max over nodes. */
  startMs: number
  /** Launch → every component healthy, max over nodes. */
  readinessMs: number
  kind: Kind
  distribution: string
  /** Recorded → the last node's lastSwitch.settledAt. */
  lastSettledMs: number | null
  /** Recorded → the last node's web of the new version ready (polled). */
  lastWebReadyMs: number | null
  /** Web out of rotation per node (null on the first rollout): max and median over nodes. */
  webOutOfRotationMaxMs: number | null
  webOutOfRotationMedianMs: number | null
  /** OSGi: every node kept its framework JVM from the previous step (null on the first). */
  frameworkKept?: boolean | null
  pollMs: number
  nodes: NodeSwitch[]
}

interface Supervising {
  n: number
  agentCpuPercent: number
  agentRssMB: number
  agentPrivateMB: number
  componentsPerAgent: number
  componentRssMB: number
  componentPrivateMB: number
  foreignCores: number | null
  kind: Kind
  /** Mean over the component processes (Node.js processes, or the framework JVM). */
  componentCpuPercent: number
  componentPeakRssMB: number
  /** foreignCores less what the agents and their components used: truly other processes. */
  otherCores: number | null
}

interface ClusterResult {
  switches: SwitchRow[]
  supervising: Supervising
  frameworkStarts: FrameworkStart[]
  notes: string[]
}

export async function runRuntime(options: { sizes: number[] }) {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const switches: SwitchRow[] = []
  const supervising: Supervising[] = []
  const osgiSwitches: SwitchRow[] = []
  const osgiSupervising: Supervising[] = []
  const frameworkStarts: Array<{ n: number; nodes: FrameworkStart[] }> = []
  let baseline: { web: number; catalog: number } | null = null
  let osgi: OsgiSetup | null = null
  let osgiSkipped: string | null = null
  try {
    const work = await dirs.make('shoal-bench-runtime-')
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const prepared = await prepareOsgi(join(work, 'build-osgi'))
    osgi = prepared.setup
    osgiSkipped = prepared.skipped
    if (osgiSkipped != null) notes.push(`OSGi case skipped: ${osgiSkipped}`)
    const key = join(work, 'publisher.key')
    await writeNewKeyPair(key)
    baseline = await directStart(builds['1.0'], work)
    for (const n of options.sizes) {
      const result = await measureCluster(n, 'node', { name: 'educa', builds }, key, dirs)
      switches.push(...result.switches)
      supervising.push(result.supervising)
      notes.push(...result.notes)
      if (osgi == null) continue
      const o = await measureCluster(n, 'osgi', { name: 'educa-osgi', builds: osgi.builds }, key, dirs)
      osgiSwitches.push(...o.switches)
      osgiSupervising.push(o.supervising)
      frameworkStarts.push({ n, nodes: o.frameworkStarts })
      notes.push(...o.notes)
    }
  } finally {
    await dirs.removeAll()
  }
  const firstInstall = (n: number) => osgiSwitches.find((s) => s.n === n && s.step === STEPS[0][0])
  const laterInstalls = (n: number) => osgiSwitches.filter((s) => s.n === n && s.step !== STEPS[0][0])
  const report = {
    suite: 'runtime',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    baselineDirectStartMs: baseline,
    switches,
    supervising,
    osgi: {
      distribution: 'educa-osgi',
      skipped: osgiSkipped,
      framework: osgi?.framework ?? null,
      java: osgi?.java ?? null,
      jvmHeap: osgi?.heap ?? null,
      switches: osgiSwitches,
      frameworkStart: frameworkStarts.map(({ n, nodes }) => ({
        n,
        launchedMedianMs: median(nodes.map((f) => f.launchedMs)),
        upMedianMs: median(nodes.map((f) => f.upMs)),
        upMaxMs: maximum(nodes.map((f) => f.upMs)),
        /** First rollout's install phase (framework start + bundles), max over nodes, vs the later switches'. */
        firstRolloutInstallMs: firstInstall(n)?.installMs ?? null,
        laterSwitchInstallMs: laterInstalls(n).map((s) => s.installMs),
        nodes,
      })),
      supervising: osgiSupervising,
    },
    notes,
  }
  const all = [...switches, ...osgiSwitches].sort(
    (a, b) =>
      a.n - b.n ||
      STEPS.findIndex(([s]) => s === a.step) - STEPS.findIndex(([s]) => s === b.step) ||
      a.kind.localeCompare(b.kind),
  )
  const text = [
    `direct start to healthy (baseline): web ${baseline?.web} ms, catalog ${baseline?.catalog} ms`,
    '',
    table(
      [
        'N',
        'kind',
        'step',
        'total ms',
        'last settled',
        'propagation',
        'install',
        'start',
        'readiness',
        'web back (last)',
        'web out max',
        'web out median',
      ],
      all.map((s) => [
        s.n,
        s.kind === 'node' ? 'Node.js' : 'OSGi',
        s.step,
        s.totalMs,
        s.lastSettledMs,
        s.propagationMs,
        s.installMs,
        s.startMs,
        s.readinessMs,
        s.lastWebReadyMs,
        s.webOutOfRotationMaxMs,
        s.webOutOfRotationMedianMs,
      ]),
    ),
    `web back: the new version's web component seen ready (each node's /api/components polled every ${POLL_MS_PER_3} ms per 3 agents); web out: no web instance ready on the node.`,
    'OSGi: install = config + the in-place bundle update (drain included; the framework start too on the first rollout); no process starts, so start and readiness are ~0.',
    '',
    ...(osgiSwitches.length === 0
      ? []
      : [
          'OSGi web bundle per node (ms from the rollout recorded; out = draining + starting):',
          table(
            [
              'N',
              'step',
              'node',
              'began',
              'applied',
              'settled',
              'web out',
              'web back',
              'draining',
              'starting',
              'out of rotation',
              'server stops/starts',
              'JVM pid',
            ],
            osgiSwitches.flatMap((s) =>
              s.nodes.map((x) => [
                s.n,
                s.step,
                x.node,
                x.startedMs,
                x.installedMs,
                x.settledMs,
                x.webOutMs,
                x.webReadyMs,
                x.drainingMs,
                x.startingMs,
                x.outOfRotationMs,
                `${x.webServerStops ?? '-'}/${x.webServerStarts ?? '-'}`,
                x.frameworkPid ?? null,
              ]),
            ),
          ),
          '',
          'OSGi framework first start (first rollout; later switches keep it):',
          table(
            [
              'N',
              'node',
              'JVM launched after',
              'JVM → agent port',
              'launcher: framework',
              'launcher: agent active',
            ],
            frameworkStarts.flatMap(({ n, nodes }) =>
              nodes.map((f) => [n, f.node, f.launchedMs, f.upMs, f.launcherFrameworkMs, f.launcherAgentMs]),
            ),
          ),
          '',
        ]),
    table(
      [
        'N',
        'kind',
        'agent CPU %',
        'agent RSS MB',
        'agent private MB',
        'components',
        'component CPU %',
        'component RSS MB',
        'component private MB',
        'component peak RSS MB',
        'other cores',
      ],
      [...supervising, ...osgiSupervising]
        .sort((a, b) => a.n - b.n || a.kind.localeCompare(b.kind))
        .map((s) => [
          s.n,
          s.kind === 'node' ? 'Node.js' : 'OSGi (JVM)',
          s.agentCpuPercent,
          s.agentRssMB,
          s.agentPrivateMB,
          s.componentsPerAgent,
          s.componentCpuPercent,
          s.componentRssMB,
          s.componentPrivateMB,
          s.componentPeakRssMB,
          s.otherCores,
        ]),
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

interface App {
  name: string
  builds: Record<'1.0' | '1.1', string>
}

/** N fresh agents; publishes both versions of `app`, then rolls out 1.0, 1.1 and 1.0 again; then idles them. */
async function measureCluster(n: number, kind: Kind, app: App, key: string, dirs: TempDirs) {
  const agents: Array<Started & { dataDir: string }> = []
  const notes: string[] = []
  try {
    const trust = ['--trust', `${key}.pub`, '--log-level', 'error']
    const firstDir = await dirs.make('shoal-bench-rt-')
    agents.push({ ...(await startProcess(firstDir, [], trust)), dataDir: firstDir })
    const boot = agents[0]!.info.addrs.filter((a) => a.includes('/tcp/'))
    const rest = await Promise.all(
      Array.from({ length: n - 1 }, async () => {
        const dataDir = await dirs.make('shoal-bench-rt-')
        return { ...(await startProcess(dataDir, boot, trust)), dataDir }
      }),
    )
    agents.push(...rest)
    const client = new ApiClient(agents[0]!.info.api)
    await until(`${n} members`, async () => {
      const views = await Promise.all(
        agents.map((a) => new ApiClient(a.info.api).get<unknown[]>('/api/members')),
      )
      return views.every((v) => v.length === n)
    })
    for (const version of ['1.0', '1.1'] as const)
      await publish(client, {
        dir: app.builds[version],
        name: app.name,
        version,
        keyFile: key,
        progress: false,
      })
    await until('both versions complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) => new ApiClient(a.info.api).get<Array<{ complete: boolean }>>('/api/distributions')),
      )
      return lists.every((l) => l.length === 2 && l.every((d) => d.complete))
    })

    const switches: SwitchRow[] = []
    const frameworkStarts: FrameworkStart[] = []
    const pollMs = POLL_MS_PER_3 * Math.ceil(n / 3)
    let pids: Array<number | null> | null = null
    for (const [step, version] of STEPS) {
      const distribution = `${app.name}@${version}`
      const logSizes = await Promise.all(agents.map((a) => frameworkLogSize(a.dataDir)))
      const watch = watchWeb(agents, pollMs)
      await sleep(2 * pollMs)
      const recordedAt = Date.now()
      let last: RolloutView | undefined
      let doneAt: number
      try {
        const rollout = await client.post<RolloutView>('/api/rollouts', { json: { distribution } })
        doneAt = await until(`${distribution} done`, async () => {
          last = await client.get<RolloutView>(`/api/rollouts/${rollout.id}`)
          return last.state === 'done' || last.state === 'failed'
        })
      } finally {
        await watch.stop()
      }
      if (last?.state === 'failed') throw new Error(`rollout failed: ${JSON.stringify(last.members)}`)
      const statuses = await Promise.all(
        agents.map((a) => new ApiClient(a.info.api).get<RuntimeStatus>('/api/components')),
      )
      const timings = statuses.map((s) => s.lastSwitch!)
      const ms = (from: string | null, to: string | null) => Date.parse(to!) - Date.parse(from!)
      const since = (at: string | null) => (at == null ? null : Date.parse(at) - recordedAt)
      const first = step === STEPS[0][0]
      const framework = statuses.map((s) => (kind === 'osgi' ? frameworkPidOf(s.components) : null))
      const events =
        kind === 'osgi'
          ? await Promise.all(agents.map((a, i) => webServerEvents(a.dataDir, logSizes[i]!)))
          : []
      const nodes = timings.map((t, i): NodeSwitch => {
        const rotation = outOfRotation(watch.samples[i]!, recordedAt, distribution, first)
        return {
          node: i + 1,
          startedMs: since(t.startedAt)!,
          installedMs: since(t.installedAt),
          spawnedMs: since(t.spawnedAt),
          readyMs: since(t.readyAt),
          settledMs: since(t.settledAt),
          ...rotation,
          ...(kind === 'osgi' ? { frameworkPid: framework[i], ...events[i] } : {}),
        }
      })
      if (kind === 'osgi') {
        if (first)
          for (const [i, a] of agents.entries())
            if (framework[i] != null)
              frameworkStarts.push(await frameworkStart(i + 1, a.dataDir, framework[i]!, recordedAt))
        if (framework.some((pid, i) => pid == null || (pids != null && pids[i] !== pid)) && !first)
          notes.push(
            `OSGi N=${n}, ${step}: a framework JVM changed or is missing (pids ${framework.join(', ')})`,
          )
      }
      switches.push({
        n,
        step,
        totalMs: doneAt - recordedAt,
        propagationMs: Math.max(...timings.map((t) => Date.parse(t.startedAt) - recordedAt)),
        installMs: Math.max(...timings.map((t) => ms(t.startedAt, t.installedAt))),
        startMs: Math.max(...timings.map((t) => ms(t.installedAt, t.spawnedAt))),
        readinessMs: Math.max(...timings.map((t) => ms(t.spawnedAt, t.settledAt))),
        kind,
        distribution,
        lastSettledMs: maximum(nodes.map((x) => x.settledMs)),
        lastWebReadyMs: maximum(nodes.map((x) => x.webReadyMs)),
        webOutOfRotationMaxMs: maximum(nodes.map((x) => x.outOfRotationMs)),
        webOutOfRotationMedianMs: median(nodes.map((x) => x.outOfRotationMs)),
        ...(kind === 'osgi'
          ? {
              frameworkKept:
                pids == null ? null : framework.every((pid, i) => pid != null && pid === pids![i]),
            }
          : {}),
        pollMs,
        nodes,
      })
      pids = framework
    }

    // Supervising: idle agents with their components, sampled over a window.
    await sleep(3000)
    const ticks = clockTicks()
    const components = await Promise.all(agents.map((a) => markedPids(a.dataDir)))
    if (kind === 'osgi') {
      // The framework JVM is the agent's one child marked as its component, and the pid its bundles show.
      const parents = await Promise.all(components.map((c) => Promise.all(c.map(parentPid))))
      const ok = components.every(
        (c, i) => c.length === 1 && c[0] === pids?.[i] && parents[i]![0] === agents[i]!.child.pid,
      )
      if (!ok)
        notes.push(
          `OSGi N=${n}: marked processes ${JSON.stringify(components)} are not exactly each agent's framework JVM (${pids?.join(', ')})`,
        )
    }
    const agentPids = agents.map((a) => a.child.pid!)
    const componentPids = components.flat()
    const before = await Promise.all([...agentPids, ...componentPids].map(cpuTicks))
    const host = hostCpu()
    await sleep(WINDOW_S * 1000)
    const after = await Promise.all([...agentPids, ...componentPids].map(cpuTicks))
    const hostUse = host()
    const agentMem = await Promise.all(agentPids.map(memory))
    const componentMem = await Promise.all(componentPids.map(memory))
    const mean = (values: number[]) => round(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length))
    const cpu = after.map((t, i) => ((t - before[i]!) / ticks / WINDOW_S) * 100)
    const agentCpu = cpu.slice(0, agentPids.length)
    const componentCpu = cpu.slice(agentPids.length)
    const ours = cpu.reduce((a, b) => a + b, 0) / 100
    const result: ClusterResult = {
      switches,
      supervising: {
        n,
        agentCpuPercent: round(agentCpu.reduce((a, b) => a + b, 0) / agentCpu.length, 2),
        agentRssMB: mean(agentMem.map((m) => m.rssMB)),
        agentPrivateMB: mean(agentMem.map((m) => m.privateMB)),
        componentsPerAgent: round(componentPids.length / n),
        componentRssMB: mean(componentMem.map((m) => m.rssMB)),
        componentPrivateMB: mean(componentMem.map((m) => m.privateMB)),
        foreignCores: hostUse == null ? null : round(hostUse.foreignCores, 2),
        kind,
        componentCpuPercent: round(
          componentCpu.reduce((a, b) => a + b, 0) / Math.max(1, componentCpu.length),
          2,
        ),
        componentPeakRssMB: mean(componentMem.map((m) => m.peakRssMB)),
        otherCores: hostUse == null ? null : round(Math.max(0, hostUse.foreignCores - ours), 2),
      },
      frameworkStarts,
      notes,
    }
    return result
  } finally {
    await Promise.all(agents.map((a) => terminate(a.child)))
  }
}

/** The framework JVM's pid, as the node's bundle components show it. */
function frameworkPidOf(components: readonly ComponentStatus[]): number | null {
  return components.find((c) => c.name === 'web')?.pid ?? null
}

interface Sample {
  t: number
  /** `ready` while some web instance is ready, else the instances' states (`draining`, `starting`, …). */
  state: string
  /** The distributions (`educa@1.1`) whose web instance is ready. */
  ready: string[]
}

/**
 * Polls every agent's GET /api/components, one request at a time each, `everyMs`
 * apart, and keeps each change of its web component (with the time the answer
 * came). Make before break keeps a Node.js node `ready` throughout: the old
 * instance serves until the new one is ready.
 */
function watchWeb(agents: ReadonlyArray<Started>, everyMs: number) {
  const samples: Sample[][] = agents.map(() => [])
  let stopped = false
  const loops = agents.map(async (a, i) => {
    const client = new ApiClient(a.info.api)
    const list = samples[i]!
    while (!stopped) {
      const seen = await client
        .get<RuntimeStatus>('/api/components')
        .then((s) => webState(s.components))
        .catch(() => ({ state: 'unreachable', ready: [] }))
      const t = Date.now()
      const previous = list.at(-1)
      if (previous?.state !== seen.state || previous.ready.join() !== seen.ready.join())
        list.push({ t, ...seen })
      await sleep(everyMs)
    }
  })
  return {
    samples,
    async stop() {
      stopped = true
      await Promise.all(loops)
    },
  }
}

function webState(components: readonly ComponentStatus[]): Omit<Sample, 't'> {
  const web = components.filter((c) => c.name === 'web')
  const ready = [...new Set(web.filter((c) => c.state === 'ready').map((c) => c.distribution))].sort()
  if (web.length === 0) return { state: 'absent', ready }
  if (ready.length > 0) return { state: 'ready', ready }
  return { state: [...new Set(web.map((c) => c.state))].sort().join('+'), ready }
}

/**
 * From one node's samples, ms from `recordedAt`: when its web component left
 * rotation (not on a first rollout: it was not there), when `distribution`'s web
 * was first ready, and how long the node had no ready web, split into `draining`
 * and what followed it.
 */
function outOfRotation(samples: readonly Sample[], recordedAt: number, distribution: string, first: boolean) {
  const rel = (t: number | undefined) => (t == null ? null : t - recordedAt)
  const readyAt = samples.find((s) => s.ready.includes(distribution))?.t
  const outIndex = first ? -1 : samples.findIndex((s) => s.state !== 'ready')
  const out = samples[outIndex]
  const back = out == null ? undefined : samples.slice(outIndex + 1).find((s) => s.state === 'ready')
  const draining = out == null ? -1 : samples.findIndex((s, i) => i >= outIndex && s.state === 'draining')
  const drainEnd = draining < 0 ? undefined : samples[draining + 1]
  return {
    webOutMs: rel(out?.t),
    webReadyMs: rel(readyAt),
    outOfRotationMs: first ? null : out == null ? 0 : back == null ? null : back.t - out.t,
    drainingMs: draining < 0 || drainEnd == null ? null : drainEnd.t - samples[draining]!.t,
    startingMs: drainEnd == null || back == null ? null : back.t - drainEnd.t,
  }
}

/** Starts web and catalog of one build directly with node and polls /healthz every 10 ms. */
async function directStart(build: string, work: string): Promise<{ web: number; catalog: number }> {
  const children: ChildProcess[] = []
  try {
    const result: Record<string, number> = {}
    for (const name of ['catalog', 'web']) {
      const dir = join(work, `direct-${name}`)
      await mkdir(dir, { recursive: true })
      await tar.x({ file: join(build, `${name}.tgz`), cwd: dir })
      const port = await freePort()
      const t0 = Date.now()
      const child = spawn(process.execPath, [join(dir, 'server.mjs')], {
        env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1' },
        stdio: 'ignore',
      })
      children.push(child)
      const healthyAt = await until(
        `${name} healthy`,
        async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200,
        10,
      )
      result[name] = healthyAt - t0
    }
    return { web: result.web!, catalog: result.catalog! }
  } finally {
    for (const child of children) child.kill('SIGKILL')
  }
}

/** Component processes of the agent with this data folder (by their runtime mark). */
async function markedPids(dataDir: string): Promise<number[]> {
  const found: number[] = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (environ.split('\0').includes(`SHOAL_RUNTIME_DATA=${dataDir}`)) found.push(pid)
  }
  return found
}

/** Polls `check` until true; the Date.now() it first held, or throws after 120 s. */
async function until(what: string, check: () => Promise<boolean>, everyMs = 50): Promise<number> {
  const deadline = Date.now() + 120_000
  for (;;) {
    if (await check().catch(() => false)) return Date.now()
    if (Date.now() > deadline) throw new Error(`benchmark: timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}
