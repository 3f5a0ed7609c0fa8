/**
 * Loopback phase of the artifacts benchmark: one agent fetches a distribution from another
 * on 127.0.0.1, in a closed and an open cluster, each transfer followed by the reference
 * copy of the same files: a plain TCP stream between two processes whose receiver hashes
 * every byte with SHA-256, writes it to disk and fsyncs at the end.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../src/shared/ports.js'
import { type AgentProcess, CHILD, JsonLines, tail, terminate } from './artifacts-agents.js'
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
import { round } from './util.js'

/** Give up on one loopback transfer after this long. */
const LOOPBACK_CAP_MS = 120_000

export interface LoopbackRun {
  /** From the seed logging the version published to the downloader logging it complete. */
  p2pMs: number | null
  p2pMBps: number | null
  /** Until the downloader logged the manifest learned (gossip, before any chunk moves). */
  learnedMs: number | null
  /** The bytes over the time from learned to complete: the fetch alone, without finding out. */
  fetchMBps: number | null
  /** The reference copy of the same bytes, right after. */
  referenceMs: number | null
  referenceMBps: number | null
  /** P2P MB/s ÷ reference MB/s. */
  ratio: number | null
  /** CPU seconds (user + system) of the seed and the downloader over the transfer. */
  seedCpuS: number | null
  peerCpuS: number | null
  /** CPU seconds of the reference's sender and receiver over the copy. */
  referenceSenderCpuS: number | null
  referenceReceiverCpuS: number | null
  /** What the agents' counters say they served and fetched, in copies of the distribution. */
  servedCopies: number | null
  fetchedCopies: number | null
  /** CPU seconds of processes this benchmark did not start, over the transfer. */
  otherCpuS: number | null
}

export interface LoopbackResult {
  cluster: ClusterMode
  runs: LoopbackRun[]
  /** Medians over the runs. */
  p2pMBps: number | null
  fetchMBps: number | null
  referenceMBps: number | null
  /** Median of the runs' P2P ÷ reference (each pair measured back to back). */
  ratio: number | null
  /** CPU seconds per delivered copy: seed + downloader, and the reference's sender + receiver (medians). */
  agentCpuPerCopyS: number | null
  referenceCpuPerCopyS: number | null
  /** Agents' CPU per copy ÷ the reference's. */
  cpuRatio: number | null
  notes: string[]
}

