/** Physical limits, targets (issue 20) and the text table of the artifacts benchmark. */
import type { ArtifactsReport, SlowPhase } from './artifacts.js'
import type { LoopbackResult } from './artifacts-loopback.js'
import type { Limits, SwarmResult } from './artifacts-swarm.js'
import { round, table } from './util.js'

export interface Target {
  name: string
  target: string
  value: number | null
  /** null: not measured in this run, or reported without a target. */
  pass: boolean | null
}

const TARGET_N = 20

/**
 * The limits of one swarm result on this machine:
 * - link: every downloader must receive S through a link of B whose real rate is B/w; with
 *   m chunks, a chunk can reach ⌈log2 N⌉ levels of a doubling tree in ⌈log2 N⌉−1 chunk
 *   times beyond S/B, so T ≈ w·(S/B)·(1 + (⌈log2 N⌉−1)/m);
 * - CPU: N−1 copies must each be sent, hashed and written; at the reference copy's CPU per
 *   byte (both ends) on `cores` cores that takes (N−1)·S·cpu ÷ cores. `agentCpuMs` is the
 *   same at the agents' own loopback CPU per byte, which says what the product's cost allows.
 */
export function limitsOf(
  r: SwarmResult,
  o: {
    bytes: number
    rateMbit: number
    chunkSize: number
    w: number | null
    referenceCpuPerByte: number | null
    agentCpuPerByte: number | null
    cores: number
  },
): Limits {
  const idealMs = (o.bytes * 8) / (o.rateMbit * 1e3)
  const m = r.chunks ?? Math.ceil(o.bytes / o.chunkSize)
  const depth = Math.ceil(Math.log2(r.n))
  const linkMs = o.w == null ? null : Math.round(o.w * idealMs * (1 + (depth - 1) / m))
  const cpu = (perByte: number | null) =>
    perByte == null ? null : Math.round(((perByte * o.bytes * (r.n - 1)) / o.cores) * 1000)
  const cpuMs = cpu(o.referenceCpuPerByte)
  const known = [linkMs, cpuMs].filter((v): v is number => v != null)
  const boundMs = known.length === 0 ? null : Math.max(...known)
  return {
    linkMs,
    cpuMs,
    agentCpuMs: cpu(o.agentCpuPerByte),
    boundMs,
    binding: boundMs == null ? null : boundMs === linkMs ? 'link' : 'cpu',
    fraction: boundMs == null || r.p2pMs == null ? null : round(boundMs / r.p2pMs, 3),
  }
}

export function targets(report: Pick<ArtifactsReport, 'loopback' | 'shaped' | 'slow'>): Target[] {
  const at = report.shaped?.results.find((r) => r.n === TARGET_N && r.cluster === 'closed')
  const check = (value: number | null | undefined, ok: (v: number) => boolean) => ({
    value: value ?? null,
    pass: value == null ? null : ok(value),
  })
  const slow = report.slow?.result
  const refPerCopy = report.shaped?.referenceCpuPerCopyS ?? null
  return [
    {
      name: 'loopback P2P ÷ reference copy, closed cluster',
      target: '>= 0.6',
      ...check(report.loopback.closed?.ratio, (v) => v >= 0.6),
    },
    {
      name: `shaped P2P time ÷ (S/B) at N=${TARGET_N}`,
      target: '<= 1.3',
      ...check(at?.p2pRatio, (v) => v <= 1.3),
    },
    {
      name: `shaped HTTP baseline ÷ P2P at N=${TARGET_N}`,
      target: '>= 10',
      ...check(at?.baselineRatio, (v) => v >= 10),
    },
    {
      name: `copies the seed uploaded at N=${TARGET_N}`,
      target: '<= 2',
      ...check(at?.countersComplete === true ? at.seedCopies : at?.links?.seedUpCopies, (v) => v <= 2),
    },
    {
      name: `slow links: served ÷ kept at N=${slow?.n ?? 10}, ${report.slow?.rateMbit ?? 20} Mbit/s`,
      target: '<= 1.1',
      ...check(slow?.countersComplete === true ? slow.servedPerKept : slow?.linkPerKept, (v) => v <= 1.1),
    },
    {
      name: `CPU s per delivered copy at N=${TARGET_N} ÷ the reference copy's`,
      target: 'reported',
      value: at?.cpu?.perCopyS == null || refPerCopy == null ? null : round(at.cpu.perCopyS / refPerCopy, 1),
      pass: null,
    },
  ]
}

const s = (ms: number | null | undefined) => (ms == null ? null : round(ms / 1000, 2))

function loopbackRows(lo: LoopbackResult): Array<Array<string | number | null>> {
  const rows: Array<Array<string | number | null>> = lo.runs.map((r, i) => [
    lo.cluster,
    String(i + 1),
    r.p2pMBps,
    r.learnedMs,
    r.fetchMBps,
    r.referenceMBps,
    r.ratio,
    r.seedCpuS == null || r.peerCpuS == null ? null : round(r.seedCpuS + r.peerCpuS, 2),
    r.referenceSenderCpuS == null || r.referenceReceiverCpuS == null
      ? null
      : round(r.referenceSenderCpuS + r.referenceReceiverCpuS, 3),
    r.servedCopies == null ? null : `${r.servedCopies}/${r.fetchedCopies}`,
    r.otherCpuS,
  ])
  rows.push([
    lo.cluster,
    'median',
    lo.p2pMBps,
    null,
    lo.fetchMBps,
    lo.referenceMBps,
    lo.ratio,
    lo.agentCpuPerCopyS,
    lo.referenceCpuPerCopyS,
    null,
    null,
  ])
  return rows
}

