/**
 * A small cluster of real `shoal agent` processes for chaos campaigns: each agent
 * keeps its data folder, its libp2p port and its arguments across kills, so a
 * restart is the same node coming back (same peer id, same store, same journal).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { appendFileSync, existsSync, openSync, readFileSync } from 'node:fs'
import { readdir, readFile, readlink, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { writeNewKeyPair } from '../../src/artifacts/index.js'
import { writeNewSecret } from '../../src/bootstrap/index.js'
import { freePort } from '../../src/shared/ports.js'
import { AGENT_NODE_FLAGS } from '../../src/shared/version.js'

/** The repository root: found by walking up, so this works from bench/chaos/ and dist/bench/chaos/ alike. */
export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)))
/** The built CLI (`npm run build`). */
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'examples'))) return dir
    if (dirname(dir) === dir) throw new Error(`no repository root above ${from}`)
  }
}

export interface ClusterOptions {
  /** Work folder: data folders, logs, keys. */
  dir: string
  size: number
  cluster: string
  preset: 'test' | 'lan'
  /** Per-agent download limit (`--download-rate`), so downloads last long enough to be cut. */
  downloadRate: string
  logLevel: 'debug' | 'info' | 'warn'
  /** More `shoal agent` arguments, the same for every agent (e.g. `--tokens FILE`). */
  extraArgs?: string[]
}

export interface ChaosNode {
  readonly name: string
  readonly dataDir: string
  readonly port: number
  readonly logFile: string
  /** Arguments after `agent`: the same on every start. */
  readonly args: string[]
  child: ChildProcess | null
  exit: Promise<void>
  id: string
  /** `http://127.0.0.1:PORT` of the current run (the API port changes at each start). */
  api: string
  /** Starts of this node, the first included. */
  starts: number
}

/** A process marked as a component of the agent whose data folder is `dataDir`. */
export interface MarkedProcess {
  pid: number
  ppid: number
  /** Its working directory: the component's install folder. */
  cwd: string | null
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = []
  readonly keyFile: string
  readonly secretFile: string

  constructor(readonly options: ClusterOptions) {
    this.keyFile = join(options.dir, 'publisher.key')
    this.secretFile = join(options.dir, 'cluster.secret')
  }

  /** Creates the secret and publisher key, then starts the agents (the first alone, the others together). */
  async start(): Promise<void> {
    await writeNewSecret(this.secretFile)
    await writeNewKeyPair(this.keyFile)
    const ports: number[] = []
    for (let i = 0; i < this.options.size; i++) {
      let port = await freePort()
      while (ports.includes(port)) port = await freePort()
      ports.push(port)
    }
    for (const [i, port] of ports.entries()) {
      const name = `n${i + 1}`
      const dataDir = join(this.options.dir, name)
      // Every node bootstraps through every other: a restarted node always has someone to join.
      const bootstrap = ports
        .filter((p) => p !== port)
        .flatMap((p) => ['--bootstrap', `/ip4/127.0.0.1/tcp/${p}`])
      const args = [
        '--cluster',
        this.options.cluster,
        '--data',
        dataDir,
        '--listen',
        `/ip4/127.0.0.1/tcp/${port}`,
        '--api',
        '127.0.0.1:0',
        '--no-mdns',
        '--preset',
        this.options.preset,
        '--secret-file',
        this.secretFile,
        '--trust',
        `${this.keyFile}.pub`,
        '--download-rate',
        this.options.downloadRate,
        '--log-level',
        this.options.logLevel,
        ...(this.options.extraArgs ?? []),
        ...bootstrap,
      ]
      this.nodes.push({
        name,
        dataDir,
        port,
        logFile: join(this.options.dir, `${name}.log`),
        args,
        child: null,
        exit: Promise.resolve(),
        id: '',
        api: '',
        starts: 0,
      })
    }
    await this.launch(this.nodes[0]!)
    await Promise.all(this.nodes.slice(1).map((node) => this.launch(node)))
  }