export async function measureLoopback(
  ctx: Context,
  mode: ClusterMode,
  dists: string[][],
  bytes: number,
): Promise<LoopbackResult> {
  const notes: string[] = []
  const runs: LoopbackRun[] = []
  const agents: AgentProcess[] = []
  const cluster = `bench-art-lo-${mode}-${ctx.suffix}`
  const start = async (bootstrap: string[]) => {
    const agent = await startAgent(ctx, {
      cluster,
      mode,
      ip: '127.0.0.1',
      listen: '/ip4/127.0.0.1/tcp/0',
      api: `127.0.0.1:${await freePort()}`,
      bootstrap,
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
        learnedMs: null,
        fetchMBps: null,
        referenceMs: null,
        referenceMBps: null,
        ratio: null,
        seedCpuS: null,
        peerCpuS: null,
        referenceSenderCpuS: null,
        referenceReceiverCpuS: null,
        servedCopies: null,
        fetchedCopies: null,
        otherCpuS: null,
      }
      const counters = (a: AgentProcess) =>
        a.api(ctx.children, ['/api/status']).then(([status]) => transferStats(status))
      const [seed0, peer0] = await Promise.all([seed, peer].map(counters))
      const t = await transfer(ctx, seed, [peer], dirOf(files), `lo-${mode}-${i + 1}`, LOOPBACK_CAP_MS)
      const [seed1, peer1] = await Promise.all([seed, peer].map(counters))
      run.p2pMs = t.totalMs
      run.p2pMBps = t.totalMs == null ? null : round(bytes / 1e3 / t.totalMs)
      run.learnedMs = t.learnedMs
      run.fetchMBps =
        t.totalMs == null || t.learnedMs == null || t.totalMs <= t.learnedMs
          ? null
          : round(bytes / 1e3 / (t.totalMs - t.learnedMs))
      run.seedCpuS = t.cpuSeconds[0] ?? null
      run.peerCpuS = t.cpuSeconds[1] ?? null
      run.otherCpuS = t.otherCpuSeconds
      const served = seed0 == null || seed1 == null ? null : seed1.bytesServed - seed0.bytesServed
      const fetched = peer0 == null || peer1 == null ? null : peer1.bytesFetched - peer0.bytesFetched
      run.servedCopies = served == null ? null : round(served / bytes, 2)
      run.fetchedCopies = fetched == null ? null : round(fetched / bytes, 2)
      if (t.totalMs == null) notes.push(`run ${i + 1}: the transfer did not complete within 120 s`)
      const ref = await referenceCopy(ctx, files, bytes)
      if (typeof ref === 'string') notes.push(`run ${i + 1}: reference copy failed: ${ref}`)
      else {
        run.referenceMs = ref.ms
        run.referenceMBps = round(bytes / 1e3 / ref.ms)
        run.referenceSenderCpuS = ref.senderCpuS
        run.referenceReceiverCpuS = ref.receiverCpuS
      }
      run.ratio = ratio(run.p2pMBps, run.referenceMBps, 3)
      runs.push(run)
      progress(
        ctx,
        `loopback ${mode} run ${i + 1}/${dists.length}: P2P ${run.p2pMBps ?? '-'} MB/s ` +
          `(manifest after ${run.learnedMs ?? '-'} ms), ` +
          `reference ${run.referenceMBps ?? '-'} MB/s, ratio ${run.ratio ?? '-'}`,
      )
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
    progress(ctx, `loopback ${mode}: aborted: ${String(err)}`)
  } finally {
    await stopAgents(agents)
  }
  const sum = (a: number | null, b: number | null) => (a == null || b == null ? null : a + b)
  const agentCpu = median(
    runs.map((r) => sum(r.seedCpuS, r.peerCpuS)),
    2,
  )
  const referenceCpu = median(
    runs.map((r) => sum(r.referenceSenderCpuS, r.referenceReceiverCpuS)),
    3,
  )
  return {
    cluster: mode,
    runs,
    p2pMBps: median(runs.map((r) => r.p2pMBps)),
    fetchMBps: median(runs.map((r) => r.fetchMBps)),
    referenceMBps: median(runs.map((r) => r.referenceMBps)),
    ratio: median(
      runs.map((r) => r.ratio),
      3,
    ),
    agentCpuPerCopyS: agentCpu == null ? null : round(agentCpu, 2),
    referenceCpuPerCopyS: referenceCpu == null ? null : round(referenceCpu, 3),
    cpuRatio: ratio(agentCpu, referenceCpu, 1),
    notes,
  }
}

/**
 * The reference copy: `tcp-serve` streams the files back to back to `tcp-sink`, which hashes,
 * writes and fsyncs them (bench/artifacts-child.ts); its ms and both sides' CPU, or why it failed.
 */
export async function referenceCopy(
  ctx: Context,
  files: string[],
  bytes: number,
): Promise<{ ms: number; senderCpuS: number | null; receiverCpuS: number } | string> {
  const server = ctx.children.spawn(process.execPath, [CHILD, 'tcp-serve', '127.0.0.1', '0', ...files], null)
  const target = join(await ctx.dirs.make('shoal-bench-art-ref-'), 'received.bin')
  try {
    const served = new JsonLines(server, 'tcp server', tail(server.stderr!))
    const ready = await served.next<{ port: number }>(10_000)
    const client = ctx.children.spawn(
      process.execPath,
      [CHILD, 'tcp-sink', '127.0.0.1', String(ready.value.port), target],
      null,
    )
    const { value } = await new JsonLines(client, 'tcp sink', tail(client.stderr!)).next<{
      bytes: number
      ms?: number
      cpuS?: number
      error?: string
    }>(LOOPBACK_CAP_MS)
    if (value.ms == null || value.cpuS == null) return value.error ?? 'no result'
    if (value.bytes !== bytes) return `received ${value.bytes} of ${bytes} bytes`
    const sender = await served.next<{ cpuS?: number }>(10_000).catch(() => null)
    return { ms: value.ms, senderCpuS: sender?.value.cpuS ?? null, receiverCpuS: value.cpuS }
  } catch (err) {
    return String(err)
  } finally {
    await terminate(server, 1_000)
    await rm(target, { force: true })
  }
}
