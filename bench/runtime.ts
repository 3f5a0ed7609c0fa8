/**
 * Runtime benchmark: N separate agent processes with educa 1.0 and 1.1 already
 * held everywhere; how long from the desired version being recorded to every
 * component ready on every node, split into install, start and readiness, for a
 * first rollout, a switch to a new version and a switch back (installed folders
 * reused). Then agent CPU and memory while supervising. Baseline, same run: the
 * same two components started directly with `node` and polled for health every
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
import type { RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { cpuTicks, memory, type Started, startProcess, terminate } from './processes.js'
import { clockTicks, hostCpu, machine, round, source, TempDirs, table } from './util.js'

const WINDOW_S = 10
/** The sample app's build script, from the compiled bench (dist/bench → examples). */
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)

interface SwitchRow {
  n: number
  step: string
  /** Desired version recorded → rollout seen done by the asking agent (its 50 ms polls). */
  totalMs: number
  /** Recorded → each node began its switch (gossip + reconcile), max over nodes. */
  propagationMs: number
  /** Unpacking packages and config, max over nodes. */
  installMs: number
  /** Stopping the old components and launching the new, max over nodes. */
  startMs: number
  /** Launch → every component healthy, max over nodes. */
  readinessMs: number
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
}

export async function runRuntime(options: { sizes: number[] }) {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const switches: SwitchRow[] = []
  const supervising: Supervising[] = []
  let baseline: { web: number; catalog: number } | null = null
  try {
    const work = await dirs.make('shoal-bench-runtime-')
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const key = join(work, 'publisher.key')
    await writeNewKeyPair(key)
    baseline = await directStart(builds['1.0'], work)
    for (const n of options.sizes) {
      const result = await measureSize(n, builds, key, dirs)
      switches.push(...result.switches)
      supervising.push(result.supervising)
      notes.push(...result.notes)
    }
  } finally {
    await dirs.removeAll()
  }
  const report = {
    suite: 'runtime',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    baselineDirectStartMs: baseline,
    switches,
    supervising,
    notes,
  }
  const text = [
    `direct start to healthy (baseline): web ${baseline?.web} ms, catalog ${baseline?.catalog} ms`,
    '',
    table(
      ['N', 'step', 'total ms', 'propagation', 'install', 'start', 'readiness'],
      switches.map((s) => [s.n, s.step, s.totalMs, s.propagationMs, s.installMs, s.startMs, s.readinessMs]),
    ),
    '',
    table(
      [
        'N',
        'agent CPU %',
        'agent RSS MB',
        'agent private MB',
        'components',
        'component RSS MB',
        'component private MB',
      ],
      supervising.map((s) => [
        s.n,
        s.agentCpuPercent,
        s.agentRssMB,
        s.agentPrivateMB,
        s.componentsPerAgent,
        s.componentRssMB,
        s.componentPrivateMB,
      ]),
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

async function measureSize(n: number, builds: Record<'1.0' | '1.1', string>, key: string, dirs: TempDirs) {
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
      await publish(client, { dir: builds[version], name: 'educa', version, keyFile: key, progress: false })
    await until('both versions complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) => new ApiClient(a.info.api).get<Array<{ complete: boolean }>>('/api/distributions')),
      )
      return lists.every((l) => l.length === 2 && l.every((d) => d.complete))
    })

    const switches: SwitchRow[] = []
    for (const [step, distribution] of [
      ['first rollout 1.0', 'educa@1.0'],
      ['switch 1.0 → 1.1', 'educa@1.1'],
      ['back 1.1 → 1.0 (installed)', 'educa@1.0'],
    ] as const) {
      const recordedAt = Date.now()
      const rollout = await client.post<RolloutView>('/api/rollouts', { json: { distribution } })
      let last: RolloutView | undefined
      const doneAt = await until(`${distribution} done`, async () => {
        last = await client.get<RolloutView>(`/api/rollouts/${rollout.id}`)
        return last.state === 'done' || last.state === 'failed'
      })
      if (last?.state === 'failed') throw new Error(`rollout failed: ${JSON.stringify(last.members)}`)
      const timings = await Promise.all(
        agents.map(
          async (a) => (await new ApiClient(a.info.api).get<RuntimeStatus>('/api/components')).lastSwitch!,
        ),
      )
      const ms = (from: string | null, to: string | null) => Date.parse(to!) - Date.parse(from!)
      switches.push({
        n,
        step,
        totalMs: doneAt - recordedAt,
        propagationMs: Math.max(...timings.map((t) => Date.parse(t.startedAt) - recordedAt)),
        installMs: Math.max(...timings.map((t) => ms(t.startedAt, t.installedAt))),
        startMs: Math.max(...timings.map((t) => ms(t.installedAt, t.spawnedAt))),
        readinessMs: Math.max(...timings.map((t) => ms(t.spawnedAt, t.settledAt))),
      })
    }

    // Supervising: idle agents with their components, sampled over a window.
    await sleep(3000)
    const ticks = clockTicks()
    const components = await Promise.all(agents.map((a) => markedPids(a.dataDir)))
    const pids = agents.map((a) => a.child.pid!)
    const before = await Promise.all(pids.map(cpuTicks))
    const host = hostCpu()
    await sleep(WINDOW_S * 1000)
    const after = await Promise.all(pids.map(cpuTicks))
    const hostUse = host()
    const agentMem = await Promise.all(pids.map(memory))
    const componentMem = await Promise.all(components.flat().map(memory))
    const mean = (values: number[]) => round(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length))
    const cpu = pids.map((_, i) => ((after[i]! - before[i]!) / ticks / WINDOW_S) * 100)
    return {
      switches,
      supervising: {
        n,
        agentCpuPercent: round(cpu.reduce((a, b) => a + b, 0) / cpu.length, 2),
        agentRssMB: mean(agentMem.map((m) => m.rssMB)),
        agentPrivateMB: mean(agentMem.map((m) => m.privateMB)),
        componentsPerAgent: round(components.flat().length / n),
        componentRssMB: mean(componentMem.map((m) => m.rssMB)),
        componentPrivateMB: mean(componentMem.map((m) => m.privateMB)),
        foreignCores: hostUse == null ? null : round(hostUse.foreignCores, 2),
      },
      notes,
    }
  } finally {
    await Promise.all(agents.map((a) => terminate(a.child)))
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
