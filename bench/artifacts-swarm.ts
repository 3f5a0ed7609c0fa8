/**
 * Shaped phases of the artifacts benchmark: N agent processes, each in its own network
 * namespace whose link is shaped with tc to B in both directions. Time from the seed
 * holding the published version to every agent logging it complete, against S/B; the
 * same N-1 downloaders fetching the same bytes over plain HTTP from one server; and the
 * link's own overhead w, from one plain TCP copy through two shaped links.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { type AgentProcess, CHILD, JsonLines, peakRssMB, tail, terminate } from './artifacts-agents.js'
import {
  type ClusterMode,
  type Context,
  dirOf,
  median,
  progress,
  ratio,
  SETTLE_MS,
  startAgent,
  stopAgents,
  transfer,
  transferStats,
  waitForAlive,
} from './artifacts-context.js'
import { type Host, linkBytes, type Topology } from './artifacts-netns.js'
import { round } from './util.js'

const AGENT_PORT = 7946
const NS_API = '127.0.0.1:7070'
const HTTP_PORT = 8080
const TCP_PORT = 8081

/** The physical limits of one swarm result (bench/artifacts-report.ts computes them). */
export interface Limits {
  /** Link bound w·(S/B)·(1 + (⌈log2 N⌉−1)/m), ms. */
  linkMs: number | null
  /** CPU bound: the reference copy's CPU per byte × S × (N−1) ÷ cores, ms. */
  cpuMs: number | null
  /** The same with the agents' CPU per byte measured on loopback (what the product's cost per byte allows), ms. */
  agentCpuMs: number | null
  /** The tighter (larger) of linkMs and cpuMs, and which it is. */
  boundMs: number | null
  binding: 'link' | 'cpu' | null
  /** boundMs ÷ measured P2P time: 1 is at the physical limit. */
  fraction: number | null
}

export interface SwarmResult {
  n: number
  cluster: ClusterMode
  /** Until every agent was started and listed N alive. */
  startMs: number | null
  /** Until every downloader logged the version complete. */
  p2pMs: number | null
  /** P2P time ÷ (S/B). */
  p2pRatio: number | null
  /** Per downloader: ms from the seed holding the version to it logging complete. */
  agentMs: { min: number; median: number; max: number } | null
  /** Agents whose API lists the version complete after the run, of N. */
  completeByApi: number
  /** Chunks of the version (m), as the seed's API counts them. */
  chunks: number | null
  /** Bytes the seed served (its `bytesServed` counter, /api/status), in copies of the distribution. */
  seedCopies: number | null
  /**
   * All agents together, in copies of the distribution: bytes whose chunk answer was written
   * out (served) and verified chunks written by fetchers (fetched). Both are N-1 when nothing
   * is wasted; served above fetched is chunks sent whose requests had already given up.
   */
  servedCopies: number | null
  fetchedCopies: number | null
  /** Served ÷ kept (N-1 copies), from the agents' counters: 1 when no transfer is wasted. */
  servedPerKept: number | null
  /** The same seen from the wire: bytes the downloaders' links delivered ÷ N-1 copies (headers included, ~1.05 when nothing is wasted). */
  linkPerKept: number | null
  /**
   * Whether the agents' counters account for every byte: the fetchers counted at least N-1
   * copies and the seed at least one. When not (bytes moved by a path the counters miss),
   * the targets read the link counters instead.
   */
  countersComplete: boolean
  /**
   * What the shaped links carried over the P2P time (from tc's counters, headers included):
   * the seed's uplink and the downloaders' downlinks as a share of B, the seed's uplink in
   * copies of the distribution (the counter above, seen from the wire) and all bytes delivered
   * to downloaders in copies (N-1 plus overhead when nothing is wasted).
   */
  links: { seedUpPercent: number; meanDownPercent: number; seedUpCopies: number; downCopies: number } | null
  /** ms from the seed holding the version until the last downloader had accepted its manifest. */
  learnedMs: number | null
  /** Mean number of peers each downloader received bytes from. */
  meanSourcesPerAgent: number | null
  /** Summed over the agents: chunks fetched over libp2p for want of a data plane, busy answers, failed requests. */
  health: { fallbacks: number; busyAnswers: number; failedRequests: number; dataPlaneChunks: number }
  cpu: {
    machineBusyPercent: number
    /** All agents, CPU seconds (user + system) over the P2P time. */
    agentCpuSeconds: number | null
    /** agentCpuSeconds ÷ (N-1). */
    perCopyS: number | null
    otherCpuSeconds: number
  } | null
  meanPeakRssMB: number | null
  baselineMs: number | null
  /** Baseline ÷ P2P. */
  baselineRatio: number | null
  /** Bits per second the HTTP server sent, all clients together. */
  baselineServerMbit: number | null
  limits: Limits | null
  notes: string[]
}

