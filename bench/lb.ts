/**
 * Load balancer benchmark, all in one run on the same backends:
 * 1. throughput and latency (autocannon, closed loop) direct to one backend,
 *    through the built-in proxy and through HAProxy, each spreading over the
 *    same 3 backends; then latency at half of HAProxy's throughput (open loop,
 *    fixed rate) to see what each hop adds at p50/p99;
 * 2. failed requests under a steady load while a node is drained and removed,
 *    and during a rolling restart of all 3 nodes' `web`, through `shoal lb`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { RolloutView } from '../src/manager/index.js'
import { freePort } from '../src/shared/ports.js'
import { firstLine, startLb } from './lb-process.js'
import { type Started, startProcess, terminate } from './processes.js'
import { machine, round, source, TempDirs, table } from './util.js'

const _CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const PROXY_CHILD = fileURLToPath(new URL('./lb-proxy-child.js', import.meta.url))
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const HAPROXY = '/usr/sbin/haproxy'
const DURATION_S = 8
const CONNECTIONS = 32

/** Three tiny HTTP backends in one process: each answers a small JSON body at once. */
const BACKENDS_SCRIPT = `
  const http = require('node:http')
  const ports = JSON.parse(process.argv[1])
  const body = JSON.stringify({ app: 'bench', ok: true, pad: 'x'.repeat(200) })
  for (const port of ports) http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }).listen(port, '127.0.0.1')
  console.log('ready')
`

interface Run {
  target: string
  mode: string
  requestsPerS: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  errors: number
  non2xx: number
}

