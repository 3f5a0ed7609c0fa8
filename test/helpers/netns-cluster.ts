/**
 * A cluster of real `shoal agent` processes, one per network namespace, on one
 * private bridge (test/helpers/netns.ts), for faults that loopback and a
 * connection gater cannot make: a network split by cutting links (packets
 * vanish, no connection is closed or refused), and partial faults shaped with
 * `tc netem` (loss, delay) on one direction of one link.
 *
 * - Split: the cut-off nodes' bridge ports move to a second bridge (`br1`) in the
 *   switch namespace, so each side still reaches its own members and nothing of
 *   the other; heal moves them back. Both directions are cut at once, cleanly.
 * - Partial faults: one direction of one link loses and/or delays packets, with
 *   `tc netem` where the kernel has it, else with link-shaper.py (a userspace
 *   stand-in: tc redirects the frames to it, it drops or holds them, sends them on).
 * - Reaching the API: each agent serves it on 127.0.0.1 inside its namespace (no
 *   tokens needed) and a small forwarder in the same namespace exposes it on a Unix
 *   socket in the test's folder (a path, so visible from every namespace). The
 *   API stays reachable whatever is done to the cluster network, and nothing is
 *   created in the caller's own namespace.
 *
 * Needs root and iproute2 (shaping: tc, and python3 without netem); `destroy()`
 * removes processes, namespaces (with their veths, bridges, qdiscs and filters)
 * and the folder, and is safe to call twice.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { fetch, Agent as HttpAgent } from 'undici'
import { type BridgedHosts, createBridgedHosts, HOST_IFACE, inNetns, ip } from './netns.js'
import { CLI } from './processes.js'

const execFileAsync = promisify(execFile)

/** Port of every agent's libp2p listener and API (each namespace has its own ports). */
export const P2P_PORT = 7946
export const API_PORT = 7070

/** Forwards the Unix socket argv[1] to 127.0.0.1:argv[2]; exits when its stdin closes (the test died). */
const FORWARDER = `
const net = require('node:net'), fs = require('node:fs')
const [socket, port] = process.argv.slice(1)
try { fs.unlinkSync(socket) } catch {}
net.createServer((client) => {
  const api = net.connect(Number(port), '127.0.0.1')
  client.on('error', () => api.destroy())
  api.on('error', () => client.destroy())
  client.pipe(api).pipe(client)
}).listen(socket, () => process.stdout.write('ready\\n'))
process.stdin.on('end', () => process.exit(0)).resume()
`

export interface NetnsAgent {
  /** a, b, c, ... by index. */
  name: string
  index: number
  ns: string
  ip: string
  /** Its port on the bridge, in the switch namespace (`vh<N>`): the far end of its link. */
  port: string
  id: string
  dataDir: string
  log: string
  child: ChildProcess
  exited: boolean
  exit: Promise<string>
  /** Unix socket reaching its API. */
  socket: string
  dispatcher: HttpAgent
  forwarder: ChildProcess
}

export interface NetnsClusterOptions {
  count: number
  /** First three octets of the private /24, e.g. '10.213.81'. */
  subnet: string
  /** Namespace name prefix (a random suffix is added). */
  prefix: string
  /** Cluster name; a random suffix keeps parallel runs apart. */
  cluster: string
  preset: 'lan' | 'cloud' | 'test'
  /** More `shoal agent` flags for every agent. */
  extraArgs?: string[]
  /** The built CLI the agents run (default: this checkout's dist/src/cli/main.js), to compare builds. */
  cli?: string
  /** Gets the teardown before anything is made, so a failure midway can still clean up. */
  register?: (destroy: () => Promise<void>) => void
}

export interface ApiAnswer<T> {
  status: number
  body: T
}

async function run(command: string, args: string[], timeout = 10_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { timeout })
    return stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

/** `tc ARGS...`; rejects with tc's stderr in the message. */
export function tc(...args: string[]): Promise<string> {
  return run('tc', args)
}

/** The userspace shaper, and the mark its own frames carry past the redirect. */
const LINK_SHAPER = resolve(import.meta.dirname, 'link-shaper.py')
const SHAPER_MARK = 0x5e7
/**
 * Classic BPF for cls_bpf: load the packet mark (SKF_AD_OFF + SKF_AD_MARK); the
 * shaper's own frames (our mark) do not match, every other frame does (and is redirected).
 */
