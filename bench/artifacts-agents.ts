/**
 * Processes of the artifacts benchmark: agents (through the CLI, optionally in a
 * network namespace) whose log lines are watched for distribution events, helper
 * children, and a registry that ends them all on the way out (also on SIGINT).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort } from '../src/shared/ports.js'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { inNetns } from './artifacts-netns.js'

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
export const CHILD = fileURLToPath(new URL('./artifacts-child.js', import.meta.url))

/** Every child this benchmark started, so they can all be ended on the way out. */
export class Children {
  private readonly live = new Set<ChildProcess>()

  /** Spawns `command args` (in `ns` when given) with piped stdio. */
  spawn(command: string, args: string[], ns: string | null): ChildProcess {
    const [cmd, argv] = ns == null ? [command, args] : inNetns(ns, command, args)
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.live.add(child)
    child.once('exit', () => this.live.delete(child))
    child.once('error', () => this.live.delete(child))
    return child
  }

  /** Pids of the children running now, and of this process. */
  pids(): Set<number> {
    const pids = new Set<number>([process.pid])
    for (const child of this.live) if (child.pid != null) pids.add(child.pid)
    return pids
  }

  /** SIGKILL to every child still running (their pids, one by one); resolves once they are gone (at most 5 s). */
  async killAll(): Promise<void> {
    const running = [...this.live].filter(isRunning)
    const gone = running.map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())))
    for (const child of running) child.kill('SIGKILL')
    await Promise.race([Promise.all(gone), sleep(5_000)])
  }
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode == null && child.signalCode == null
}

