/**
 * Agent processes for the manager benchmark (and the switch benchmark): start a
 * cluster, restart one agent on its data folder, poll the API, know when the
 * cluster is steady, measure CPU, and the small `gate` distribution whose nodes
 * turn ready only when the bench says so.
 */
import { createWriteStream } from 'node:fs'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import * as tar from 'tar'
import type { MemberView } from '../src/api/index.js'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { writeNewSecret } from '../src/bootstrap/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ManagerStatus, RolloutView } from '../src/manager/index.js'
import { type Started, startProcess } from './processes.js'
import { clockTicks, hostCpu, milestones, quietHost, round, type TempDirs } from './util.js'

export const PRESET = 'lan'
const LOAD_RATE = 100
const LOAD_CONNECTIONS = 10

export type ManagerView = ManagerStatus & { stateTerm: number; stateSeq: number }
/** An agent process: its data folder, and the flags it was started with (a restart reuses them). */
export type Agent = Started & { dataDir: string; extra: string[] }

export interface CpuUse {
  busyCores: number
  /** The bench process and its descendants (agents, components, the load balancer). */
  benchCores: number
  /** Other processes on the host. */
  otherCores: number
}

/** A closed cluster, as production runs one: a secret (`--secret-file`) and a trusted publisher key. */
export async function clusterKeys(dirs: TempDirs): Promise<{ work: string; key: string; flags: string[] }> {
  const work = await dirs.make('shoal-bench-mgr-')
  const key = join(work, 'publisher.key')
  const secret = join(work, 'cluster.secret')
  await writeNewKeyPair(key)
  await writeNewSecret(secret)
  return { work, key, flags: ['--secret-file', secret, '--trust', `${key}.pub`] }
}

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

/** SHOAL_BENCH_AGENT_LOGS=DIR: agents log (at SHOAL_BENCH_AGENT_LOG_LEVEL, default info) to DIR/<id>.log, kept across restarts. */
const LOG_DIR = process.env.SHOAL_BENCH_AGENT_LOGS
const logFlags = LOG_DIR == null ? [] : ['--log-level', process.env.SHOAL_BENCH_AGENT_LOG_LEVEL ?? 'info']

function keepLog(agent: Agent): void {
  if (LOG_DIR == null) return
  const out = createWriteStream(join(LOG_DIR, `${agent.info.id}.log`), { flags: 'a' })
  agent.child.stderr?.pipe(out)
}

/** A Raft role change an agent logged (`raft role`, info level): when, which agent, the role and the term. */
export interface RoleEvent {
  at: number
  node: string
  role: string
  term: number
}

const ROLE_LINE = /^(\S+) INFO\s+\[shoal:raft\] raft role role=(\S+) leader=\S+ term=(\d+)/

/** Every Raft role change in the agents' logs (SHOAL_BENCH_AGENT_LOGS), oldest first; null without logs. */
export async function roleEvents(): Promise<RoleEvent[] | null> {
  if (LOG_DIR == null) return null
  const events: RoleEvent[] = []
  for (const name of await readdir(LOG_DIR)) {
    if (!name.endsWith('.log')) continue
    for (const line of (await readFile(join(LOG_DIR, name), 'utf8')).split('\n')) {
      const m = ROLE_LINE.exec(line)
      if (m != null)
        events.push({ at: Date.parse(m[1]!), node: name.slice(0, -4), role: m[2]!, term: Number(m[3]) })
    }
  }
  return events.sort((a, b) => a.at - b.at)
}

/** Starts one agent process (preset lan) and adds it to `agents` at once, so a failure still stops it. */
async function startAgent(dirs: TempDirs, boot: string[], extra: string[], agents: Agent[]): Promise<Agent> {
  const dataDir = await dirs.make('shoal-bench-mgr-node-')
  const started = await startProcess(dataDir, boot, ['--preset', PRESET, ...extra, ...logFlags])
  const agent = { ...started, dataDir, extra }
  agents.push(agent)
  keepLog(agent)
  return agent
}

/** Starts an agent again on its data folder (same identity, Raft log and flags). */
export async function restartAgent(old: Agent, boot: string[], agents: Agent[]): Promise<Agent> {
  const started = await startProcess(old.dataDir, boot, ['--preset', PRESET, ...old.extra, ...logFlags])
  const agent = { ...started, dataDir: old.dataDir, extra: old.extra }
  agents.push(agent)
  keepLog(agent)
  return agent
}

