/**
 * Artifacts benchmark (issue 20's targets), against real agent processes:
 * 1. Loopback: one agent fetches S (200 MiB) from another on 127.0.0.1, in a closed
 *    cluster (`--secret-file`, as in production) and an open one, each transfer next to a
 *    reference copy (a TCP stream whose receiver hashes with SHA-256, writes and fsyncs).
 * 2. Shaped: N agents, each in a network namespace whose link is shaped to B (200 Mbit/s)
 *    both ways; the time until all N−1 downloaders hold S (100 MiB) against S/B, N−1 plain
 *    HTTP downloads from one server in the seed's namespace, the seed's upload in copies.
 * 3. Slow: the same at 20 Mbit/s with N = 10, for the bytes served ÷ the bytes kept.
 * 4. The physical limits of each result: the link bound (with w measured by a TCP copy
 *    through the shaped links) and the CPU bound of this machine (bench/artifacts-report.ts).
 * Phases and helpers: artifacts-loopback.ts, artifacts-swarm.ts, artifacts-context.ts.
 */
import { randomBytes } from 'node:crypto'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CHUNK_SIZE } from '../src/artifacts/constants.js'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { Children, runCli } from './artifacts-agents.js'
import { type ClusterMode, type Context, MiB, makeDistribution, progress } from './artifacts-context.js'
import { type LoopbackResult, measureLoopback } from './artifacts-loopback.js'
import { createShapedHosts, netnsUnavailableReason, reshape, type Topology } from './artifacts-netns.js'
import { limitsOf, render, type Target, targets } from './artifacts-report.js'
import { type LinkOverhead, linkOverhead, measureSwarm, type SwarmResult } from './artifacts-swarm.js'
import { type Machine, machine, round, source, TempDirs } from './util.js'

/** Version of the JSON this writes: 2 added closed/open loopback, the reference copy, slow links and limits. */
export const REPORT_VERSION = 2
/** A /24 that exists only inside the namespaces this benchmark makes. */
const SUBNET = '10.231.88'
/** The plain TCP copy that measures w lasts about this long at B (or is S when S is smaller). */
const LINK_PROBE_S = 5

export interface ArtifactsOptions {
  /** Loopback distribution size in MiB. Default 200. */
  loopbackMebibytes?: number
  /** Loopback transfers per cluster kind (each with its reference copy); medians are reported. Default 3, 0 skips. */
  loopbackRuns?: number
  /** Cluster kinds of the loopback phase. Default closed and open. */
  loopbackClusters?: ClusterMode[]
  /** Agent counts (the seed included) for the shaped runs. Default 2, 5, 10, 20; empty skips. */
  sizes?: number[]
  /** Link rate of every host in the shaped runs, Mbit/s. Default 200. */
  rateMbit?: number
  /** Shaped (and slow) distribution size in MiB, split over `files` files (loopback too). Default 100 in 4. */
  mebibytes?: number
  files?: number
  /** Cluster kinds of the shaped runs. Default closed. */
  shapedClusters?: ClusterMode[]
  /** Run the HTTP baseline after each shaped size. Default true. */
  baseline?: boolean
  /** Give up on a shaped P2P transfer after this many seconds. Default 40 x S/B, at least 60. */
  p2pCapS?: number
  /** Slow-link run: N agents at `rateMbit`; null skips. Default N = 10 at 20 Mbit/s, S as shaped. */
  slow?: { n: number; rateMbit: number; mebibytes?: number; capS?: number } | null
  /** Extra agent flags; `{ip}` becomes the agent's address and `{port}` a free port (e.g. `--data-listen {ip}:{port}`). */
  agentArgs?: string[]
}

export interface ShapedPhase {
  available: boolean
  reason: string | null
  qdisc: string[]
  rateMbit: number
  bytes: number
  /** S/B, ms. */
  idealMs: number
  linkOverhead: LinkOverhead | null
  /** The closed loopback reference's CPU seconds per copy, scaled to S. */
  referenceCpuPerCopyS: number | null
  results: SwarmResult[]
}

export interface SlowPhase extends Omit<ShapedPhase, 'results'> {
  n: number
  result: SwarmResult | null
}

export interface ArtifactsReport {
  suite: 'artifacts'
  version: number
  date: string
  durationS: number
  machine: Omit<Machine, 'loadAverageAtStart'> & { loadAverageAtStart: number[] }
  source: ReturnType<typeof source>
  config: {
    loopback: { bytes: number; files: number; runs: number; clusters: ClusterMode[] }
    bytes: number
    files: number
    chunkSize: number
    rateMbit: number
    idealMs: number
    cores: number
    agentNodeFlags: string[]
    agentFlags: string
    agentExtraArgs: string[]
    dataDir: string
    p2pTimed: string
    reference: string
    limits: string
  }
  notes: string[]
  loopback: { closed: LoopbackResult | null; open: LoopbackResult | null }
  shaped: ShapedPhase | null
  slow: SlowPhase | null
  targets: Target[]
}