export interface SwarmOptions {
  n: number
  cluster: ClusterMode
  files: string[]
  bytes: number
  rateMbit: number
  capMs: number
  baseline: boolean
  /** Version label; unique per phase. */
  version: string
}

export async function measureSwarm(ctx: Context, topology: Topology, o: SwarmOptions): Promise<SwarmResult> {
  const { n, bytes } = o
  const idealMs = (bytes * 8) / (o.rateMbit * 1e3)
  const hosts = topology.hosts.slice(0, n)
  const notes: string[] = []
  const result: SwarmResult = {
    n,
    cluster: o.cluster,
    startMs: null,
    p2pMs: null,
    p2pRatio: null,
    agentMs: null,
    completeByApi: 0,
    chunks: null,
    seedCopies: null,
    servedCopies: null,
    fetchedCopies: null,
    servedPerKept: null,
    linkPerKept: null,
    countersComplete: false,
    links: null,
    learnedMs: null,
    meanSourcesPerAgent: null,
    health: { fallbacks: 0, busyAnswers: 0, failedRequests: 0, dataPlaneChunks: 0 },
    cpu: null,
    meanPeakRssMB: null,
    baselineMs: null,
    baselineRatio: null,
    baselineServerMbit: null,
    limits: null,
    notes,
  }
  const agents: AgentProcess[] = []
  const cluster = `bench-art-${o.version}-${ctx.suffix}`
  const start = async (host: Host, bootstrap: string[]) => {
    const agent = await startAgent(ctx, {
      cluster,
      mode: o.cluster,
      ip: host.ip,
      listen: `/ip4/${host.ip}/tcp/${AGENT_PORT}`,
      api: NS_API,
      bootstrap,
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
    progress(ctx, `  ${n} agents up in ${(result.startMs / 1000).toFixed(1)} s; publishing`)

    const links0 = await linkBytes(topology, n)
    const t = await transfer(ctx, seed, downloaders, dirOf(o.files), o.version, o.capMs)
    const links1 = await linkBytes(topology, n)
    if (t.totalMs != null) {
      const capacity = (o.rateMbit * 1e6 * (t.totalMs / 1e3)) / 8
      const up = links1.up.map((b, i) => b - links0.up[i]!)
      const down = links1.down.map((b, i) => b - links0.down[i]!)
      const delivered = down.slice(1).reduce((a, b) => a + b, 0)
      result.links = {
        seedUpPercent: round((up[0]! / capacity) * 100),
        meanDownPercent: round((delivered / (n - 1) / capacity) * 100),
        seedUpCopies: round(up[0]! / bytes, 2),
        downCopies: round(delivered / bytes, 2),
      }
      result.linkPerKept = ratio(delivered, (n - 1) * bytes, 3)
    }
    result.p2pMs = t.totalMs
    result.learnedMs = t.learnedMs
    result.p2pRatio = ratio(t.totalMs, idealMs)
    const times = t.agentMs.filter((ms): ms is number => ms != null).sort((a, b) => a - b)
    if (times.length > 0) result.agentMs = { min: times[0]!, median: median(times)!, max: times.at(-1)! }
    if (t.totalMs == null) {
      notes.push(
        `${t.agentMs.filter((ms) => ms == null).length} of ${n - 1} downloaders not complete within ${Math.round(o.capMs / 1000)} s`,
      )
    }
    const cpu = t.cpuSeconds.every((c) => c != null)
      ? round(t.cpuSeconds.reduce((s, c) => s! + c!, 0)!, 1)
      : null
    result.cpu = {
      machineBusyPercent: t.machineBusyPercent,
      agentCpuSeconds: cpu,
      perCopyS: ratio(cpu, n - 1),
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
      if (i === 0 && row != null) result.chunks = row.progress.total
      if (row?.complete === true) result.completeByApi++
      else
        notes.push(
          `agent ${i}: API says ${row == null ? 'unknown version' : `${row.progress.chunks}/${row.progress.total} chunks`}`,
        )
      const stats = transferStats(status)
      if (i === 0 && stats != null) result.seedCopies = round(stats.bytesServed / bytes, 2)
      served += stats?.bytesServed ?? 0
      fetched += stats?.bytesFetched ?? 0
      result.health.fallbacks += stats?.dataPlane?.fallbacks ?? 0
      result.health.busyAnswers += stats?.dataPlane?.busyAnswers ?? 0
      result.health.dataPlaneChunks += stats?.dataPlane?.chunksServed ?? 0
      result.health.failedRequests += stats?.chunkRequestsFailed ?? 0
      if (i > 0) sources += Object.keys(stats?.sources[t.id] ?? {}).length
    })
    result.meanSourcesPerAgent = n > 1 ? round(sources / (n - 1), 1) : null
    result.servedCopies = round(served / bytes, 2)
    result.fetchedCopies = round(fetched / bytes, 2)
    result.servedPerKept = ratio(served, (n - 1) * bytes, 3)
    result.countersComplete =
      fetched >= 0.99 * (n - 1) * bytes && (result.seedCopies == null || result.seedCopies >= 0.99)
    if (!result.countersComplete)
      notes.push(
        `the agents' counters miss bytes (fetched ${result.fetchedCopies} copies, seed served ${result.seedCopies}): targets use the link counters`,
      )
    const rss = (await Promise.all(agents.map((a) => peakRssMB(a.pid)))).filter((v): v is number => v != null)
    result.meanPeakRssMB = rss.length === 0 ? null : round(rss.reduce((s, v) => s + v, 0) / rss.length)
    progress(
      ctx,
      `  P2P ${t.totalMs == null ? 'incomplete' : `${(t.totalMs / 1000).toFixed(1)} s`} ` +
        `(x${result.p2pRatio ?? '-'} S/B), seed sent ${result.seedCopies ?? '-'} copies, ` +
        `served/kept ${result.servedPerKept ?? '-'}, CPU ${result.cpu.perCopyS ?? '-'} s/copy; ` +
        `data plane ${result.health.dataPlaneChunks} chunks, libp2p fallbacks ${result.health.fallbacks}, ` +
        `busy ${result.health.busyAnswers}, failed ${result.health.failedRequests}`,
    )
  } catch (err) {
    notes.push(`P2P aborted: ${String(err)}`)
    progress(ctx, `  P2P aborted: ${String(err)}`)
  } finally {
    await stopAgents(agents)
  }

  if (!o.baseline) return result
  const baseline = await httpBaseline(
    ctx,
    hosts,
    o.files,
    bytes,
    Math.max(60_000, 2 * (n - 1) * idealMs + 30_000),
  )
  if (typeof baseline === 'string') notes.push(`baseline: ${baseline}`)
  else {
    result.baselineMs = baseline
    result.baselineServerMbit = round(((n - 1) * bytes * 8) / (baseline * 1e3))
    result.baselineRatio = ratio(baseline, result.p2pMs)
  }
  progress(
    ctx,
    `  HTTP baseline ${result.baselineMs == null ? 'failed' : `${(result.baselineMs / 1000).toFixed(1)} s`} ` +
      `(baseline ÷ P2P ${result.baselineRatio ?? '-'})`,
  )
  return result
}

/** N-1 clients download the files at once over HTTP from a server on hosts[0]; ms until all are done. */
async function httpBaseline(
  ctx: Context,
  hosts: Host[],
  files: string[],
  bytes: number,
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
            value.ms != null && value.bytes === bytes ? at - since : (value.error ?? `${value.bytes} bytes`),
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

export interface LinkOverhead {
  rateMbit: number
  bytes: number
  /** One plain TCP copy from host 1 to host 2 (random bytes from memory, discarded). */
  ms: number | null
  /** Its payload rate, Mbit/s. */
  mbit: number | null
  /** w = ms ÷ (bytes/B): what tbf, TCP/IP headers and the veth cost over the nominal rate. */
  w: number | null
  note: string | null
}

/**
 * w, the shaped link's overhead: one plain TCP copy of `bytes` through two shaped links
 * (host 1's uplink, host 2's downlink) against bytes/B.
 */
export async function linkOverhead(
  ctx: Context,
  topology: Topology,
  rateMbit: number,
  bytes: number,
): Promise<LinkOverhead> {
  const [from, to] = topology.hosts
  const result: LinkOverhead = { rateMbit, bytes, ms: null, mbit: null, w: null, note: null }
  if (from == null || to == null) return { ...result, note: 'needs two hosts' }
  const idealMs = (bytes * 8) / (rateMbit * 1e3)
  const server = ctx.children.spawn(
    process.execPath,
    [CHILD, 'tcp-source', from.ip, String(TCP_PORT), String(bytes)],
    from.ns,
  )
  try {
    await new JsonLines(server, 'tcp source', tail(server.stderr!)).next(10_000)
    const client = ctx.children.spawn(
      process.execPath,
      [CHILD, 'tcp-fetch', from.ip, String(TCP_PORT)],
      to.ns,
    )
    const { value } = await new JsonLines(client, 'tcp fetch', tail(client.stderr!)).next<{
      bytes: number
      ms?: number
      error?: string
    }>(Math.max(30_000, 3 * idealMs))
    if (value.ms == null || value.bytes !== bytes)
      return { ...result, note: value.error ?? `received ${value.bytes} of ${bytes} bytes` }
    return {
      ...result,
      ms: Math.round(value.ms),
      mbit: round((bytes * 8) / (value.ms * 1e3)),
      w: round(value.ms / idealMs, 3),
    }
  } catch (err) {
    return { ...result, note: String(err) }
  } finally {
    await terminate(server, 1_000)
  }
}
