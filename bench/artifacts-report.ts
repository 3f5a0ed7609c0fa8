/** Targets and the text table of the artifacts benchmark. */
import type { LoopbackResult, ShapedSize } from './artifacts.js'
import { table } from './util.js'

export interface Target {
  name: string
  target: string
  value: number | null
  pass: boolean | null
}

const TARGET_N = 20

export function targets(shaped: ShapedSize[], loopback: LoopbackResult | null): Target[] {
  const at = shaped.find((r) => r.n === TARGET_N)
  const check = (value: number | null | undefined, ok: (v: number) => boolean) => ({
    value: value ?? null,
    pass: value == null ? null : ok(value),
  })
  return [
    { name: `P2P time ÷ (S/B) at N=${TARGET_N}`, target: '<= 1.3', ...check(at?.p2pRatio, (v) => v <= 1.3) },
    { name: `baseline ÷ P2P at N=${TARGET_N}`, target: '>= 10', ...check(at?.baselineRatio, (v) => v >= 10) },
    { name: 'loopback P2P ÷ TCP copy', target: '>= 0.6', ...check(loopback?.ratio, (v) => v >= 0.6) },
  ]
}

interface Report {
  config: { bytes: number; chunkSize: number; rateMbit: number; idealMs: number }
  shaped: { available: boolean; reason: string | null; results: ShapedSize[] } | null
  loopback: LoopbackResult | null
  targets: Target[]
  notes: string[]
}

export function render(report: Report): string {
  const { config } = report
  const out: string[] = [
    `artifacts: S = ${config.bytes} bytes, chunk ${config.chunkSize / 1024} KiB, B = ${config.rateMbit} Mbit/s, S/B = ${config.idealMs} ms`,
    '',
  ]
  const shaped = report.shaped
  if (shaped?.available === true) {
    out.push(
      table(
        [
          'N',
          'P2P ms',
          'P2P/(S/B)',
          'first/median ms',
          'HTTP ms',
          'HTTP/P2P',
          'seed up %',
          'down %',
          'served/fetched',
          'seed',
          'srcs',
          'busy %',
          'agent CPU s',
          'other CPU s',
        ],
        shaped.results.map((r) => [
          r.n,
          r.p2pMs,
          r.p2pRatio,
          r.agentMs == null ? null : `${r.agentMs.min}/${r.agentMs.median}`,
          r.baselineMs,
          r.baselineRatio,
          r.links?.seedUpPercent ?? null,
          r.links?.meanDownPercent ?? null,
          r.servedCopies == null ? null : `${r.servedCopies}/${r.fetchedCopies}`,
          r.seedCopies,
          r.meanSourcesPerAgent,
          r.cpu?.machineBusyPercent ?? null,
          r.cpu?.agentCpuSeconds ?? null,
          r.cpu?.otherCpuSeconds ?? null,
        ]),
      ),
    )
    for (const r of shaped.results) for (const note of r.notes) out.push(`  N=${r.n}: ${note}`)
  } else {
    out.push(`shaped runs: ${shaped?.reason ?? 'not run'}`)
  }
  const lo = report.loopback
  if (lo != null) {
    out.push('', 'loopback (127.0.0.1, one transfer):')
    out.push(
      table(
        ['run', 'P2P MB/s', 'TCP MB/s', 'seed CPU s', 'peer CPU s', 'other CPU s'],
        lo.runs.map((r, i) => [i + 1, r.p2pMBps, r.tcpMBps, r.seedCpuS, r.peerCpuS, r.otherCpuS]),
      ),
    )
    out.push(`median: P2P ${lo.p2pMBps ?? '-'} MB/s, TCP ${lo.tcpMBps ?? '-'} MB/s, ratio ${lo.ratio ?? '-'}`)
    for (const note of lo.notes) out.push(`  ${note}`)
  }
  out.push('', 'targets:')
  for (const t of report.targets) {
    const verdict = t.pass == null ? 'n/a' : t.pass ? 'pass' : 'FAIL'
    out.push(`  ${t.name}: ${t.value ?? '-'} (target ${t.target}) ${verdict}`)
  }
  for (const note of report.notes.filter((n) => n.startsWith('aborted') || n.startsWith('shaped')))
    out.push(note)
  return out.join('\n')
}
