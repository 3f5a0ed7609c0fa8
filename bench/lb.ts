/**
 * Load balancer benchmark, all in one run on the same backends:
 * 1. throughput and latency (autocannon, closed loop) direct to one backend,
 *    through the built-in proxy and through HAProxy, each spreading over the
 *    same 3 backends: ROUNDS rounds, each target warmed up first and the order
 *    rotated per round, each target's median round reported (the machine is
 *    shared: one disturbed round does not decide the ratio); then latency at
 *    half of HAProxy's throughput (open loop, fixed rate) to see what each hop
 *    adds at p50/p99. Every run also records the CPU each process spent per
 *    request (the proxy, the backends, the load generator) and what other
 *    processes used meanwhile: on a small machine the three share the cores,
 *    and these say which one the throughput ran into;
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
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { firstLine, startLb } from './lb-process.js'
import { cpuTicks, type Started, startProcess, terminate } from './processes.js'
import { clockTicks, hostCpu, machine, quietHost, round, source, TempDirs, table } from './util.js'

const _CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const PROXY_CHILD = fileURLToPath(new URL('./lb-proxy-child.js', import.meta.url))
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const HAPROXY = '/usr/sbin/haproxy'
const DURATION_S = 8
const CONNECTIONS = 32
/** Closed-loop rounds per target; the median of the undisturbed ones is reported. */
const ROUNDS = 3
/** Rounds tried at most to find ROUNDS undisturbed ones. */
const MAX_ROUNDS = 8
/**
 * A run during which other processes (tests, builds of a shared machine) used more
 * than this many cores is disturbed: its round is run again (up to MAX_ROUNDS).
 */
const FOREIGN_LIMIT = 0.3
/** Load before each target's first measured run: the built-in proxy's JIT and both proxies' connection pools warm up. */
const WARMUP_S = 2

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
  /** autocannon's percentiles (whole milliseconds; corrected for coordinated omission at a fixed rate). */
  p50Ms: number
  p90Ms: number
  p99Ms: number
  /** The same from every 2xx response's own time, in µs (not rounded to whole ms, not corrected). */
  latencyUs: { p50: number; p90: number; p99: number; max: number }
  errors: number
  non2xx: number
  /** CPU (user + system) per request, µs: the proxy under test (none direct), the backends, autocannon. */
  cpuUsPerRequest: { proxy: number | null; backends: number; loadGenerator: number } | null
  /** Cores' worth of CPU that other processes on the machine used meanwhile (tests, builds). */
  foreignCores: number | null
  /** The closed-loop round (1-based); absent for the fixed-rate runs. */
  round?: number
  /** Other processes used more than FOREIGN_LIMIT cores during this run or its round. */
  disturbed: boolean
}