export async function runLb() {
  const started = performance.now()
  const dirs = new TempDirs()
  const children: ChildProcess[] = []
  const notes: string[] = []
  const runs: Run[] = []
  let underChange: Array<{ scenario: string; sent: number; failed: number; detail: Record<string, number> }> =
    []
  try {
    const work = await dirs.make('shoal-bench-lb-')
    const ports = [await freePort(), await freePort(), await freePort()]
    const backends = spawn(process.execPath, ['-e', BACKENDS_SCRIPT, JSON.stringify(ports)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(backends)
    await firstLine(backends)

    const proxyPort = await freePort()
    const proxy = spawn(process.execPath, [PROXY_CHILD, String(proxyPort), JSON.stringify(ports)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(proxy)
    await firstLine(proxy)

    const targets: Array<[string, string]> = [
      ['direct (one backend)', `http://127.0.0.1:${ports[0]}`],
      ['built-in proxy (3 backends)', `http://127.0.0.1:${proxyPort}`],
    ]
    if (existsSync(HAPROXY)) {
      const haproxyPort = await freePort()
      const config = join(work, 'haproxy.cfg')
      await writeFile(
        config,
        [
          'global',
          '  nbthread 1',
          'defaults',
          '  mode http',
          '  timeout connect 1s',
          '  timeout client 10s',
          '  timeout server 10s',
          'frontend fe',
          `  bind 127.0.0.1:${haproxyPort}`,
          '  default_backend app',
          'backend app',
          '  balance roundrobin',
          ...ports.map((p, i) => `  server s${i} 127.0.0.1:${p}`),
          '',
        ].join('\n'),
      )
      const haproxy = spawn(HAPROXY, ['-f', config, '-db'], { stdio: 'ignore' })
      children.push(haproxy)
      await sleep(500)
      targets.push(['HAProxy 2.6 (3 backends)', `http://127.0.0.1:${haproxyPort}`])
    } else notes.push(`${HAPROXY} is missing: no HAProxy figures`)

    // Closed loop: as fast as each path goes.
    for (const [target, url] of targets) runs.push(await cannon(target, url, 'max'))
    // Open loop at half of HAProxy's (or the built-in proxy's) throughput.
    const reference = runs.find((r) => r.target.startsWith('HAProxy')) ?? runs[1]!
    const half = Math.round(reference.requestsPerS / 2)
    for (const [target, url] of targets) runs.push(await cannon(target, url, half))

    underChange = await changesUnderLoad(dirs, notes)
  } finally {
    for (const child of children) child.kill('SIGKILL')
    await dirs.removeAll()
  }

  const at = (target: string, mode: string) =>
    runs.find((r) => r.target.startsWith(target) && r.mode === mode)
  const builtinMax = at('built-in', 'max')
  const haproxyMax = at('HAProxy', 'max')
  const halfMode = runs.at(-1)?.mode ?? ''
  const added = (target: string) => {
    const through = at(target, halfMode)
    const direct = at('direct', halfMode)
    return through == null || direct == null ? null : round(through.p99Ms - direct.p99Ms, 2)
  }
  const report = {
    suite: 'lb',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: { durationS: DURATION_S, connections: CONNECTIONS, body: '~230 B JSON', keepAlive: true },
    runs,
    ratios: {
      builtinOverHaproxyThroughput:
        builtinMax == null || haproxyMax == null
          ? null
          : round(builtinMax.requestsPerS / haproxyMax.requestsPerS, 2),
      p99AddedAtHalfLoadMs: { builtin: added('built-in'), haproxy: added('HAProxy') },
    },
    underChange,
    notes,
  }
  const text = [
    table(
      ['target', 'mode', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'non-2xx'],
      runs.map((r) => [r.target, r.mode, r.requestsPerS, r.p50Ms, r.p90Ms, r.p99Ms, r.errors, r.non2xx]),
    ),
    '',
    `built-in ÷ HAProxy throughput: ${report.ratios.builtinOverHaproxyThroughput}; p99 added at ${halfMode}: built-in ${added('built-in')} ms, HAProxy ${added('HAProxy')} ms`,
    '',
    table(
      ['scenario', 'sent', 'failed', 'detail'],
      underChange.map((u) => [u.scenario, u.sent, u.failed, JSON.stringify(u.detail)]),
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

async function cannon(target: string, url: string, rate: number | 'max'): Promise<Run> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: DURATION_S,
    ...(rate === 'max' ? {} : { overallRate: rate }),
  })
  return {
    target,
    mode: rate === 'max' ? 'max' : `${rate} req/s`,
    requestsPerS: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }
}

/**
 * 3 agent processes running educa behind `shoal lb`; a fixed 100 req/s load
 * while (a) one node is drained and removed (SIGTERM), then (b) the two
 * others plus a replacement restart their `web` one after another.
 */
async function changesUnderLoad(dirs: TempDirs, notes: string[]) {
  const agents: Array<Started & { dataDir: string }> = []
  const extra: ChildProcess[] = []
  const results: Array<{ scenario: string; sent: number; failed: number; detail: Record<string, number> }> =
    []
  try {
    const work = await dirs.make('shoal-bench-lb-agents-')
    const key = join(work, 'publisher.key')
    await writeNewKeyPair(key)
    const trust = ['--trust', `${key}.pub`, '--log-level', 'error']
    const start = async (boot: string[]) => {
      const dataDir = await dirs.make('shoal-bench-lb-node-')
      const agent = { ...(await startProcess(dataDir, boot, trust)), dataDir }
      agents.push(agent)
      return agent
    }
    const first = await start([])
    const boot = first.info.addrs.filter((a) => a.includes('/tcp/'))
    await Promise.all([start(boot), start(boot)])
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const client = new ApiClient(first.info.api)
    await publish(client, {
      dir: builds['1.0'],
      name: 'educa',
      version: '1.0',
      keyFile: key,
      progress: false,
    })
    const rollout = await client.post<RolloutView>('/api/rollouts', { json: { distribution: 'educa@1.0' } })
    await until(async () => (await client.get<RolloutView>(`/api/rollouts/${rollout.id}`)).state === 'done')

    const {
      child: lb,
      url: lbUrl,
      admin: lbAdmin,
    } = await startLb({
      port: await freePort(),
      data: await dirs.make('shoal-bench-lb-lb-'),
      bootstrap: boot,
    })
    extra.push(lb)
    const readyBackends = async () =>
      (
        (await (await fetch(`${lbAdmin}/_shoal/lb`)).json()) as {
          backends: Array<{ state: string }>
        }
      ).backends.filter((b) => b.state === 'ready').length
    await until(async () => (await readyBackends()) === 3)

    // (a) drain and remove one node.
    const leaving = agents[2]!
    const drain = steadyLoad(lbUrl, 10)
    await sleep(3000)
    await terminate(leaving.child)
    results.push({ scenario: 'drain and remove 1 of 3 nodes (SIGTERM)', ...(await drain) })

    // (b) rolling restart: a replacement joins, then each node's web restarts in turn.
    const replacement = await start(boot)
    await until(async () => (await readyBackends()) === 3)
    const rolling = steadyLoad(lbUrl, 15)
    for (const agent of [agents[0]!, agents[1]!, replacement]) {
      const api = new ApiClient(agent.info.api)
      await api.post('/api/components/web/stop')
      await api.post('/api/components/web/start')
      await until(async () => (await readyBackends()) === 3)
    }
    results.push({ scenario: 'rolling restart of web on 3 nodes', ...(await rolling) })
  } catch (err) {
    notes.push(`changes under load failed: ${String(err)}`)
  } finally {
    for (const child of extra) await terminate(child)
    await Promise.all(agents.map((a) => terminate(a.child)))
  }
  return results
}

/** 100 req/s of GET / and /slow?ms=100 for `seconds`, counting failures by cause. */
async function steadyLoad(url: string, seconds: number) {
  const result = await autocannon({
    url,
    connections: 10,
    duration: seconds,
    overallRate: 100,
    requests: [{ path: '/' }, { path: '/slow?ms=100' }],
  })
  const detail: Record<string, number> = {}
  if (result.errors > 0) detail.errors = result.errors
  if (result.timeouts > 0) detail.timeouts = result.timeouts
  if (result.non2xx > 0) detail.non2xx = result.non2xx
  return { sent: result.requests.sent, failed: result.errors + result.timeouts + result.non2xx, detail }
}

async function until(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('benchmark: timed out')
    await sleep(100)
  }
}