function swarmRows(results: SwarmResult[], refPerCopy: number | null): Array<Array<string | number | null>> {
  return results.map((r) => [
    r.cluster,
    r.n,
    s(r.p2pMs),
    r.p2pRatio,
    r.agentMs == null ? null : `${s(r.agentMs.min)}/${s(r.agentMs.median)}`,
    s(r.baselineMs),
    r.baselineRatio,
    r.seedCopies == null && r.links == null ? null : `${r.seedCopies ?? '-'}/${r.links?.seedUpCopies ?? '-'}`,
    r.servedPerKept,
    r.links?.seedUpPercent ?? null,
    r.links?.meanDownPercent ?? null,
    r.meanSourcesPerAgent,
    r.cpu?.perCopyS ?? null,
    refPerCopy,
    r.cpu?.machineBusyPercent ?? null,
    r.cpu?.otherCpuSeconds ?? null,
  ])
}

const SWARM_HEADER = [
  'cluster',
  'N',
  'P2P s',
  'P2P/(S/B)',
  'first/median s',
  'HTTP s',
  'HTTP/P2P',
  'seed copies api/link',
  'served/kept',
  'seed up %',
  'down %',
  'srcs',
  'CPU s/copy',
  'ref CPU s/copy',
  'busy %',
  'other CPU s',
]

function limitRows(results: SwarmResult[]): Array<Array<string | number | null>> {
  return results.map((r) => [
    r.cluster,
    r.n,
    s(r.limits?.linkMs),
    s(r.limits?.cpuMs),
    s(r.limits?.agentCpuMs),
    r.limits?.binding ?? null,
    s(r.p2pMs),
    r.limits?.fraction ?? null,
  ])
}

const LIMIT_HEADER = [
  'cluster',
  'N',
  'link bound s',
  'CPU bound s',
  'agents CPU bound s',
  'tighter',
  'P2P s',
  'bound ÷ P2P',
]

export function render(report: ArtifactsReport): string {
  const { config } = report
  const out: string[] = []
  const lo = report.loopback
  if (lo.closed != null || lo.open != null) {
    out.push(
      `loopback: one agent fetches ${config.loopback.bytes / 2 ** 20} MiB (${config.loopback.files} files) from another ` +
        'on 127.0.0.1; reference: a TCP stream whose receiver hashes (SHA-256), writes and fsyncs',
    )
    out.push(
      table(
        [
          'cluster',
          'run',
          'P2P MB/s',
          'manifest ms',
          'fetch MB/s',
          'ref MB/s',
          'P2P/ref',
          'agents CPU s',
          'ref CPU s',
          'served/fetched',
          'other CPU s',
        ],
        [lo.closed, lo.open].filter((r): r is LoopbackResult => r != null).flatMap(loopbackRows),
      ),
    )
    for (const r of [lo.closed, lo.open])
      for (const note of r?.notes ?? []) out.push(`  ${r!.cluster}: ${note}`)
    out.push('')
  }
  const shaped = report.shaped
  if (shaped?.available === true) {
    const w = shaped.linkOverhead
    out.push(
      `shaped: S = ${shaped.bytes / 2 ** 20} MiB, chunk ${config.chunkSize / 1024} KiB, B = ${shaped.rateMbit} Mbit/s, ` +
        `S/B = ${s(shaped.idealMs)} s, w = ${w?.w ?? '-'} (TCP copy ${w?.mbit ?? '-'} Mbit/s)` +
        (w?.note == null ? '' : ` [w: ${w.note}]`),
    )
    out.push(table(SWARM_HEADER, swarmRows(shaped.results, shaped.referenceCpuPerCopyS)))
    for (const r of shaped.results) for (const note of r.notes) out.push(`  ${r.cluster} N=${r.n}: ${note}`)
    out.push('', `limits (${report.machine.cores} cores):`)
    out.push(table(LIMIT_HEADER, limitRows(shaped.results)))
    out.push('')
  } else if (shaped != null) {
    out.push(`shaped runs: ${shaped.reason ?? 'not run'}`, '')
  }
  const slow: SlowPhase | null = report.slow
  if (slow?.result != null) {
    const r = slow.result
    const w = slow.linkOverhead
    out.push(
      `slow: S = ${slow.bytes / 2 ** 20} MiB, B = ${slow.rateMbit} Mbit/s, S/B = ${s(slow.idealMs)} s, ` +
        `w = ${w?.w ?? '-'}` +
        (w?.note == null ? '' : ` [w: ${w.note}]`),
    )
    out.push(table(SWARM_HEADER, swarmRows([r], slow.referenceCpuPerCopyS)))
    out.push(table(LIMIT_HEADER, limitRows([r])))
    out.push(
      `served ÷ kept ${r.servedPerKept ?? '-'} (agents' counters: ${r.servedCopies ?? '-'} copies served, ` +
        `${r.fetchedCopies ?? '-'} fetched, ${r.n - 1} kept); links delivered ${r.links?.downCopies ?? '-'} copies ` +
        `= ${r.linkPerKept ?? '-'} × kept, headers included`,
    )
    for (const note of r.notes) out.push(`  ${note}`)
    out.push('')
  } else if (slow != null) {
    out.push(`slow links: ${slow.reason ?? 'not run'}`, '')
  }
  out.push('targets:')
  for (const t of report.targets) {
    const verdict = t.pass == null ? (t.target === 'reported' ? '' : 'n/a') : t.pass ? 'pass' : 'FAIL'
    out.push(`  ${t.name}: ${t.value ?? '-'} (target ${t.target}) ${verdict}`.trimEnd())
  }
  for (const note of report.notes.filter((n) => n.startsWith('aborted') || n.includes('skipped')))
    out.push(note)
  return out.join('\n')
}