/** Every agent lists every other alive and follows one manager (acting, with quorum, same term). */
export async function steady(agents: Agent[]): Promise<boolean> {
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

/** The agent that leads, as the first agent sees it. */
export async function leaderOf(agents: Agent[]): Promise<{ agent: Agent; view: ManagerView }> {
  const view = await getJson<ManagerView>(agents[0]!.info.api, '/api/manager')
  const agent = agents.find((a) => a.info.id === view.manager)
  if (agent == null) throw new Error(`benchmark: the leader ${view.manager} is not one of the agents`)
  return { agent, view }
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

/** Waits up to 20 s for the host to be quiet before a phase; notes it when it was not. */
export async function waitQuiet(phase: string, notes: string[]) {
  const quiet = await quietHost({ limitCores: 0.3, maxWaitS: 20 })
  if (!quiet.quiet)
    notes.push(`${phase}: other processes used more than 0.3 core for ${quiet.waitedS} s before it began`)
  return quiet
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
  return { stop: () => stop(), done, rate: LOAD_RATE, connections: LOAD_CONNECTIONS }
}

// --- CPU -----------------------------------------------------------------------------------

/** Starts a CPU window: the returned function gives the host's use since, split into this bench and the rest. */
export async function cpuWindow(): Promise<() => Promise<CpuUse | null>> {
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

/**
 * Waits (up to `maxWaitS`) for a 2 s stretch in which processes outside this bench
 * (not this process, not its agents and components) used less than `limitCores`.
 */
export async function othersQuiet(limitCores: number, maxWaitS: number) {
  const began = performance.now()
  for (;;) {
    const window = await cpuWindow()
    await sleep(2000)
    const otherCores = (await window())?.otherCores ?? 0
    const waitedS = Math.round((performance.now() - began) / 1000)
    if (otherCores < limitCores || waitedS >= maxWaitS)
      return { waitedS, otherCores, quiet: otherCores < limitCores }
  }
}

// --- statistics ----------------------------------------------------------------------------

/** Nearest-rank quantiles of the measured values (nulls are runs that never got there). */
export function quantiles(values: Array<number | null>) {
  const got = values.filter((v): v is number => v != null).sort((a, b) => a - b)
  const q = (p: number) => (got.length === 0 ? null : got[Math.max(0, Math.ceil(p * got.length) - 1)]!)
  return {
    count: got.length,
    missing: values.length - got.length,
    min: got[0] ?? null,
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: got.at(-1) ?? null,
    mean: got.length === 0 ? null : round(got.reduce((s, v) => s + v, 0) / got.length, 2),
  }
}

// --- the gate distribution -------------------------------------------------------------------

/**
 * One HTTP component whose health check answers 200 only once the file
 * GATE_DIR/<node id>@<version> exists (and from then on): a node switched to a
 * version stays not ready until the bench opens its gate. So the bench knows
 * when a rollout step becomes due, and can make it due right after it kills the leader.
 */
const GATE_SERVER = `import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
const { gateDir } = JSON.parse(process.env.SHOAL_CONFIG ?? '{}')
const gate = join(gateDir, \`\${process.env.SHOAL_NODE_ID}@\${process.env.SHOAL_VERSION}\`)
let open = false
createServer((req, res) => {
  if (req.url === '/healthz') open ||= existsSync(gate)
  res.writeHead(req.url !== '/healthz' || open ? 200 : 503, { connection: 'close' })
  res.end()
}).listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1')
`

export const GATE_VERSIONS = ['1.0', '2.0'] as const

export class Gates {
  private constructor(
    readonly dir: string,
    private readonly builds: Record<string, string>,
  ) {}

  /** Builds gate 1.0 and 2.0 (the same component; gates in `dir`). */
  static async build(dirs: TempDirs): Promise<Gates> {
    const dir = await dirs.make('shoal-bench-gates-')
    const builds: Record<string, string> = {}
    const src = await dirs.make('shoal-bench-gate-src-')
    await writeFile(join(src, 'server.mjs'), GATE_SERVER)
    for (const version of GATE_VERSIONS) {
      const out = await dirs.make(`shoal-bench-gate-${version}-`)
      await tar.c({ gzip: true, cwd: src, file: join(out, 'gate.tgz'), portable: true }, ['server.mjs'])
      const descriptor = {
        name: 'gate',
        start: { node: 'server.mjs' },
        http: true,
        health: { http: '/healthz', intervalMs: 1000 },
        startTimeoutMs: 3_600_000,
        stopTimeoutMs: 1000,
      }
      await writeFile(
        join(out, 'distribution.json'),
        JSON.stringify({
          artifacts: { 'gate.tgz': { kind: 'component', descriptor } },
          config: { gateDir: dir },
        }),
      )
      builds[version] = out
    }
    return new Gates(dir, builds)
  }

  /** Publishes both versions through `client` and waits until every agent holds them. */
  async publish(client: ApiClient, key: string, agents: Agent[]): Promise<void> {
    for (const version of GATE_VERSIONS)
      await publish(client, {
        dir: this.builds[version]!,
        name: 'gate',
        version,
        keyFile: key,
        progress: false,
      })
    await until('both gate versions complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) =>
          getJson<Array<{ id: string; complete: boolean }>>(a.info.api, '/api/distributions'),
        ),
      )
      return lists.every(
        (l) => l.filter((d) => d.id.startsWith('gate@')).length === 2 && l.every((d) => d.complete),
      )
    })
  }

  async open(node: string, version: string): Promise<void> {
    await writeFile(join(this.dir, `${node}@${version}`), '')
  }

  /** Closes every node's gate for `version` (no node may run it at that moment). */
  async closeAll(version: string): Promise<void> {
    for (const name of await readdir(this.dir))
      if (name.endsWith(`@${version}`)) await rm(join(this.dir, name), { force: true })
  }
}

/** POST a command to an agent's API; the answer once committed and applied. */
export async function post<T>(api: string, path: string, body: unknown = {}, timeoutMs = 20_000): Promise<T> {
  const res = await fetch(`${api}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`POST ${api}${path}: HTTP ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text) as T
}

export type { RolloutView }
export { ApiClient, sleep }