export async function runLb() {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  let underChange: Array<{ scenario: string; sent: number; failed: number; detail: Record<string, number> }> =
    []
  let runs: Run[] = []
  let rounds: Run[] = []
  try {
    ;({ runs, rounds } = await throughput(dirs, notes, proxiesToMeasure()))
    underChange = await changesUnderLoad(dirs, notes)
  } finally {
    await dirs.removeAll()
  }

  const at = (target: string, mode: string) =>
    runs.find((r) => r.target.startsWith(target) && r.mode === mode)
  const perRound = [...new Set(rounds.map((r) => r.round))].flatMap((n) => {
    const of = (target: string) => rounds.find((r) => r.round === n && r.target.startsWith(target))
    const builtin = of('built-in')
    const haproxy = of('HAProxy')
    if (builtin == null || haproxy == null) return []
    return [
      {
        round: n,
        ratio: round(builtin.requestsPerS / haproxy.requestsPerS, 2),
        disturbed: builtin.disturbed,
      },
    ]
  })
  const builtinMax = at('built-in', 'max')
  const beforeMax = at('before: built-in', 'max')
  const haproxyMax = at('HAProxy', 'max')
  const halfMode = runs.at(-1)?.mode ?? ''
  const added = (target: string) => {
    const through = at(target, halfMode)
    const direct = at('direct', halfMode)
    return through == null || direct == null ? null : round(through.p99Ms - direct.p99Ms, 2)
  }
  const addedUs = (target: string) => {
    const through = at(target, halfMode)
    const direct = at('direct', halfMode)
    return through == null || direct == null ? null : through.latencyUs.p99 - direct.latencyUs.p99
  }
  const report = {
    suite: 'lb',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      durationS: DURATION_S,
      connections: CONNECTIONS,
      rounds: ROUNDS,
      maxRounds: MAX_ROUNDS,
      foreignLimitCores: FOREIGN_LIMIT,
      warmupS: WARMUP_S,
      body: '~230 B JSON',
      keepAlive: true,
      proxyNodeFlags: AGENT_NODE_FLAGS,
    },
    /** Each target's median closed-loop round, then the fixed-rate runs. */
    runs,
    rounds,
    ratios: {
      builtinOverHaproxyThroughput:
        builtinMax == null || haproxyMax == null
          ? null
          : round(builtinMax.requestsPerS / haproxyMax.requestsPerS, 2),
      /** With SHOAL_BENCH_LB_BEFORE: the other build's, in the same run. */
      beforeOverHaproxyThroughput:
        beforeMax == null || haproxyMax == null
          ? null
          : round(beforeMax.requestsPerS / haproxyMax.requestsPerS, 2),
      /** The same, round by round (the runs of a round follow each other). */
      builtinOverHaproxyThroughputPerRound: perRound,
      p99AddedAtHalfLoadMs: { builtin: added('built-in'), haproxy: added('HAProxy') },
      p99AddedAtHalfLoadUs: { builtin: addedUs('built-in'), haproxy: addedUs('HAProxy') },
    },
    underChange,
    notes,
  }
  const row = (r: Run) => [
    r.round == null ? r.target : `${r.target} #${r.round}`,
    r.mode,
    r.requestsPerS,
    r.p50Ms,
    r.p99Ms,
    r.latencyUs.p50,
    r.latencyUs.p99,
    r.cpuUsPerRequest?.proxy ?? '-',
    r.cpuUsPerRequest?.backends ?? '-',
    r.cpuUsPerRequest?.loadGenerator ?? '-',
    `${r.foreignCores ?? '-'}${r.disturbed ? ' !' : ''}`,
    r.errors + r.non2xx,
  ]
  const header = ['target', 'mode', 'req/s', 'p50 ms', 'p99 ms', 'p50 µs', 'p99 µs'].concat([
    'cpu µs/req proxy',
    'backends',
    'autocannon',
    'other cores',
    'errors',
  ])
  const text = [
    table(header, runs.map(row)),
    '',
    `built-in ÷ HAProxy throughput: ${report.ratios.builtinOverHaproxyThroughput} (median of the undisturbed rounds; per round ${perRound.map((r) => `${r.ratio}${r.disturbed ? ' (disturbed)' : ''}`).join(', ')}); p99 added at ${halfMode}: built-in ${added('built-in')} ms (${addedUs('built-in')} µs), HAProxy ${added('HAProxy')} ms (${addedUs('HAProxy')} µs)`,
    ...(beforeMax == null
      ? []
      : [
          `before ÷ HAProxy throughput: ${report.ratios.beforeOverHaproxyThroughput}; p99 added at ${halfMode}: before ${added('before: built-in')} ms (${addedUs('before: built-in')} µs)`,
        ]),
    '',
    table(header, rounds.map(row)),
    '',
    table(
      ['scenario', 'sent', 'failed', 'detail'],
      underChange.map((u) => [u.scenario, u.sent, u.failed, JSON.stringify(u.detail)]),
    ),
    `"other cores": CPU other processes used during a run; "!": over ${FOREIGN_LIMIT}, the run or its round is disturbed`,
    ...notes,
  ].join('\n')
  return { report, text }
}

/**
 * This build's proxy and, with SHOAL_BENCH_LB_BEFORE=<another build's
 * dist/bench/lb-proxy-child.js>, that one too, in the same run: a before/after
 * under the same conditions. The other build, e.g. the commit before a change:
 * `git archive <commit> | tar -x -C /tmp/before && ln -s "$PWD/node_modules"
 * /tmp/before/ && (cd /tmp/before && npx tsc -p tsconfig.json)`.
 */