export async function runArtifacts(options: ArtifactsOptions = {}) {
  const began = Date.now()
  const loadAtStart = loadavg().map((v) => round(v, 2))
  const loopbackBytes = (options.loopbackMebibytes ?? 200) * MiB
  const loopbackRuns = options.loopbackRuns ?? 3
  const loopbackClusters = options.loopbackClusters ?? ['closed', 'open']
  const sizes = options.sizes ?? [2, 5, 10, 20]
  const rateMbit = options.rateMbit ?? 200
  const bytes = (options.mebibytes ?? 100) * MiB
  const files = options.files ?? 4
  const shapedClusters = options.shapedClusters ?? ['closed']
  const slowOption = options.slow === undefined ? { n: 10, rateMbit: 20 } : options.slow
  const slowBytes = slowOption == null ? bytes : (slowOption.mebibytes ?? bytes / MiB) * MiB
  const cores = availableParallelism()
  const ctx: Context = {
    children: new Children(),
    dirs: new TempDirs(),
    key: '',
    pub: '',
    secret: '',
    suffix: randomBytes(3).toString('hex'),
    cleanups: [],
    agentArgs: options.agentArgs ?? [],
    began: performance.now(),
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
  const loopback: ArtifactsReport['loopback'] = { closed: null, open: null }
  const idealMs = (bytes * 8) / (rateMbit * 1e3)
  let shaped: ShapedPhase | null = null
  let slow: SlowPhase | null = null
  try {
    const root = await ctx.dirs.make('shoal-bench-art-')
    ctx.key = join(root, 'publisher.key')
    ctx.pub = `${ctx.key}.pub`
    ctx.secret = join(root, 'cluster.secret')
    for (const args of [
      ['key', 'new', ctx.key],
      ['secret', 'new', ctx.secret],
    ]) {
      const made = await runCli(ctx.children, args, null, 30_000)
      if (made.code !== 0) throw new Error(`shoal ${args.join(' ')} failed: ${made.stderr.trim()}`)
    }
    // Every loopback run needs bytes the downloader does not hold yet; each swarm phase starts fresh agents.
    const loopbackDists: string[][] = []
    for (let i = 0; i < loopbackRuns; i++) {
      loopbackDists.push(await makeDistribution(join(root, `lo-${i + 1}`), loopbackBytes, files))
    }
    const shapedDist =
      sizes.length > 0 || slowOption != null ? await makeDistribution(join(root, 'shaped'), bytes, files) : []
    const slowDist =
      slowOption == null || slowBytes === bytes
        ? shapedDist
        : await makeDistribution(join(root, 'slow'), slowBytes, files)
    progress(ctx, 'distributions written')

    for (const mode of loopbackRuns > 0 ? loopbackClusters : []) {
      progress(ctx, `loopback ${mode} cluster: ${loopbackRuns} transfer(s) of ${loopbackBytes / MiB} MiB`)
      loopback[mode] = await measureLoopback(ctx, mode, loopbackDists, loopbackBytes)
    }

    const hostCount = Math.max(0, ...sizes, slowOption?.n ?? 0)
    const reason = hostCount === 0 ? 'not asked for' : await netnsUnavailableReason()
    const base = (rate: number, size: number) => ({
      available: reason == null,
      reason,
      qdisc: [] as string[],
      rateMbit: rate,
      bytes: size,
      idealMs: Math.round((size * 8) / (rate * 1e3)),
      linkOverhead: null,
      referenceCpuPerCopyS: null,
    })
    if (sizes.length > 0) shaped = { ...base(rateMbit, bytes), results: [] }
    if (slowOption != null) slow = { ...base(slowOption.rateMbit, slowBytes), n: slowOption.n, result: null }
    if (reason != null) {
      if (hostCount > 0) notes.push(`shaped runs skipped: ${reason}`)
    } else {
      progress(ctx, `making ${hostCount} network namespaces`)
      const topology = await createShapedHosts({
        count: hostCount,
        subnet: SUBNET,
        rateMbit,
        prefix: `shoal-ba${ctx.suffix.slice(0, 2)}`,
        register: (destroy) => ctx.cleanups.push(destroy),
      })
      if (shaped != null) {
        shaped.qdisc = topology.qdisc
        shaped.linkOverhead = await measureLinkOverhead(ctx, topology, rateMbit, bytes)
        for (const mode of shapedClusters) {
          for (const n of sizes) {
            progress(ctx, `shaped ${mode} N = ${n}: ${bytes / MiB} MiB at ${rateMbit} Mbit/s`)
            shaped.results.push(
              await measureSwarm(ctx, topology, {
                n,
                cluster: mode,
                files: shapedDist,
                bytes,
                rateMbit,
                capMs: options.p2pCapS == null ? Math.max(60_000, 40 * idealMs) : options.p2pCapS * 1000,
                baseline: options.baseline ?? true,
                version: `${mode}-n${n}`,
              }),
            )
          }
        }
      }
      if (slow != null && slowOption != null) {
        slow.qdisc = await reshape(topology, slow.rateMbit)
        slow.linkOverhead = await measureLinkOverhead(ctx, topology, slow.rateMbit, slowBytes)
        progress(ctx, `slow closed N = ${slow.n}: ${slowBytes / MiB} MiB at ${slow.rateMbit} Mbit/s`)
        slow.result = await measureSwarm(ctx, topology, {
          n: slow.n,
          cluster: 'closed',
          files: slowDist,
          bytes: slowBytes,
          rateMbit: slow.rateMbit,
          capMs: slowOption.capS == null ? Math.max(60_000, 10 * slow.idealMs) : slowOption.capS * 1000,
          baseline: false,
          version: `slow-n${slow.n}`,
        })
      }
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
    progress(ctx, `aborted: ${String(err)}`)
  } finally {
    await cleanUp()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  // The physical limits need the loopback reference (CPU per byte) and w (link overhead).
  const closed = loopback.closed
  const perByte = (s: number | null | undefined) => (s == null ? null : s / loopbackBytes)
  for (const phase of [shaped, slow]) {
    if (phase == null) continue
    const referenceCpuPerByte = perByte(closed?.referenceCpuPerCopyS)
    phase.referenceCpuPerCopyS =
      referenceCpuPerByte == null ? null : round(referenceCpuPerByte * phase.bytes, 3)
    const results = 'results' in phase ? phase.results : phase.result == null ? [] : [phase.result]
    for (const r of results) {
      r.limits = limitsOf(r, {
        bytes: phase.bytes,
        rateMbit: phase.rateMbit,
        chunkSize: DEFAULT_CHUNK_SIZE,
        w: phase.linkOverhead?.w ?? null,
        referenceCpuPerByte,
        agentCpuPerByte: perByte(closed?.agentCpuPerCopyS),
        cores,
      })
    }
  }

  const partial = {
    suite: 'artifacts' as const,
    version: REPORT_VERSION,
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: { ...machine(), loadAverageAtStart: loadAtStart },
    source: source(),
    config: {
      loopback: { bytes: loopbackBytes, files, runs: loopbackRuns, clusters: loopbackClusters },
      bytes,
      files,
      chunkSize: DEFAULT_CHUNK_SIZE,
      rateMbit,
      idealMs: Math.round(idealMs),
      cores,
      agentNodeFlags: AGENT_NODE_FLAGS,
      agentFlags:
        '--no-mdns --trust KEY --preset lan (default), --secret-file in closed clusters; no rate limits, default parallelism',
      agentExtraArgs: ctx.agentArgs,
      dataDir: 'temp folder on the local disk',
      p2pTimed:
        'from the seed logging "distribution published" to the last agent logging "distribution complete"',
      reference:
        'tcp-serve (node net, files read in 1 MiB pieces) -> tcp-sink (SHA-256 of every byte, written in ~1 MiB writev, fsync at the end), ' +
        'timed from connect to fsync done; CPU of both processes over the copy',
      limits:
        'link: w·(S/B)·(1 + (ceil(log2 N) - 1)/m), w from a TCP copy through two shaped links, m chunks of the version; ' +
        'CPU: the closed loopback reference CPU per byte × S × (N-1) ÷ cores; fraction = tighter bound ÷ P2P time',
    },
    notes: [
      ...notes,
      'All agents share this machine: N agent processes, their encryption and hashing share its cores; ' +
        'cpu.machineBusyPercent is the whole machine over the P2P phase.',
      'Baseline: N-1 concurrent plain HTTP downloads (node http client) of the same files from one node http server ' +
        "in the seed's namespace, behind the same shaped link.",
    ],
    loopback,
    shaped,
    slow,
  }
  const report: ArtifactsReport = { ...partial, targets: targets(partial) }
  return { report, text: render(report) }
}

async function measureLinkOverhead(
  ctx: Context,
  topology: Topology,
  rateMbit: number,
  bytes: number,
): Promise<LinkOverhead> {
  const probe = Math.min(bytes, Math.round((rateMbit * 1e6 * LINK_PROBE_S) / 8))
  const w = await linkOverhead(ctx, topology, rateMbit, probe)
  progress(
    ctx,
    `link overhead at ${rateMbit} Mbit/s: w = ${w.w ?? '-'} (TCP ${w.mbit ?? '-'} Mbit/s${w.note == null ? '' : `; ${w.note}`})`,
  )
  return w
}