  /** Starts `node` with its arguments and waits for its start line. */
  async launch(node: ChaosNode): Promise<void> {
    if (node.child != null) throw new Error(`${node.name} is running`)
    this.note(node, `starting (start ${node.starts + 1})`)
    const log = openSync(node.logFile, 'a')
    const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'agent', ...node.args], {
      stdio: ['ignore', 'pipe', log],
    })
    node.child = child
    node.starts++
    node.exit = new Promise((resolve) => child.once('exit', () => resolve()))
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${node.name} printed no start line within 60 s`)),
        60_000,
      )
      createInterface({ input: child.stdout! }).once('line', (text) => {
        clearTimeout(timer)
        resolve(text)
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        const last = lastLine(node.logFile)
        reject(
          new Error(
            `${node.name} exited (${code ?? signal}) before starting${last ? `: ${last}` : ''}; see ${node.logFile}`,
          ),
        )
      })
    }).catch((err: unknown) => {
      child.kill('SIGKILL')
      node.child = null
      throw err
    })
    const info = JSON.parse(line) as { id: string; api: string }
    if (node.id !== '' && node.id !== info.id)
      throw new Error(`${node.name} came back as ${info.id}, not ${node.id}: its identity was lost`)
    node.id = info.id
    node.api = info.api
  }

  /** Sends `signal` to the agent process (not its components) and waits until it is gone. */
  async kill(node: ChaosNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = node.child
    if (child == null) return
    if (child.exitCode == null && child.signalCode == null) child.kill(signal)
    await node.exit
    node.child = null
    this.note(node, `${signal === 'SIGKILL' ? 'killed with SIGKILL' : `stopped with ${signal}`}`)
  }

  /** SIGTERM every agent (SIGKILL after 15 s), then ends any component process still marked with a data folder. */
  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        const child = node.child
        if (child == null) return
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        await this.kill(node, 'SIGTERM')
        clearTimeout(timer)
      }),
    )
    for (const node of this.nodes)
      for (const p of await markedProcesses(node.dataDir))
        try {
          process.kill(p.pid, 'SIGKILL')
        } catch {}
  }

  byId(id: string): ChaosNode | undefined {
    return this.nodes.find((n) => n.id === id)
  }

  running(): ChaosNode[] {
    return this.nodes.filter((n) => n.child != null)
  }

  /** A line in the node's log, so a reader finds where each trial began. */
  note(node: ChaosNode, text: string): void {
    appendFileSync(node.logFile, `${new Date().toISOString()} CHAOS [chaos] ${node.name}: ${text}\n`)
  }

  noteAll(text: string): void {
    for (const node of this.nodes) this.note(node, text)
  }
}

/** An API answer other than 2xx. */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

/** GET `path` on an agent's API, with a short deadline (a busy agent answers late, not never). */
export async function getJson<T>(node: ChaosNode, path: string, timeoutMs = 5000): Promise<T> {
  const res = await fetch(`${node.api}${path}`, { signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok)
    throw new HttpError(`GET ${path} on ${node.name}: HTTP ${res.status} ${await res.text()}`, res.status)
  return (await res.json()) as T
}

export async function postJson<T>(
  node: ChaosNode,
  path: string,
  body: unknown,
  timeoutMs = 30_000,
): Promise<T> {
  const res = await fetch(`${node.api}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
    signal: AbortSignal.timeout(timeoutMs),
  })
  if (!res.ok)
    throw new HttpError(`POST ${path} on ${node.name}: HTTP ${res.status} ${await res.text()}`, res.status)
  return (await res.json()) as T
}

/**
 * Live processes carrying the runtime's mark for `dataDir` in their environment
 * (every component process and its children), zombies left out.
 */
export async function markedProcesses(dataDir: string): Promise<MarkedProcess[]> {
  const mark = `SHOAL_RUNTIME_DATA=${dataDir}`
  const found: MarkedProcess[] = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (!environ.split('\0').includes(mark)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] == null || fields[0] === 'Z' || fields[0] === '') continue
    found.push({ pid, ppid: Number(fields[1]), cwd: await readlink(`/proc/${pid}/cwd`).catch(() => null) })
  }
  return found
}

/** Size of a file, 0 when it does not exist (log offsets). */
export async function sizeOf(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.size,
    () => 0,
  )
}

/** WARN and ERROR lines a node logged from byte `from` on (the last `max`), for a failure report. */
export async function logProblems(node: ChaosNode, from: number, max = 40): Promise<string[]> {
  const text = await readFile(node.logFile, 'utf8').catch(() => '')
  return text
    .slice(from)
    .split('\n')
    .filter((line) => / (WARN|ERROR) /.test(line) || line.includes(' CHAOS '))
    .slice(-max)
}

/** Polls `probe` every `everyMs` until it answers non-null, or null after `timeoutMs`. */
export async function poll<T>(
  probe: () => Promise<T | null>,
  { timeoutMs, everyMs = 100 }: { timeoutMs: number; everyMs?: number },
): Promise<T | null> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => null)
    if (value != null) return value
    if (Date.now() >= deadline) return null
    await sleep(everyMs)
  }
}

/** The last non-empty line of a log file (the agent's one-line error), or '' when there is none. */
function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n')
    return lines[lines.length - 1] ?? ''
  } catch {
    return ''
  }
}