function proxiesToMeasure(): ProxyChild[] {
  const proxies = [{ name: 'built-in proxy (3 backends)', script: PROXY_CHILD }]
  const before = process.env.SHOAL_BENCH_LB_BEFORE
  if (before) proxies.push({ name: 'before: built-in proxy (3 backends)', script: before })
  return proxies
}

/** A built-in proxy to measure: a script like lb-proxy-child.ts (argv: port, backend ports). */
export interface ProxyChild {
  name: string
  script: string
}

/**
 * Part 1: the 3 backends, each proxy child and HAProxy side by side; ROUNDS
 * closed-loop rounds (each target's median kept in `runs`), then the fixed-rate
 * runs at half of HAProxy's throughput. `proxies` defaults to this build's proxy;
 * more than one compares builds in one run.
 */
export async function throughput(
  dirs: TempDirs,
  notes: string[],
  proxies: ProxyChild[] = [{ name: 'built-in proxy (3 backends)', script: PROXY_CHILD }],
): Promise<{ runs: Run[]; rounds: Run[] }> {
  const children: ChildProcess[] = []
  const runs: Run[] = []
  const rounds: Run[] = []
  try {
    const work = await dirs.make('shoal-bench-lb-')
    const ports = [await freePort(), await freePort(), await freePort()]
    const backends = spawn(process.execPath, ['-e', BACKENDS_SCRIPT, JSON.stringify(ports)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(backends)
    await firstLine(backends)

    const targets: Target[] = [
      { name: 'direct (one backend)', url: `http://127.0.0.1:${ports[0]}`, pid: null },
    ]
    for (const { name, script } of proxies) {
      const proxyPort = await freePort()
      // With the Node flags `shoal lb` runs with (its shebang's), per-version figures on as always.
      const proxy = spawn(
        process.execPath,
        [...AGENT_NODE_FLAGS, script, String(proxyPort), JSON.stringify(ports)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
      children.push(proxy)
      await firstLine(proxy)
      targets.push({ name, url: `http://127.0.0.1:${proxyPort}`, pid: proxy.pid ?? null })
    }
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
      targets.push({
        name: 'HAProxy 2.6 (3 backends)',
        url: `http://127.0.0.1:${haproxyPort}`,
        pid: haproxy.pid ?? null,
      })
    } else notes.push(`${HAPROXY} is missing: no HAProxy figures`)

    for (const target of targets)
      await autocannon({ url: target.url, connections: CONNECTIONS, duration: WARMUP_S })
    // Closed loop: as fast as each path goes, the order rotated per round, until ROUNDS
    // rounds ran with the machine otherwise quiet (or MAX_ROUNDS were tried).
    let quietRounds = 0
    for (let r = 0; r < MAX_ROUNDS && quietRounds < ROUNDS; r++) {
      await quietHost({ limitCores: FOREIGN_LIMIT, maxWaitS: 30 })
      const round: Run[] = []
      for (let i = 0; i < targets.length; i++)
        round.push(await cannon(targets[(i + r) % targets.length]!, 'max', backends.pid!))
      const disturbed = round.some((run) => run.disturbed)
      if (!disturbed) quietRounds++
      for (const run of round) rounds.push({ ...run, round: r + 1, disturbed })
    }
    if (quietRounds < ROUNDS)
      notes.push(
        `only ${quietRounds} of ${rounds.length / targets.length} rounds ran with other processes under ${FOREIGN_LIMIT} cores`,
      )
    for (const target of targets) {
      const all = rounds.filter((run) => run.target === target.name)
      const quiet = all.filter((run) => !run.disturbed)
      const mine = (quiet.length > 0 ? quiet : all).sort((a, b) => a.requestsPerS - b.requestsPerS)
      runs.push(mine[Math.floor(mine.length / 2)]!)
    }
    // Open loop at half of HAProxy's (or the built-in proxy's) throughput, again while quiet.
    const reference = runs.find((r) => r.target.startsWith('HAProxy')) ?? runs[1]!
    const half = Math.round(reference.requestsPerS / 2)
    for (const target of targets) {
      let run: Run
      let tries = 0
      do {
        await quietHost({ limitCores: FOREIGN_LIMIT, maxWaitS: 30 })
        run = await cannon(target, half, backends.pid!)
      } while (run.disturbed && ++tries < 3)
      runs.push(run)
    }
  } finally {
    for (const child of children) child.kill('SIGKILL')
  }
  return { runs, rounds }
}

interface Target {
  name: string
  url: string
  /** The proxy's process; null when autocannon goes straight to a backend. */
  pid: number | null
}

/** autocannon against one target, with µs latencies and the CPU each process spent meanwhile. */
async function cannon(target: Target, rate: number | 'max', backendsPid: number): Promise<Run> {
  const latencies = new Latencies()
  const cpu = processCpu({ proxy: target.pid, backends: backendsPid })
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        connections: CONNECTIONS,
        duration: DURATION_S,
        ...(rate === 'max' ? {} : { overallRate: rate }),
      },
      (err: unknown, result) => (err == null ? resolve(result) : reject(err)),
    )
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.add(ms)
    })
  })
  const spent = await cpu()
  const perRequest = (seconds: number | null) =>
    seconds == null ? null : round((seconds * 1e6) / Math.max(1, result.requests.total), 1)
  return {
    target: target.name,
    mode: rate === 'max' ? 'max' : `${rate} req/s`,
    requestsPerS: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    latencyUs: latencies.percentiles(),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpuUsPerRequest:
      spent == null
        ? null
        : {
            proxy: perRequest(spent.proxy),
            backends: perRequest(spent.backends)!,
            loadGenerator: perRequest(spent.own)!,
          },
    foreignCores: spent?.foreignCores ?? null,
    disturbed: (spent?.foreignCores ?? 0) > FOREIGN_LIMIT,
  }
}

