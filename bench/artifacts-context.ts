/**
 * What the phases of the artifacts benchmark share: the processes and folders to clean up,
 * the publisher key and cluster secret, how agents start, one timed transfer (publish to
 * the seed, wait until every downloader logged the version complete) and progress lines.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  AgentProcess,
  type Children,
  cpuTicks,
  expandAgentArgs,
  foreignTicks,
  machineTicks,
  processTicks,
  runCli,
} from './artifacts-agents.js'
import { clockTicks, round, type TempDirs } from './util.js'

export const MiB = 1024 * 1024
export const NAME = 'bench'
/** After every agent lists N alive, before publishing: lets gossip meshes form. */
export const SETTLE_MS = 2_000

/** Closed: every agent has the cluster secret (`--secret-file`), as in production. Open: none has. */
export type ClusterMode = 'closed' | 'open'

export interface Context {
  children: Children
  dirs: TempDirs
  /** The publisher's private key and the public key every agent trusts. */
  key: string
  pub: string
  /** The cluster secret closed clusters share. */
  secret: string
  suffix: string
  cleanups: Array<() => Promise<void>>
  /** Extra agent flags with `{ip}` and `{port}` placeholders (see expandAgentArgs). */
  agentArgs: string[]
  /** performance.now() when the run began, for progress lines. */
  began: number
}

/** One progress line on stderr with the time since the run began. */
export function progress(ctx: Context, text: string): void {
  const s = (performance.now() - ctx.began) / 1000
  const stamp = `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`
  console.error(`artifacts [${stamp}] ${text}`)
}

/** Starts one agent of a cluster in `mode`; its data folder is removed with `removeData`. */
export async function startAgent(
  ctx: Context,
  options: {
    cluster: string
    mode: ClusterMode
    ip: string
    listen: string
    api: string
    bootstrap: string[]
    ns: string | null
  },
): Promise<AgentProcess> {
  return AgentProcess.start(ctx.children, {
    cluster: options.cluster,
    dataDir: await ctx.dirs.make('shoal-bench-art-agent-'),
    listen: options.listen,
    api: options.api,
    bootstrap: options.bootstrap,
    trust: ctx.pub,
    secretFile: options.mode === 'closed' ? ctx.secret : null,
    extraArgs: await expandAgentArgs(ctx.agentArgs, options.ip),
    ns: options.ns,
  })
}

/** Stops the agents and removes their data folders (a 20-agent phase holds 20 copies). */
export async function stopAgents(agents: AgentProcess[]): Promise<void> {
  await Promise.all(agents.map((a) => a.stop()))
  await Promise.all(agents.map((a) => rm(a.dataDir, { recursive: true, force: true }).catch(() => {})))
}

/** `count` files of random bytes totalling `bytes` in DIR; their paths. */
export async function makeDistribution(dir: string, bytes: number, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const paths: string[] = []
  for (let i = 0; i < count; i++) {
    const size = Math.floor(bytes / count) + (i === count - 1 ? bytes % count : 0)
    const path = join(dir, `part-${i + 1}.bin`)
    // In pieces: a 200 MiB buffer at once is needless memory.
    await writeFile(path, '')
    for (let left = size; left > 0; left -= 16 * MiB) {
      await writeFile(path, randomBytes(Math.min(left, 16 * MiB)), { flag: 'a' })
    }
    paths.push(path)
  }
  return paths
}

export function dirOf(files: string[]): string {
  return files[0]!.slice(0, files[0]!.lastIndexOf('/'))
}

export interface TransferStats {
  bytesServed: number
  bytesFetched: number
  chunkRequestsFailed: number
  sources: Record<string, Record<string, number>>
  dataPlane: { fallbacks: number; busyAnswers: number; chunksServed: number } | null
}

/** The distributor's counters from `GET /api/status` (`transfer`), or null. */
export function transferStats(status: unknown): TransferStats | null {
  return (status as { transfer?: TransferStats } | null)?.transfer ?? null
}

export interface Transfer {
  id: string
  /** performance.now() when the seed logged the version published. */
  since: number
  /** Until every downloader had accepted the manifest. */
  learnedMs: number | null
  /** Per downloader, ms from `since` to its complete line; null if it did not finish. */
  agentMs: Array<number | null>
  totalMs: number | null
  /** Per agent (seed first), CPU seconds (user + system) over the transfer. */
  cpuSeconds: Array<number | null>
  /** CPU seconds used meanwhile by processes this benchmark did not start (other work on the machine). */
  otherCpuSeconds: number
  machineBusyPercent: number
}

