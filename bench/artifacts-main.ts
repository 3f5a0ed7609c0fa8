/**
 * The artifacts benchmark with all its options (`npm run bench -- artifacts` runs it with
 * the defaults, taking only `--sizes`):
 *
 *   node dist/bench/artifacts-main.js [--loopback-mib 200] [--loopback-runs 3]
 *     [--loopback-clusters closed,open] [--sizes 2,5,10,20|none] [--mib 100] [--files 4]
 *     [--rate 200] [--shaped-clusters closed[,open]] [--no-baseline] [--cap SECONDS]
 *     [--slow-n 10|0] [--slow-rate 20] [--slow-mib MIB] [--slow-cap SECONDS]
 *     [--agent-arg='--data-listen {ip}:{port}' ...] [--out FILE]
 *
 * `--agent-arg` adds flags to every agent (split at spaces; `{ip}` is the agent's address,
 * `{port}` a free port); write it with `=` when its value starts with a dash.
 *
 * Writes bench/results/artifacts.json unless `--out` names another file.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runArtifacts } from './artifacts.js'
import type { ClusterMode } from './artifacts-context.js'

const RESULT = fileURLToPath(new URL('../../bench/results/artifacts.json', import.meta.url))

const { values } = parseArgs({
  options: {
    'loopback-mib': { type: 'string', default: '200' },
    'loopback-runs': { type: 'string', default: '3' },
    'loopback-clusters': { type: 'string', default: 'closed,open' },
    sizes: { type: 'string', default: '2,5,10,20' },
    mib: { type: 'string', default: '100' },
    files: { type: 'string', default: '4' },
    rate: { type: 'string', default: '200' },
    'shaped-clusters': { type: 'string', default: 'closed' },
    'no-baseline': { type: 'boolean', default: false },
    cap: { type: 'string' },
    'slow-n': { type: 'string', default: '10' },
    'slow-rate': { type: 'string', default: '20' },
    'slow-mib': { type: 'string' },
    'slow-cap': { type: 'string' },
    'agent-arg': { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: RESULT },
  },
})

function fail(text: string): never {
  console.error(`artifacts: ${text}`)
  process.exit(2)
}

function whole(name: keyof typeof values, min: number): number {
  const value = Number(values[name])
  if (!Number.isInteger(value) || value < min)
    fail(`--${name} wants a whole number >= ${min}, got "${values[name]}"`)
  return value
}

function optionalWhole(name: keyof typeof values, min: number): number | undefined {
  return values[name] == null ? undefined : whole(name, min)
}

function clusters(name: 'loopback-clusters' | 'shaped-clusters'): ClusterMode[] {
  const list = String(values[name]).split(',').filter(Boolean)
  if (!list.every((m): m is ClusterMode => m === 'closed' || m === 'open'))
    fail(`--${name} wants closed, open or both, got "${values[name]}"`)
  return list
}

const sizes = values.sizes === 'none' || values.sizes === '' ? [] : values.sizes.split(',').map(Number)
if (!sizes.every((n) => Number.isInteger(n) && n >= 2))
  fail(`--sizes wants whole numbers >= 2 or "none", got "${values.sizes}"`)
const slowN = whole('slow-n', 0)
if (slowN === 1) fail('--slow-n wants 0 (skip) or at least 2')

const { report, text } = await runArtifacts({
  loopbackMebibytes: whole('loopback-mib', 1),
  loopbackRuns: whole('loopback-runs', 0),
  loopbackClusters: clusters('loopback-clusters'),
  sizes,
  mebibytes: whole('mib', 1),
  files: whole('files', 1),
  rateMbit: whole('rate', 1),
  shapedClusters: clusters('shaped-clusters'),
  baseline: !values['no-baseline'],
  p2pCapS: optionalWhole('cap', 1),
  slow:
    slowN === 0
      ? null
      : {
          n: slowN,
          rateMbit: whole('slow-rate', 1),
          mebibytes: optionalWhole('slow-mib', 1),
          capS: optionalWhole('slow-cap', 1),
        },
  // One --agent-arg may hold several words: --agent-arg '--data-listen {ip}:{port}'.
  agentArgs: values['agent-arg'].flatMap((arg) => arg.split(/\s+/).filter(Boolean)),
})
await mkdir(dirname(values.out), { recursive: true })
await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`)
console.log(text)
console.log(`\nresults: ${values.out} (${report.durationS} s)`)
// libp2p and level can leave handles open briefly after stop; the run is over.
process.exit(0)