/** Every response's time (ms, fractional), for percentiles finer than autocannon's whole milliseconds. */
class Latencies {
  private values = new Float64Array(1 << 16)
  private count = 0

  add(ms: number): void {
    if (this.count === this.values.length) {
      const larger = new Float64Array(this.values.length * 2)
      larger.set(this.values)
      this.values = larger
    }
    this.values[this.count++] = ms
  }

  percentiles(): { p50: number; p90: number; p99: number; max: number } {
    const sorted = this.values.subarray(0, this.count).sort()
    const at = (q: number) =>
      this.count === 0
        ? 0
        : Math.round(1000 * sorted[Math.min(this.count - 1, Math.ceil(q * this.count) - 1)]!)
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
  }
}

/**
 * Starts counting CPU: the returned function gives the seconds the proxy (if any),
 * the backends' process and this one (autocannon) spent since, and the cores'
 * worth other processes used (from /proc; null where it is missing).
 */
function processCpu(pids: { proxy: number | null; backends: number }) {
  const ticks = clockTicks()
  const seconds = async (pid: number | null) =>
    pid == null
      ? null
      : await cpuTicks(pid).then(
          (t) => t / ticks,
          () => null,
        )
  const host = hostCpu()
  const began = Promise.all([seconds(pids.proxy), seconds(pids.backends)])
  const own = process.cpuUsage()
  const at = performance.now()
  return async () => {
    const [proxy0, backends0] = await began
    const [proxy1, backends1] = await Promise.all([seconds(pids.proxy), seconds(pids.backends)])
    const ownUsage = process.cpuUsage(own)
    const sample = host()
    if (backends0 == null || backends1 == null || sample == null) return null
    const proxy = proxy0 == null || proxy1 == null ? null : proxy1 - proxy0
    const backends = backends1 - backends0
    const wall = (performance.now() - at) / 1000
    // hostCpu leaves out this process only; the children are ours too.
    const foreign = sample.foreignCores - ((proxy ?? 0) + backends) / wall
    return {
      proxy,
      backends,
      own: (ownUsage.user + ownUsage.system) / 1e6,
      foreignCores: round(Math.max(0, foreign), 2),
    }
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