/** Publishes DIR to the seed and waits (at most `capMs`) until every downloader logged it complete. */
export async function transfer(
  ctx: Context,
  seed: AgentProcess,
  downloaders: AgentProcess[],
  dir: string,
  version: string,
  capMs: number,
): Promise<Transfer> {
  const id = `${NAME}@${version}`
  const all = [seed, ...downloaders]
  const before = await Promise.all(all.map((a) => cpuTicks(a.pid)))
  const published = await runCli(
    ctx.children,
    [
      'publish',
      dir,
      '--name',
      NAME,
      '--version',
      version,
      '--key',
      ctx.key,
      '--api',
      seed.info.api,
      '--json',
    ],
    seed.ns,
  )
  if (published.code !== 0) throw new Error(`publish failed (${published.code}): ${published.stderr.trim()}`)
  // The seed's own CPU counts from here: the upload and hashing of publish are not the transfer.
  const [seedTicks, machine0, procs0] = await Promise.all([
    cpuTicks(seed.pid),
    machineTicks(),
    processTicks(),
  ])
  before[0] = seedTicks
  await waitForCondition(() => seed.events.has(`published:${id}`), 5_000)
  const since = seed.events.get(`published:${id}`) ?? performance.now()
  const doneKey = `complete:${id}`
  const deadline = since + capMs
  while (
    !downloaders.every((a) => a.events.has(doneKey) || a.child.exitCode != null || a.child.signalCode != null)
  ) {
    if (performance.now() > deadline) break
    await sleep(20)
  }
  const [after, machine1, procs1] = await Promise.all([
    Promise.all(all.map((a) => cpuTicks(a.pid))),
    machineTicks(),
    processTicks(),
  ])
  const ticks = clockTicks()
  const mine = ctx.children.pids()
  const agentMs = downloaders.map((a) => {
    const at = a.events.get(doneKey)
    return at == null ? null : Math.round(at - since)
  })
  const learned = downloaders.map((a) => a.events.get(`learned:${id}`))
  return {
    id,
    since,
    learnedMs: learned.every((at) => at != null)
      ? Math.round(Math.max(...(learned as number[])) - since)
      : null,
    agentMs,
    totalMs: agentMs.every((ms) => ms != null) ? Math.max(...(agentMs as number[])) : null,
    cpuSeconds: all.map((_, i) => {
      const [a, b] = [before[i], after[i]]
      return a == null || b == null ? null : round((b - a) / ticks, 2)
    }),
    otherCpuSeconds: round(foreignTicks(procs0, procs1, mine) / ticks, 1),
    machineBusyPercent: round(
      ((machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)) * 100,
    ),
  }
}

async function waitForCondition(done: () => boolean, capMs: number): Promise<void> {
  const deadline = performance.now() + capMs
  while (!done() && performance.now() < deadline) await sleep(20)
}

/** Polls every agent's view until all list `n` alive; ms, or null after `capMs`. */
export async function waitForAlive(
  ctx: Context,
  agents: AgentProcess[],
  n: number,
  capMs: number,
): Promise<number | null> {
  const since = performance.now()
  const alive = async (agent: AgentProcess) => {
    const [status] = await agent.api(ctx.children, ['/api/status'])
    return (status as { members?: { alive?: number } } | null)?.members?.alive ?? 0
  }
  // The seed first (one cheap probe per round), then everyone.
  while (performance.now() - since < capMs) {
    if ((await alive(agents[0]!)) === n) {
      const counts = await Promise.all(agents.map(alive))
      if (counts.every((c) => c === n)) return Math.round(performance.now() - since)
    }
    await sleep(500)
  }
  return null
}

export function median(values: Array<number | null>, digits = 1): number | null {
  const known = values.filter((v): v is number => v != null).sort((a, b) => a - b)
  if (known.length === 0) return null
  const mid = Math.floor(known.length / 2)
  return known.length % 2 === 1 ? known[mid]! : round((known[mid - 1]! + known[mid]!) / 2, digits)
}

/** a ÷ b rounded, or null when either is unknown (or b is 0). */
export function ratio(a: number | null | undefined, b: number | null | undefined, digits = 2): number | null {
  return a == null || b == null || b === 0 ? null : round(a / b, digits)
}
