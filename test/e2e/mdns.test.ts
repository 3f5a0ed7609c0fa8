/**
 * End to end: agents started with no bootstrap list find each other by mDNS.
 *
 * Loopback has no multicast here, so the agents run in network namespaces joined
 * by a private bridge (test/helpers/netns.ts), one real `shoal agent` process per
 * namespace, and membership is read the way a user reads it: `shoal members --json`
 * run inside a namespace. A fourth agent of another cluster on the same bridge must
 * stay out. Needs root; skipped (with the reason printed) where namespaces cannot be made.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BridgedHosts,
  createBridgedHosts,
  inNetns,
  netnsUnavailableReason,
  randomSuffix,
} from '../helpers/netns.js'
import { skipReason } from '../helpers/skip.js'

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url))
const SUBNET = '10.213.77'
const LISTEN_PORT = 7946
const API_PORT = 7070
/** How long the first three agents get to find each other (and the outsider to answer). */
const CONVERGE_TIMEOUT = 90_000
/** How long the outsider is watched after the cluster converged. */
const OUTSIDER_WATCH = 2_500

// mDNS needs multicast, which loopback lacks: the agents get a LAN of network namespaces.
const unavailable = skipReason(
  import.meta.url,
  'mDNS discovery (network namespaces)',
  await netnsUnavailableReason(),
)

interface MemberEntry {
  id: string
  state: string
  self: boolean
}

interface RunningAgent {
  name: string
  cluster: string
  ns: string
  ip: string
  api: string
  dataDir: string
  stdoutFile: string
  stderrFile: string
  child: ChildProcess
  /** Exit code (or signal name) once the process is gone. */
  exit: Promise<number | string>
  exited: boolean
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms))
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

async function diagnostics(agents: RunningAgent[]): Promise<string> {
  const parts: string[] = []
  for (const agent of agents) {
    parts.push(
      `--- ${agent.name} (${agent.ns}, ${agent.ip}) stdout:\n${await tail(agent.stdoutFile)}\n` +
        `--- ${agent.name} stderr:\n${await tail(agent.stderrFile)}`,
    )
  }
  return parts.join('\n')
}

function startAgent(name: string, cluster: string, ns: string, ip: string, root: string): RunningAgent {
  const dataDir = join(root, name)
  const stdoutFile = join(root, `${name}.stdout.log`)
  const stderrFile = join(root, `${name}.stderr.log`)
  const out = openSync(stdoutFile, 'a')
  const err = openSync(stderrFile, 'a')
  const [command, args] = inNetns(ns, process.execPath, [
    CLI,
    'agent',
    '--cluster',
    cluster,
    '--data',
    dataDir,
    '--listen',
    `/ip4/${ip}/tcp/${LISTEN_PORT}`,
    // Each namespace has its own loopback; the CLI runs inside it (an API off loopback needs tokens).
    '--api',
    `127.0.0.1:${API_PORT}`,
    '--preset',
    'test',
  ])
  const child = spawn(command, args, { stdio: ['ignore', out, err] })
  closeSync(out)
  closeSync(err)
  const agent: RunningAgent = {
    name,
    cluster,
    ns,
    ip,
    api: `http://127.0.0.1:${API_PORT}`,
    dataDir,
    stdoutFile,
    stderrFile,
    child,
    exited: false,
    exit: new Promise((done) => {
      child.once('exit', (code, signal) => {
        agent.exited = true
        done(code ?? signal ?? 'unknown')
      })
      child.once('error', (error) => {
        agent.exited = true
        done(`spawn error: ${error.message}`)
      })
    }),
  }
  return agent
}

/** `shoal members --json --api URL`, run inside the agent's own namespace. */
function members(agent: RunningAgent): Promise<MemberEntry[]> {
  const [command, args] = inNetns(agent.ns, process.execPath, [CLI, 'members', '--json', '--api', agent.api])
  return new Promise((done, fail) => {
    execFile(command, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) {
        fail(new Error(`shoal members for ${agent.name} failed: ${stderr.trim() || error.message}`))
        return
      }
      try {
        done(JSON.parse(stdout) as MemberEntry[])
      } catch {
        fail(new Error(`shoal members for ${agent.name} printed no JSON: ${stdout.slice(0, 200)}`))
      }
    })
  })
}

async function stopAgent(agent: RunningAgent): Promise<number | string> {
  if (!agent.exited) agent.child.kill('SIGTERM')
  const code = await Promise.race([agent.exit, sleep(10_000).then(() => 'timeout' as const)])
  if (code !== 'timeout') return code
  agent.child.kill('SIGKILL')
  await agent.exit
  return 'did not exit within 10 s of SIGTERM; killed'
}

