/**
 * Artifacts benchmark: how fast a 100 MiB distribution spreads.
 * 1. Shaped: N agent processes, each in its own network namespace whose link is
 *    shaped with tc to B in both directions; time from the seed holding the
 *    published version to every agent logging it complete, against S/B; and the
 *    same N-1 downloaders fetching the same bytes over plain HTTP from one server.
 * 2. Loopback: one agent-to-agent transfer on 127.0.0.1 against a plain TCP copy.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEFAULT_CHUNK_SIZE } from '../src/artifacts/constants.js'
import { freePort } from '../src/shared/ports.js'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import {
  AgentProcess,
  CHILD,
  Children,
  cpuTicks,
  foreignTicks,
  JsonLines,
  machineTicks,
  peakRssMB,
  processTicks,
  runCli,
  tail,
  terminate,
} from './artifacts-agents.js'
import {
  createShapedHosts,
  type Host,
  linkBytes,
  netnsUnavailableReason,
  type Topology,
} from './artifacts-netns.js'
import { render, targets } from './artifacts-report.js'
import { clockTicks, machine, round, source, TempDirs, waitFor } from './util.js'

const MiB = 1024 * 1024
const NAME = 'bench'
/** A /24 that exists only inside the namespaces this benchmark makes. */
const SUBNET = '10.231.88'
const AGENT_PORT = 7946
const NS_API = '127.0.0.1:7070'
const HTTP_PORT = 8080
/** After every agent lists N alive, before publishing: lets gossip meshes form. */
const SETTLE_MS = 2_000

export interface ArtifactsOptions {
  /** Agent counts (the seed included) for the shaped runs. Default 2, 5, 10, 20. */
  sizes?: number[]
  /** Link rate of every host, Mbit/s. Default 200. */
  rateMbit?: number
  /** Distribution size in MiB, split over `files` files. Default 100 in 4. */
  mebibytes?: number
  files?: number
  /** Loopback transfers (each with its TCP copy); medians are reported. Default 3. */
  loopbackRuns?: number
  /** Run the HTTP baseline after each shaped size. Default true. */
  baseline?: boolean
  /** Give up on a shaped P2P transfer after this many seconds. Default 40 x S/B, at least 60. */
  p2pCapS?: number
}

export interface ShapedSize {
  n: number
  /** Until every agent was started and listed N alive. */
  startMs: number | null
  p2pMs: number | null
  /** P2P time ÷ (S/B). */
  p2pRatio: number | null
  /** Per downloader: ms from the seed holding the version to it logging complete. */
  agentMs: { min: number; median: number; max: number } | null
  /** Agents whose API lists the version complete after the run, of N. */
  completeByApi: number
  /** Bytes the seed served, in copies of the distribution. */
  seedCopies: number | null
  /**
   * All agents together, in copies of the distribution: bytes whose chunk answer was written
   * out (served) and verified chunks written by fetchers (fetched). Both are N-1 when nothing
   * is wasted; served above fetched is chunks sent whose requests had already given up.
   */
  servedCopies: number | null
  fetchedCopies: number | null
  /**
   * What the shaped links carried over the P2P time (from tc's counters, headers included):
   * the seed's uplink and the downloaders' downlinks as a share of B, and all bytes
   * delivered to downloaders in copies of the distribution (N-1 plus overhead when nothing is wasted).
   */
  links: { seedUpPercent: number; meanDownPercent: number; downCopies: number } | null
  /** ms from the seed holding the version until the last downloader had accepted its manifest. */
  learnedMs: number | null
  /** Mean number of peers each downloader received bytes from. */
  meanSourcesPerAgent: number | null
  cpu: { machineBusyPercent: number; agentCpuSeconds: number | null; otherCpuSeconds: number } | null
  meanPeakRssMB: number | null
  baselineMs: number | null
  /** Baseline ÷ P2P. */
  baselineRatio: number | null
  /** Bits per second the HTTP server sent, all clients together. */
  baselineServerMbit: number | null
  notes: string[]
}