/** SIGTERM, SIGKILL after `graceMs`; resolves when the child is gone. */
export async function terminate(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (!isRunning(child)) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/** JSON lines a child prints on stdout, each with when (performance.now()) it arrived. */
export class JsonLines {
  private readonly queue: Array<{ value: unknown; at: number }> = []
  private waiter: (() => void) | undefined
  private ended = false

  constructor(
    private readonly child: ChildProcess,
    private readonly what: string,
    private readonly stderr: () => string,
  ) {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (text) => {
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        value = { unparsed: text.slice(0, 200) }
      }
      this.queue.push({ value, at: performance.now() })
      this.waiter?.()
    })
    // stdout closing (not 'exit', which can come before the last lines) ends the list.
    lines.once('close', () => {
      this.ended = true
      this.waiter?.()
    })
  }

  /** The next line; rejects after `capMs` or when the child exits first. */
  async next<T>(capMs: number): Promise<{ value: T; at: number }> {
    const deadline = performance.now() + capMs
    while (this.queue.length === 0) {
      if (this.ended) {
        const code = this.child.exitCode ?? this.child.signalCode
        throw new Error(`${this.what} exited (${code}): ${this.stderr().trim().slice(-500)}`)
      }
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(`${this.what}: no output within ${capMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.waiter = undefined
    }
    return this.queue.shift() as { value: T; at: number }
  }
}

/** Keeps the last `max` characters written to a stream. */
export function tail(stream: NodeJS.ReadableStream, max = 4000): () => string {
  let text = ''
  stream.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-max)
  })
  return () => text
}

export interface AgentInfo {
  id: string
  api: string
  addrs: string[]
}

export interface AgentOptions {
  cluster: string
  dataDir: string
  listen: string
  /** host:port of the admin API. */
  api: string
  bootstrap: string[]
  trust: string
  /** The cluster secret (`--secret-file`): a closed cluster; null: an open one. */
  secretFile: string | null
  /** Further agent flags, already expanded (e.g. `--data-listen 10.231.88.11:7947`). */
  extraArgs: string[]
  /** Network namespace to run in; null: this one. */
  ns: string | null
}

/**
 * The agent's command line, in one place: every agent of the benchmark starts with these
 * flags, plus `extraArgs` (the bench's `--agent-arg`) and SHOAL_BENCH_AGENT_NODE_FLAGS for node.
 */
export function agentArgs(options: AgentOptions): string[] {
  return [
    ...AGENT_NODE_FLAGS,
    // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile every agent of a run.
    ...(process.env.SHOAL_BENCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    CLI,
    'agent',
    '--cluster',
    options.cluster,
    '--data',
    options.dataDir,
    '--listen',
    options.listen,
    '--api',
    options.api,
    '--no-mdns',
    '--trust',
    options.trust,
    ...(options.secretFile == null ? [] : ['--secret-file', options.secretFile]),
    '--log-level',
    'info',
    ...options.bootstrap.flatMap((addr) => ['--bootstrap', addr]),
    ...options.extraArgs,
  ]
}

/**
 * Expands `{ip}` (the agent's host address) and `{port}` (a port free on this machine, a new
 * one for each occurrence) in extra agent flags, so one template serves every agent.
 */
export async function expandAgentArgs(templates: string[], ip: string): Promise<string[]> {
  const out: string[] = []
  for (const template of templates) {
    let text = template.replaceAll('{ip}', ip)
    while (text.includes('{port}')) text = text.replace('{port}', String(await freePort()))
    out.push(text)
  }
  return out
}

/** An agent process; `events` holds when (performance.now()) each distribution event was logged. */
export class AgentProcess {
  /** `published:ID` / `complete:ID` / `learned:ID` → performance.now() of the log line. */
  readonly events = new Map<string, number>()
  readonly stderr: () => string

  private constructor(
    readonly child: ChildProcess,
    readonly info: AgentInfo,
    readonly ns: string | null,
    /** Its data folder. */
    readonly dataDir: string,
    stderr: () => string,
    lines: ReturnType<typeof createInterface>,
  ) {
    this.stderr = stderr
    lines.on('line', (line) => {
      const match = /\bdistribution (published|complete|learned from peers) id=(\S+)/.exec(line)
      if (match == null) return
      const key = `${match[1]!.split(' ')[0]}:${match[2]}`
      if (!this.events.has(key)) this.events.set(key, performance.now())
    })
  }

  static async start(children: Children, options: AgentOptions): Promise<AgentProcess> {
    const args = agentArgs(options)
    const child = children.spawn(process.execPath, args, options.ns)
    const stderr = tail(child.stderr!)
    const lines = createInterface({ input: child.stderr! })
    const out = new JsonLines(child, 'agent', stderr)
    const info = await out.next<AgentInfo>(30_000).catch((err: unknown) => {
      child.kill('SIGKILL')
      throw err
    })
    return new AgentProcess(child, info.value, options.ns, options.dataDir, stderr, lines)
  }

  get pid(): number {
    return this.child.pid!
  }

  /** Its TCP addresses, for `--bootstrap`. */
  get tcpAddrs(): string[] {
    return this.info.addrs.filter((addr) => addr.includes('/tcp/'))
  }

  /** GETs API paths (from inside its namespace when it has one); null for a failed one. */
  async api(children: Children, paths: string[]): Promise<unknown[]> {
    const urls = paths.map((p) => `${this.info.api}${p}`)
    if (this.ns == null) {
      return Promise.all(
        urls.map((url) =>
          fetch(url, { signal: AbortSignal.timeout(5_000) })
            .then((res) => res.json() as Promise<unknown>)
            .catch(() => null),
        ),
      )
    }
    const child = children.spawn(process.execPath, [CHILD, 'get', ...urls], this.ns)
    const answer = new JsonLines(child, 'api probe', tail(child.stderr!))
    return answer.next<unknown[]>(15_000).then(
      ({ value }) => value,
      () => paths.map(() => null),
    )
  }

  stop(): Promise<void> {
    return terminate(this.child)
  }
}

/** Runs `node CLI ARGS` (in `ns` when given) to completion. */
export function runCli(
  children: Children,
  args: string[],
  ns: string | null,
  capMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = children.spawn(process.execPath, [CLI, ...args], ns)
  child.stdin!.end()
  const stdout = tail(child.stdout!, 100_000)
  const stderr = tail(child.stderr!)
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), capMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: stdout(), stderr: stderr() })
    })
  })
}

/** utime + stime of a process in clock ticks, or null once it is gone. */
export async function cpuTicks(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return null
  }
}

/** Peak RSS (VmHWM) of a process in MB, or null once it is gone. */
export async function peakRssMB(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1])
    return Number.isFinite(kb) ? Math.round(kb / 102.4) / 10 : null
  } catch {
    return null
  }
}

/** CPU ticks of every user-space process now (pid → utime + stime), kernel threads left out. */
export async function processTicks(): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name))
  await Promise.all(
    pids.map(async (name) => {
      try {
        const stat = await readFile(`/proc/${name}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        const ppid = Number(fields[1])
        if (name === '2' || ppid === 2) return
        out.set(Number(name), Number(fields[11]) + Number(fields[12]))
      } catch {
        // gone meanwhile
      }
    }),
  )
  return out
}

/** Ticks used between two `processTicks` snapshots by processes not in `mine`. */
export function foreignTicks(
  before: Map<number, number>,
  after: Map<number, number>,
  mine: Set<number>,
): number {
  let sum = 0
  for (const [pid, ticks] of after) if (!mine.has(pid)) sum += ticks - (before.get(pid) ?? 0)
  return sum
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
export async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  const total = values.reduce((s, v) => s + v, 0)
  const idle = (values[3] ?? 0) + (values[4] ?? 0)
  return { busy: total - idle, total }
}