describe.skipIf(unavailable != null)('mDNS discovery between agents on one LAN (network namespaces)', () => {
  const rand = randomSuffix()
  const cluster = `mdnstest-${rand}`
  const otherCluster = `mdnsother-${rand}`
  let net: BridgedHosts | undefined
  let root = ''
  let keepLogs = false
  const agents: RunningAgent[] = []
  const outsider = () => agents[3]!
  const insiders = () => agents.slice(0, 3)

  /**
   * Polls `check` every `interval` ms until it returns a value, failing early when an
   * agent process has died, and with `check`'s last complaint and the agent logs on timeout.
   */
  async function pollUntil<T>(
    what: string,
    check: () => Promise<T | undefined>,
    timeout: number,
    interval = 250,
  ): Promise<T> {
    const deadline = Date.now() + timeout
    let last = 'no answer yet'
    for (;;) {
      const dead = agents.find((agent) => agent.exited)
      if (dead != null) {
        throw new Error(
          `agent ${dead.name} exited (${await dead.exit}) while waiting for ${what}\n${await diagnostics(agents)}`,
        )
      }
      try {
        const value = await check()
        if (value !== undefined) return value
        last = 'condition not met'
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeout} ms waiting for ${what}: ${last}\n${await diagnostics(agents)}`,
        )
      }
      await sleep(interval)
    }
  }

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`)
    root = await mkdtemp(join(tmpdir(), 'shoal-mdns-e2e-'))
    net = await createBridgedHosts({ count: 4, subnet: SUBNET, prefix: 'shoal-mdns' })
    for (const [i, host] of net.hosts.entries()) {
      const name = i < 3 ? `agent${i + 1}` : 'outsider'
      await mkdir(join(root, name), { recursive: true })
      agents.push(startAgent(name, i < 3 ? cluster : otherCluster, host.ns, host.ip, root))
    }
  })

  afterAll(async () => {
    const codes = await Promise.all(agents.map((agent) => stopAgent(agent)))
    for (const [i, code] of codes.entries()) {
      if (code !== 0) {
        keepLogs = true
        console.warn(`[mdns e2e] ${agents[i]!.name} exit after SIGTERM: ${code}`)
      }
    }
    await net?.destroy()
    if (root === '') return
    if (keepLogs) console.warn(`[mdns e2e] agent data and logs kept in ${root}`)
    else await rm(root, { recursive: true, force: true })
  })

  it('three agents with no bootstrap list see each other, all alive, the same view everywhere', async ({
    onTestFailed,
  }) => {
    onTestFailed(() => {
      keepLogs = true
    })
    const views = await pollUntil(
      'three agents to list the same three alive members',
      async () => {
        const seen = await Promise.all(insiders().map((agent) => members(agent)))
        const summary = seen.map(
          (view, i) => `${agents[i]!.name}: ${view.map((m) => `${m.id.slice(-6)}=${m.state}`).join(',')}`,
        )
        const ok = seen.every(
          (view) =>
            view.length === 3 &&
            view.every((m) => m.state === 'alive') &&
            ids(view).join() === ids(seen[0]!).join(),
        )
        if (!ok) throw new Error(summary.join(' | '))
        return seen
      },
      CONVERGE_TIMEOUT,
    )

    // What a user sees: three distinct ids, every one alive, the same set on every agent,
    // and that set is exactly the three agents (each one's own entry is marked self).
    const selves = views.map((view) => view.filter((m) => m.self).map((m) => m.id))
    for (const self of selves) expect(self).toHaveLength(1)
    const expected = selves.map((self) => self[0]!).sort()
    expect(new Set(expected).size).toBe(3)
    for (const view of views) {
      expect(ids(view)).toEqual(expected)
      expect(view.map((m) => m.state)).toEqual(['alive', 'alive', 'alive'])
    }
  })

  it('an agent of another cluster on the same LAN stays out, and sees only itself', async ({
    onTestFailed,
  }) => {
    onTestFailed(() => {
      keepLogs = true
    })
    const own = await pollUntil(
      'the outsider agent to answer',
      async () => {
        const view = await members(outsider())
        return view.length >= 1 ? view : undefined
      },
      CONVERGE_TIMEOUT,
    )
    const outsiderId = own.find((m) => m.self)?.id
    expect(outsiderId, 'the outsider lists itself').toBeDefined()

    // Watch for a while (and at least two rounds: one round of four CLI runs can take seconds on a
    // busy machine): at no point may the outsider show up in the cluster or learn of it.
    const until = Date.now() + OUTSIDER_WATCH
    for (let rounds = 0; rounds < 2 || Date.now() < until; rounds++) {
      const [a, b, c, o] = await Promise.all(agents.map((agent) => members(agent)))
      for (const view of [a!, b!, c!]) {
        expect(ids(view)).not.toContain(outsiderId)
        expect(view).toHaveLength(3)
      }
      expect(o!.map((m) => [m.id, m.state, m.self])).toEqual([[outsiderId, 'alive', true]])
      await sleep(250)
    }
  })
})

function ids(view: MemberEntry[]): string[] {
  return view.map((m) => m.id).sort()
}