export interface LoopbackRun {
  p2pMs: number | null
  p2pMBps: number | null
  tcpMs: number | null
  tcpMBps: number | null
  /** CPU seconds of the seed and the downloader over the transfer. */
  seedCpuS: number | null
  peerCpuS: number | null
  /** CPU seconds of processes this benchmark did not start, over the transfer. */
  otherCpuS: number | null
}

export interface LoopbackResult {
  runs: LoopbackRun[]
  p2pMBps: number | null
  tcpMBps: number | null
  ratio: number | null
  notes: string[]
}

interface Context {
  children: Children
  dirs: TempDirs
  key: string
  pub: string
  bytes: number
  suffix: string
  cleanups: Array<() => Promise<void>>
  baseline: boolean
  p2pCapMs: number | undefined
}

export async function runArtifacts(options: ArtifactsOptions = {}) {
  const began = Date.now()
  const loadAtStart = loadavg().map((v) => round(v, 2))
  const sizes = options.sizes ?? [2, 5, 10, 20]
  const rateMbit = options.rateMbit ?? 200
  const bytes = (options.mebibytes ?? 100) * MiB
  const files = options.files ?? 4
  const loopbackRuns = options.loopbackRuns ?? 3
  const ctx: Context = {
    children: new Children(),
    dirs: new TempDirs(),
    key: '',
    pub: '',
    bytes,
    suffix: randomBytes(3).toString('hex'),
    cleanups: [],
    baseline: options.baseline ?? true,
    p2pCapMs: options.p2pCapS == null ? undefined : options.p2pCapS * 1000,
  }
  // Once, whether the run ends or a signal comes first: children, namespaces, then folders.
  let cleaning: Promise<void> | undefined
  const cleanUp = () => {
    cleaning ??= (async () => {
      await ctx.children.killAll()
      for (const fn of ctx.cleanups.splice(0).reverse()) await fn().catch(() => {})
      await ctx.dirs.removeAll().catch((err: unknown) => console.error(`artifacts: cleanup: ${String(err)}`))
    })()
    return cleaning
  }
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`artifacts: ${signal}, cleaning up`)
    void cleanUp().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const notes: string[] = []
  let loopback: LoopbackResult | null = null
  let shaped: { available: boolean; reason: string | null; qdisc: string[]; results: ShapedSize[] } | null =
    null
  try {
    const root = await ctx.dirs.make('shoal-bench-art-')
    ctx.key = join(root, 'publisher.key')
    ctx.pub = `${ctx.key}.pub`
    const made = await runCli(ctx.children, ['key', 'new', ctx.key], null, 30_000)
    if (made.code !== 0) throw new Error(`shoal key new failed: ${made.stderr.trim()}`)
    const dists: string[][] = []
    for (let i = 0; i < Math.max(1, loopbackRuns); i++) {
      dists.push(await makeDistribution(join(root, `dist-${i + 1}`), bytes, files))
    }

    console.error(`artifacts: loopback, ${loopbackRuns} transfer(s) of ${bytes / MiB} MiB ...`)
    loopback = await measureLoopback(ctx, dists.slice(0, loopbackRuns))
    console.error(
      `artifacts: loopback P2P ${loopback.p2pMBps ?? '-'} MB/s, TCP ${loopback.tcpMBps ?? '-'} MB/s`,
    )

    const reason = await netnsUnavailableReason()
    if (reason != null) {
      shaped = { available: false, reason, qdisc: [], results: [] }
      notes.push(`shaped runs skipped: ${reason}`)
    } else {
      const topology = await createShapedHosts({
        count: Math.max(...sizes),
        subnet: SUBNET,
        rateMbit,
        prefix: `shoal-ba${ctx.suffix.slice(0, 2)}`,
        register: (destroy) => ctx.cleanups.push(destroy),
      })
      shaped = { available: true, reason: null, qdisc: topology.qdisc, results: [] }
      for (const n of sizes) {
        console.error(`artifacts: shaped N = ${n} ...`)
        const result = await measureShaped(ctx, topology, n, dists[0]!, rateMbit)
        shaped.results.push(result)
        console.error(
          `artifacts: N = ${n}: P2P ${result.p2pMs ?? '-'} ms (x${result.p2pRatio ?? '-'} S/B), ` +
            `HTTP ${result.baselineMs ?? '-'} ms (x${result.baselineRatio ?? '-'} P2P)`,
        )
      }
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
    console.error(`artifacts: aborted: ${String(err)}`)
  } finally {
    await cleanUp()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  const idealMs = (bytes * 8) / (rateMbit * 1e3)
  const report = {
    suite: 'artifacts',
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: { ...machine(), loadAverageAtStart: loadAtStart },
    source: source(),
    config: {
      bytes,
      files,
      chunkSize: DEFAULT_CHUNK_SIZE,
      rateMbit,
      idealMs: Math.round(idealMs),
      agentNodeFlags: AGENT_NODE_FLAGS,
      agentFlags: '--no-mdns --trust KEY --preset lan (default) ; no rate limits, default parallelism',
      dataDir: 'temp folder on the local disk (every agent fsyncs each chunk)',
      p2pTimed:
        'from the seed logging "distribution published" to the last agent logging "distribution complete"',
    },
    notes: [
      ...notes,
      'All agents share this machine: N agent processes, their noise encryption, yamux and hashing share its cores; ' +
        'cpu.machineBusyPercent is the whole machine over the P2P phase.',
      'Baseline: N-1 concurrent plain HTTP downloads (node http client) of the same files from one node http server ' +
        "in the seed's namespace, behind the same shaped link.",
    ],
    shaped,
    loopback,
    targets: targets(shaped?.results ?? [], loopback),
  }
  return { report, text: render(report) }
}

/** `count` files of random bytes totalling `bytes` in DIR; their names. */
async function makeDistribution(dir: string, bytes: number, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const names: string[] = []
  for (let i = 0; i < count; i++) {
    const size = Math.floor(bytes / count) + (i === count - 1 ? bytes % count : 0)
    const name = `part-${i + 1}.bin`
    await writeFile(join(dir, name), randomBytes(size))
    names.push(name)
  }
  return names.map((name) => join(dir, name))
}

function dirOf(files: string[]): string {
  return files[0]!.slice(0, files[0]!.lastIndexOf('/'))
}

interface Transfer {
  id: string
  /** performance.now() when the seed logged the version published. */
  since: number
  /** Until every downloader had accepted the manifest. */
  learnedMs: number | null
  /** Per downloader, ms from `since` to its complete line; null if it did not finish. */
  agentMs: Array<number | null>
  totalMs: number | null
  cpuSeconds: Array<number | null>
  /** CPU seconds used meanwhile by processes this benchmark did not start (other work on the machine). */
  otherCpuSeconds: number
  machineBusyPercent: number
}

/** Publishes DIR to the seed and waits (at most `capMs`) until every downloader logged it complete. */
async function transfer(
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
  await waitFor(() => seed.events.has(`published:${id}`), { capMs: 5_000 })
  const since = seed.events.get(`published:${id}`) ?? performance.now()
  const doneKey = `complete:${id}`
  await waitFor(
    () =>
      downloaders.every(
        (a) => a.events.has(doneKey) || a.child.exitCode != null || a.child.signalCode != null,
      ),
    { since, capMs, everyMs: 20 },
  )
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

async function measureLoopback(ctx: Context, dists: string[][]): Promise<LoopbackResult> {
  const notes: string[] = []
  const runs: LoopbackRun[] = []
  const agents: AgentProcess[] = []
  const cluster = `bench-art-lo-${ctx.suffix}`
  const start = async (bootstrap: string[]) => {
    const agent = await AgentProcess.start(ctx.children, {
      cluster,
      dataDir: await ctx.dirs.make('shoal-bench-art-lo-'),
      listen: '/ip4/127.0.0.1/tcp/0',
      api: `127.0.0.1:${await freePort()}`,
      bootstrap,
      trust: ctx.pub,
      ns: null,
    })
    agents.push(agent)
    return agent
  }
  try {
    const seed = await start([])
    const peer = await start(seed.tcpAddrs)
    const converged = await waitForAlive(ctx, agents, 2, 30_000)
    if (converged == null) throw new Error('the two loopback agents did not see each other within 30 s')
    await sleep(SETTLE_MS)
    for (const [i, files] of dists.entries()) {
      const run: LoopbackRun = {
        p2pMs: null,
        p2pMBps: null,
        tcpMs: null,
        tcpMBps: null,
        seedCpuS: null,
        peerCpuS: null,
        otherCpuS: null,
      }
      const t = await transfer(ctx, seed, [peer], dirOf(files), `lo-${i + 1}`, 60_000)
      run.p2pMs = t.totalMs
      run.p2pMBps = t.totalMs == null ? null : round(ctx.bytes / 1e3 / t.totalMs)
      run.seedCpuS = t.cpuSeconds[0] ?? null
      run.peerCpuS = t.cpuSeconds[1] ?? null
      run.otherCpuS = t.otherCpuSeconds
      if (t.totalMs == null) notes.push(`run ${i + 1}: the transfer did not complete within 60 s`)
      const tcp = await tcpCopy(ctx, files)
      if (typeof tcp === 'string') notes.push(`run ${i + 1}: TCP copy failed: ${tcp}`)
      else {
        run.tcpMs = tcp
        run.tcpMBps = round(ctx.bytes / 1e3 / tcp)
      }
      runs.push(run)
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
  } finally {
    await Promise.all(agents.map((a) => a.stop()))
  }
  const p2p = median(runs.map((r) => r.p2pMBps))
  const tcp = median(runs.map((r) => r.tcpMBps))
  return {
    runs,
    p2pMBps: p2p,
    tcpMBps: tcp,
    ratio: p2p == null || tcp == null ? null : round(p2p / tcp, 3),
    notes,
  }
}

/** A plain TCP copy of the files (server process → client process that discards); ms, or why it failed. */
async function tcpCopy(ctx: Context, files: string[]): Promise<number | string> {
  const server = ctx.children.spawn(process.execPath, [CHILD, 'tcp-serve', '127.0.0.1', '0', ...files], null)
  try {
    const ready = await new JsonLines(server, 'tcp server', tail(server.stderr!)).next<{ port: number }>(
      10_000,
    )
    const client = ctx.children.spawn(
      process.execPath,
      [CHILD, 'tcp-fetch', '127.0.0.1', String(ready.value.port)],
      null,
    )
    const { value } = await new JsonLines(client, 'tcp client', tail(client.stderr!)).next<{
      bytes: number
      ms?: number
      error?: string
    }>(60_000)
    if (value.ms == null) return value.error ?? 'no result'
    if (value.bytes !== ctx.bytes) return `received ${value.bytes} of ${ctx.bytes} bytes`
    return value.ms
  } catch (err) {
    return String(err)
  } finally {
    await terminate(server, 1_000)
  }
}

/** Polls every agent's view until all list `n` alive; ms, or null after `capMs`. */
async function waitForAlive(
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

async function measureShaped(
  ctx: Context,
  topology: Topology,
  n: number,
  files: string[],
  rateMbit: number,
): Promise<ShapedSize> {
  const idealMs = (ctx.bytes * 8) / (rateMbit * 1e3)
  const hosts = topology.hosts.slice(0, n)
  const notes: string[] = []
  const result: ShapedSize = {
    n,
    startMs: null,
    p2pMs: null,
    p2pRatio: null,
    agentMs: null,
    completeByApi: 0,
    seedCopies: null,
    servedCopies: null,
    fetchedCopies: null,
    learnedMs: null,
    links: null,
    meanSourcesPerAgent: null,
    cpu: null,
    meanPeakRssMB: null,
    baselineMs: null,
    baselineRatio: null,
    baselineServerMbit: null,
    notes,
  }
  const agents: AgentProcess[] = []
  const cluster = `bench-art-${n}-${ctx.suffix}`
  const start = async (host: Host, bootstrap: string[]) => {
    const agent = await AgentProcess.start(ctx.children, {
      cluster,
      dataDir: await ctx.dirs.make(`shoal-bench-art-${n}-`),
      listen: `/ip4/${host.ip}/tcp/${AGENT_PORT}`,
      api: NS_API,
      bootstrap,
      trust: ctx.pub,
      ns: host.ns,
    })
    agents.push(agent)
    return agent
  }
  try {
    const since = performance.now()
    const seed = await start(hosts[0]!, [])
    const started = await Promise.allSettled(hosts.slice(1).map((h) => start(h, seed.tcpAddrs)))
    const failed = started.find((s) => s.status === 'rejected')
    if (failed != null) throw (failed as PromiseRejectedResult).reason
    const downloaders = agents.filter((a) => a !== seed)
    const converged = await waitForAlive(ctx, [seed, ...downloaders], n, 60_000)
    if (converged == null) throw new Error(`the ${n} agents did not all list ${n} alive within 60 s`)
    result.startMs = Math.round(performance.now() - since)
    await sleep(SETTLE_MS)

    const capMs = ctx.p2pCapMs ?? Math.max(60_000, 40 * idealMs)
    const links0 = await linkBytes(topology, n)
    const t = await transfer(ctx, seed, downloaders, dirOf(files), `${n}.0`, capMs)
    const links1 = await linkBytes(topology, n)
    if (t.totalMs != null) {
      const capacity = (rateMbit * 1e6 * (t.totalMs / 1e3)) / 8
      const up = links1.up.map((b, i) => b - links0.up[i]!)
      const down = links1.down.map((b, i) => b - links0.down[i]!)
      result.links = {
        seedUpPercent: round((up[0]! / capacity) * 100),
        meanDownPercent: round((down.slice(1).reduce((a, b) => a + b, 0) / (n - 1) / capacity) * 100),
        downCopies: round(down.slice(1).reduce((a, b) => a + b, 0) / ctx.bytes, 2),
      }
    }
    result.p2pMs = t.totalMs
    result.learnedMs = t.learnedMs
    result.p2pRatio = t.totalMs == null ? null : round(t.totalMs / idealMs, 2)
    const times = t.agentMs.filter((ms): ms is number => ms != null).sort((a, b) => a - b)
    if (times.length > 0) result.agentMs = { min: times[0]!, median: median(times)!, max: times.at(-1)! }
    if (t.totalMs == null) {
      notes.push(
        `${t.agentMs.filter((ms) => ms == null).length} of ${n - 1} downloaders not complete within ${Math.round(capMs / 1000)} s`,
      )
    }
    const cpu = t.cpuSeconds.every((c) => c != null)
      ? round(t.cpuSeconds.reduce((s, c) => s! + c!, 0)!, 1)
      : null
    result.cpu = {
      machineBusyPercent: t.machineBusyPercent,
      agentCpuSeconds: cpu,
      otherCpuSeconds: t.otherCpuSeconds,
    }

    // What each agent's API says once the timing is over.
    const answers = await Promise.all(
      agents.map((a) => a.api(ctx.children, ['/api/distributions', '/api/status'])),
    )
    let [sources, served, fetched] = [0, 0, 0]
    answers.forEach(([list, status], i) => {
      const row = (
        list as Array<{ id: string; complete: boolean; progress: { chunks: number; total: number } }> | null
      )?.find((d) => d.id === t.id)
      if (row?.complete === true) result.completeByApi++
      else
        notes.push(
          `agent ${i}: API says ${row == null ? 'unknown version' : `${row.progress.chunks}/${row.progress.total} chunks`}`,
        )
      const transferStats = (
        status as {
          transfer?: {
            bytesServed: number
            bytesFetched: number
            sources: Record<string, Record<string, number>>
          }
        } | null
      )?.transfer
      if (i === 0 && transferStats != null)
        result.seedCopies = round(transferStats.bytesServed / ctx.bytes, 2)
      served += transferStats?.bytesServed ?? 0
      fetched += transferStats?.bytesFetched ?? 0
      if (i > 0) sources += Object.keys(transferStats?.sources[t.id] ?? {}).length
    })
    result.meanSourcesPerAgent = n > 1 ? round(sources / (n - 1), 1) : null
    result.servedCopies = round(served / ctx.bytes, 2)
    result.fetchedCopies = round(fetched / ctx.bytes, 2)
    const rss = (await Promise.all(agents.map((a) => peakRssMB(a.pid)))).filter((v): v is number => v != null)
    result.meanPeakRssMB = rss.length === 0 ? null : round(rss.reduce((s, v) => s + v, 0) / rss.length)
  } catch (err) {
    notes.push(`P2P aborted: ${String(err)}`)
  } finally {
    await Promise.all(agents.map((a) => a.stop()))
  }

  if (!ctx.baseline) return result
  const baseline = await httpBaseline(ctx, hosts, files, Math.max(60_000, 2 * (n - 1) * idealMs + 30_000))
  if (typeof baseline === 'string') notes.push(`baseline: ${baseline}`)
  else {
    result.baselineMs = baseline
    result.baselineServerMbit = round(((n - 1) * ctx.bytes * 8) / (baseline * 1e3))
    if (result.p2pMs != null) result.baselineRatio = round(baseline / result.p2pMs, 2)
  }
  return result
}

/** N-1 clients download the files at once over HTTP from a server on hosts[0]; ms until all are done. */
async function httpBaseline(
  ctx: Context,
  hosts: Host[],
  files: string[],
  capMs: number,
): Promise<number | string> {
  const [server, ...clients] = hosts
  if (server == null || clients.length === 0) return 'needs two hosts'
  const serving = ctx.children.spawn(
    process.execPath,
    [CHILD, 'http-serve', server.ip, String(HTTP_PORT), dirOf(files)],
    server.ns,
  )
  const procs = clients.map((host) =>
    ctx.children.spawn(
      process.execPath,
      [
        CHILD,
        'http-fetch',
        ...files.map((f) => `http://${server.ip}:${HTTP_PORT}/${f.slice(f.lastIndexOf('/') + 1)}`),
      ],
      host.ns,
    ),
  )
  try {
    await new JsonLines(serving, 'http server', tail(serving.stderr!)).next(10_000)
    const outputs = procs.map((p) => new JsonLines(p, 'http client', tail(p.stderr!)))
    await Promise.all(outputs.map((o) => o.next(15_000)))
    const since = performance.now()
    for (const p of procs) p.stdin!.write('go\n')
    const done = await Promise.all(
      outputs.map((o) =>
        o.next<{ bytes: number; ms?: number; error?: string }>(capMs).then(
          ({ value, at }) =>
            value.ms != null && value.bytes === ctx.bytes
              ? at - since
              : (value.error ?? `${value.bytes} bytes`),
          (err: unknown) => String(err),
        ),
      ),
    )
    const failure = done.find((d) => typeof d === 'string')
    if (failure != null)
      return `${done.filter((d) => typeof d === 'string').length} client(s) failed: ${failure}`
    return Math.round(Math.max(...(done as number[])))
  } catch (err) {
    return String(err)
  } finally {
    await Promise.all([serving, ...procs].map((p) => terminate(p, 1_000)))
  }
}

function median(values: Array<number | null>): number | null {
  const known = values.filter((v): v is number => v != null).sort((a, b) => a - b)
  if (known.length === 0) return null
  const mid = Math.floor(known.length / 2)
  return known.length % 2 === 1 ? known[mid]! : round((known[mid - 1]! + known[mid]!) / 2)
}