const NOT_OUR_MARK = `4,32 0 0 ${2 ** 32 - 0x1000 + 20},21 0 1 ${SHAPER_MARK},6 0 0 0,6 0 0 ${2 ** 32 - 1}`

/** What one direction of a link does to packets. */
export interface LinkShape {
  lossPercent?: number
  delayMs?: number
  /** ± this much, uniform (with netem: its jitter; packets may be reordered either way). */
  jitterMs?: number
}

export interface ShapeReport {
  shaper: 'netem' | 'userspace'
  /** Packets the shaper dropped, and forwarded (userspace only; netem reports drops). */
  dropped: number | null
  forwarded: number | null
  /** Userspace only: how long packets were held, and the worst lateness of the shaper itself. */
  holdMsMean?: number
  holdMsMax?: number
  lateMsMax?: number
}

let netemProbe: Promise<boolean> | undefined
/** Whether this kernel has sch_netem (probed once, in a throwaway namespace). */
export function netemAvailable(): Promise<boolean> {
  netemProbe ??= (async () => {
    const probe = `shoal-tcprobe-${Math.random().toString(16).slice(2, 8)}`
    await ip('netns', 'add', probe)
    try {
      await ip('-n', probe, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0')
      await tc('-n', probe, 'qdisc', 'add', 'dev', 'a0', 'root', 'netem', 'delay', '1ms')
      return true
    } catch {
      return false
    } finally {
      await ip('netns', 'del', probe).catch(() => {})
    }
  })()
  return netemProbe
}

/**
 * Null when one direction of a link can be shaped here (netem, or the userspace
 * shaper: tc clsact with a bpf filter and mirred, plus python3), else why not.
 */
export async function shapingUnavailableReason(): Promise<string | null> {
  if (await netemAvailable().catch(() => false)) return null
  const probe = `shoal-tcprobe-${Math.random().toString(16).slice(2, 8)}`
  try {
    await ip('netns', 'add', probe)
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`
  }
  try {
    await ip('-n', probe, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0')
    await tc('-n', probe, 'qdisc', 'add', 'dev', 'a0', 'clsact')
    await tc(
      ...['-n', probe, 'filter', 'add', 'dev', 'a0', 'egress', 'prio', '1', 'protocol', 'all'],
      ...['bpf', 'bytecode', NOT_OUR_MARK, 'action', 'mirred', 'egress', 'redirect', 'dev', 'b0'],
    )
    await run('python3', ['--version'])
    return null
  } catch (err) {
    return `no sch_netem in this kernel, and the userspace shaper cannot run: ${(err as Error).message}`
  } finally {
    await ip('netns', 'del', probe).catch(() => {})
  }
}

interface ActiveShape {
  ns: string
  dev: string
  kind: 'netem' | 'userspace'
  /** Userspace: the veth pair's end tc redirects into, and the shaper with its last stdout line. */
  pair?: string
  shaper?: ChildProcess
  result?: Promise<string>
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))

export class NetnsCluster {
  readonly agents: NetnsAgent[] = []
  readonly dir: string
  private net: BridgedHosts | undefined
  private cutBridge = false
  private readonly shapes: ActiveShape[] = []
  /** Every process started, from the moment it is spawned (destroy() stops them all). */
  private readonly pending: Array<{ child: ChildProcess; exit: Promise<string>; forwarder?: ChildProcess }> =
    []
  private destroyed = false

  private constructor(
    dir: string,
    private readonly options: NetnsClusterOptions,
  ) {
    this.dir = dir
  }

  /**
   * Makes the namespaces, a secret and a publisher key, and starts the agents, all
   * but the first bootstrapping through the first. Resolves once every
   * agent printed its id and its API answers (not when they have converged).
   */
  static async start(options: NetnsClusterOptions): Promise<NetnsCluster> {
    const dir = await mkdtemp(join(tmpdir(), `${options.prefix}-`))
    const cluster = new NetnsCluster(dir, options)
    options.register?.(() => cluster.destroy())
    try {
      cluster.net = await createBridgedHosts({
        count: options.count,
        subnet: options.subnet,
        prefix: options.prefix,
      })
      await run(process.execPath, [CLI, 'secret', 'new', cluster.secretFile])
      await run(process.execPath, [CLI, 'key', 'new', cluster.keyFile])
      // All at once: the others join through the first (their join loop redials it until it answers).
      await Promise.all(cluster.net.hosts.map((_, i) => cluster.startAgent(i)))
    } catch (err) {
      await cluster.destroy().catch(() => {})
      throw err
    }
    return cluster
  }

  get secretFile(): string {
    return join(this.dir, 'cluster.secret')
  }

  /** Publisher key (its public half, `.pub`, is trusted by every agent). */
  get keyFile(): string {
    return join(this.dir, 'publisher.key')
  }

  get switchNs(): string {
    return this.net!.switchNs
  }

  /** The agent whose peer id is `id`. */
  byId(id: string | null | undefined): NetnsAgent | undefined {
    return this.agents.find((a) => a.id === id)
  }

  private async startAgent(index: number): Promise<void> {
    const host = this.net!.hosts[index]!
    const name = String.fromCharCode(97 + index)
    const dataDir = join(this.dir, name)
    await mkdir(dataDir, { recursive: true })
    const log = join(this.dir, `${name}.log`)
    const args = [
      this.options.cli ?? CLI,
      'agent',
      '--cluster',
      this.options.cluster,
      '--data',
      dataDir,
      '--listen',
      `/ip4/${host.ip}/tcp/${P2P_PORT}`,
      '--api',
      `127.0.0.1:${API_PORT}`,
      '--secret-file',
      this.secretFile,
      '--trust',
      `${this.keyFile}.pub`,
      '--no-mdns',
      '--preset',
      this.options.preset,
      ...(this.options.extraArgs ?? []),
    ]
    if (index > 0) args.push('--bootstrap', `/ip4/${this.net!.hosts[0]!.ip}/tcp/${P2P_PORT}`)
    const err = openSync(log, 'a')
    const [command, argv] = inNetns(host.ns, process.execPath, args)
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', err] })
    closeSync(err)
    const exitState = { exited: false }
    const exit = new Promise<string>((done) => {
      child.once('exit', (code, signal) => {
        exitState.exited = true
        done(String(code ?? signal ?? 'unknown'))
      })
      child.once('error', (error) => {
        exitState.exited = true
        done(`spawn error: ${error.message}`)
      })
    })
    // Registered at once, so destroy() stops it even if the start fails below.
    const partial = { child, exit, forwarder: undefined as ChildProcess | undefined }
    this.pending.push(partial)
    const info = await new Promise<{ id: string }>((done, fail) => {
      const lines = createInterface({ input: child.stdout! })
      lines.once('line', (line) => {
        try {
          done(JSON.parse(line) as { id: string })
        } catch {
          fail(new Error(`agent ${name} printed no JSON first line: ${line.slice(0, 200)}`))
        }
      })
      void exit.then(async (code) => {
        const tail = (await readFile(log, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-10).join('\n')
        fail(new Error(`agent ${name} exited (${code}) before starting:\n${tail}`))
      })
    })
    // Keep draining stdout so the agent never blocks on a full pipe.
    child.stdout!.resume()

    const socket = join(this.dir, `${name}.api.sock`)
    const [fcommand, fargs] = inNetns(host.ns, process.execPath, ['-e', FORWARDER, socket, String(API_PORT)])
    const forwarder = spawn(fcommand, fargs, { stdio: ['pipe', 'pipe', 'inherit'] })
    partial.forwarder = forwarder
    await new Promise<void>((done, fail) => {
      createInterface({ input: forwarder.stdout! }).once('line', () => done())
      forwarder.once('exit', (code) => fail(new Error(`API forwarder of ${name} exited (${code})`)))
    })
    const agent: NetnsAgent = {
      name,
      index,
      ns: host.ns,
      ip: host.ip,
      port: `vh${index + 1}`,
      id: info.id,
      dataDir,
      log,
      child,
      get exited() {
        return exitState.exited
      },
      exit,
      socket,
      dispatcher: new HttpAgent({ connect: { socketPath: socket } }),
      forwarder,
    }
    this.agents[index] = agent
    await this.waitFor(
      `the API of ${name}`,
      async () => (await this.get(agent, '/api/health')) != null,
      20_000,
    )
  }

  /** GET `path` from `agent`'s API; throws on a non-2xx answer. */
  async get<T>(agent: NetnsAgent, path: string): Promise<T> {
    const answer = await this.request<T>(agent, 'GET', path)
    if (answer.status >= 300)
      throw new Error(`GET ${path} on ${agent.name}: ${answer.status} ${JSON.stringify(answer.body)}`)
    return answer.body
  }

  /** POST `body` as JSON; resolves with any status (tests assert on refusals). */
  post<T>(agent: NetnsAgent, path: string, body: unknown, timeoutMs = 20_000): Promise<ApiAnswer<T>> {
    return this.request<T>(agent, 'POST', path, body, timeoutMs)
  }

  private async request<T>(
    agent: NetnsAgent,
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 5_000,
  ): Promise<ApiAnswer<T>> {
    const res = await fetch(`http://localhost${path}`, {
      method,
      dispatcher: agent.dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T }
  }

  /** `shoal ARGS --api <agent's API>`, run inside the agent's namespace; rejects on a non-zero exit. */
  cli(agent: NetnsAgent, args: string[], timeout = 60_000): Promise<string> {
    const [command, argv] = inNetns(agent.ns, process.execPath, [
      CLI,
      ...args,
      '--api',
      `http://127.0.0.1:${API_PORT}`,
    ])
    return run(command, argv, timeout)
  }

  /**
   * Cuts `side` off from the other agents: their bridge ports move to a second
   * bridge, so the two sides keep their own links and lose every packet across.
   */
  async split(side: NetnsAgent[]): Promise<void> {
    if (!this.cutBridge) {
      await ip('-n', this.switchNs, 'link', 'add', 'br1', 'type', 'bridge', 'mcast_snooping', '0')
      await ip('-n', this.switchNs, 'link', 'set', 'br1', 'up')
      this.cutBridge = true
    }
    await Promise.all(side.map((a) => ip('-n', this.switchNs, 'link', 'set', a.port, 'master', 'br1')))
  }

  /** Puts every port back on the main bridge. */
  async heal(): Promise<void> {
    await Promise.all(this.agents.map((a) => ip('-n', this.switchNs, 'link', 'set', a.port, 'master', 'br0')))
  }

  /**
   * Shapes one direction of `agent`'s link: `out` is what the agent sends (its eth0),
   * `in` what it receives (its bridge port's egress). With netem when the kernel has
   * it, else with the userspace shaper (link-shaper.py).
   */
  async shape(agent: NetnsAgent, direction: 'out' | 'in', shape: LinkShape): Promise<'netem' | 'userspace'> {
    const [ns, dev] = direction === 'out' ? [agent.ns, HOST_IFACE] : [this.switchNs, agent.port]
    const loss = shape.lossPercent ?? 0
    const delay = shape.delayMs ?? 0
    const jitter = shape.jitterMs ?? 0
    if (await netemAvailable()) {
      const args = [
        ...(loss > 0 ? ['loss', `${loss}%`] : []),
        ...(delay > 0 ? ['delay', `${delay}ms`, `${jitter}ms`] : []),
      ]
      await tc('-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'netem', ...args)
      this.shapes.push({ ns, dev, kind: 'netem' })
      return 'netem'
    }
    const pair = `shp${this.shapes.length}`
    await ip('-n', ns, 'link', 'add', `${pair}a`, 'type', 'veth', 'peer', 'name', `${pair}b`)
    const active: ActiveShape = { ns, dev, kind: 'userspace', pair }
    this.shapes.push(active)
    await ip('-n', ns, 'link', 'set', `${pair}a`, 'up')
    await ip('-n', ns, 'link', 'set', `${pair}b`, 'up')
    // The shaper reads before anything is redirected to it, so nothing is lost on the way in.
    const [command, argv] = inNetns(ns, 'python3', [
      LINK_SHAPER,
      `${pair}b`,
      dev,
      String(SHAPER_MARK),
      String(loss),
      String(delay),
      String(jitter),
    ])
    const shaper = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
    active.shaper = shaper
    const lines = createInterface({ input: shaper.stdout! })
    const first = new Promise<void>((done, fail) => {
      lines.once('line', () => done())
      shaper.once('exit', (code) => fail(new Error(`link shaper exited (${code}) before it was ready`)))
    })
    active.result = new Promise((done) => {
      let last = ''
      lines.on('line', (line) => {
        last = line
      })
      shaper.once('exit', () => done(last))
    })
    await first
    await tc('-n', ns, 'qdisc', 'add', 'dev', dev, 'clsact')
    await tc(
      ...['-n', ns, 'filter', 'add', 'dev', dev, 'egress', 'prio', '1', 'protocol', 'all'],
      ...['bpf', 'bytecode', NOT_OUR_MARK, 'action', 'mirred', 'egress', 'redirect', 'dev', `${pair}a`],
    )
    return 'userspace'
  }

  /** Lifts every shape set with `shape()`; reports what the last one did. */
  async unshape(): Promise<ShapeReport | null> {
    let report: ShapeReport | null = null
    for (const active of this.shapes.splice(0)) {
      if (active.kind === 'netem') {
        const text = await tc('-s', '-n', active.ns, 'qdisc', 'show', 'dev', active.dev).catch(() => '')
        report = {
          shaper: 'netem',
          dropped: Number(/dropped (\d+)/.exec(text)?.[1] ?? Number.NaN),
          forwarded: null,
        }
        await tc('-n', active.ns, 'qdisc', 'del', 'dev', active.dev, 'root').catch(() => {})
        continue
      }
      // Redirect no more, then let the shaper send what it holds and say what it did.
      await tc('-n', active.ns, 'qdisc', 'del', 'dev', active.dev, 'clsact').catch(() => {})
      active.shaper?.kill('SIGTERM')
      const last = await Promise.race([active.result ?? Promise.resolve(''), sleep(5_000).then(() => '')])
      if (active.shaper?.exitCode == null && active.shaper?.signalCode == null) active.shaper?.kill('SIGKILL')
      await ip('-n', active.ns, 'link', 'del', `${active.pair}a`).catch(() => {})
      try {
        report = { shaper: 'userspace', ...(JSON.parse(last) as Omit<ShapeReport, 'shaper'>) }
      } catch {
        report = { shaper: 'userspace', dropped: null, forwarded: null }
      }
    }
    return report
  }

  /**
   * Polls `check` until it returns a value other than undefined, failing at once
   * when an agent process has exited, and with the last complaint and log tails on timeout.
   */
  async waitFor<T>(
    what: string,
    check: () => Promise<T | undefined> | T | undefined,
    timeout: number,
    interval = 100,
  ): Promise<T> {
    const deadline = Date.now() + timeout
    let last = 'condition not met'
    for (;;) {
      const gone = this.agents.find((a) => a?.exited)
      if (gone != null)
        throw new Error(
          `agent ${gone.name} exited (${await gone.exit}) while waiting for ${what}\n${await this.tails()}`,
        )
      try {
        const value = await check()
        if (value !== undefined) return value
        last = 'condition not met'
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last}\n${await this.tails()}`)
      await sleep(interval)
    }
  }

  /** The last lines of every agent's log, for a failure message. */
  async tails(lines = 12): Promise<string> {
    const parts: string[] = []
    for (const agent of this.agents) {
      if (agent == null) continue
      const text = await readFile(agent.log, 'utf8').catch(() => '')
      const tail = text
        .trimEnd()
        .split('\n')
        .filter((line) => !line.includes(' DEBUG '))
        .slice(-lines)
      parts.push(`--- ${agent.name} ${agent.id.slice(-6)} (${agent.ip}):\n${tail.join('\n')}`)
    }
    return parts.join('\n')
  }

  /**
   * Stops every agent (SIGTERM, SIGKILL after 10 s) and forwarder, deletes the
   * namespaces (veths, bridges and qdiscs go with them) and, unless `keep`, the folder.
   */
  async destroy(keep = false): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    await Promise.all(
      this.pending.map(async ({ child, exit, forwarder }) => {
        if (child.exitCode == null && child.signalCode == null) child.kill('SIGTERM')
        const code = await Promise.race([exit, sleep(10_000).then(() => 'timeout')])
        if (code === 'timeout') {
          child.kill('SIGKILL')
          await exit
        }
        forwarder?.kill('SIGTERM')
      }),
    )
    await Promise.all(this.agents.map((a) => a?.dispatcher.close().catch(() => {})))
    await this.unshape().catch(() => {})
    await this.net?.destroy()
    if (keep) console.warn(`[netns cluster] agent data and logs kept in ${this.dir}`)
    else await rm(this.dir, { recursive: true, force: true })
  }
}
