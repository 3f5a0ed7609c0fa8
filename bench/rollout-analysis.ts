/**
 * Rollout-analysis benchmark (issue 21, progressive delivery): a bad canary under
 * steady load, judged by what `shoal lb` counted, and sent back automatically.
 *
 * N agent processes (`--sizes`, default 5; `lan` preset, closed by a secret as
 * production runs them) run educa 1.0 behind `shoal lb`. A fixed-rate load of
 * RATE req/s of `GET /` goes through the load balancer; the bench keeps every
 * request: when it was sent, when it was answered, its status, and the version
 * and node that answered (the web's JSON body, and the 500 body of 1.2 carries
 * its version too). Each run POSTs a canary of a bad version with analysis
 * (one canary node, `error-rate<1%`, `p99<+50ms`, 10 s windows) and samples the
 * rollout view and every agent's runtime every 100 ms and the load balancer's
 * backends every 25 ms, until every node is back on 1.0 and the load balancer routes only
 * to 1.0. Runs: the failing 1.2 (RUNS_BAD times, medians reported), then the
 * slow 1.2-slow (RUNS_SLOW times); each after the previous ended and the cluster
 * is back on 1.0.
 *
 * Per run, from the POST: (a) the canary answering and its window opening, (b) the
 * verdict (`verdicts[0].at`), (c) every node back on 1.0; the failed requests by
 * when they were sent: before the canary served, canary serving before the window,
 * in the window, between the window's end and the verdict, after the verdict, after
 * every node was back; how long after the verdict the load balancer still sent
 * requests to the bad version (the last one it answered; the load balancer's own
 * count for it, sampled every 25 ms), and the canary node's switch back step by
 * step: its `lastSwitch` (picked up, spawned, ready, settled), its web components'
 * `since` (1.0 ready, the bad one draining), and what the load balancer listed
 * (the bad backend at weight 0, draining, gone; the node's 1.0 web ready).
 * "Every node back" is the first moment, after the verdict, at which every agent
 * reports 1.0 active and targeted with its runtime phase done, and the load
 * balancer has a ready backend on every node and none ready on another version.
 *
 * Environment knobs: SHOAL_BENCH_ROLLOUT_RUNS=BAD,SLOW (default 3,1),
 * SHOAL_BENCH_ROLLOUT_RATE=R (req/s, default 200).
 */
import type { ChildProcess } from 'node:child_process'
import { Agent as HttpAgent, get as httpGet } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemberView } from '../src/api/index.js'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { writeNewSecret } from '../src/bootstrap/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ProxyStatus } from '../src/loadbalancer/index.js'
import type { RolloutView } from '../src/manager/index.js'
import type { RuntimeStatus, SwitchTiming } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { startLb } from './lb-process.js'
import {
  type Agent,
  cpuWindow,
  getJson,
  reapComponents,
  startCluster,
  tcpAddrs,
  until,
  waitQuiet,
} from './manager-cluster.js'
import { terminate } from './processes.js'
import { machine, round, source, TempDirs, table } from './util.js'

const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const [RUNS_BAD, RUNS_SLOW] = (process.env.SHOAL_BENCH_ROLLOUT_RUNS ?? '3,1').split(',').map(Number) as [
  number,
  number,
]
const RATE = Number(process.env.SHOAL_BENCH_ROLLOUT_RATE ?? 200)
const ANALYSIS = { analysis: ['error-rate<1%', 'p99<+50ms'], intervalMs: 10_000, minRequests: 100 }
/** Load before the POST, so the requests just before it are counted. */
const LEAD_MS = 2000
/** Load after every node is back, to show that nothing fails any more. */
const TAIL_MS = 3000
const SAMPLE_MS = 100
/** The load balancer's backends are sampled faster: when it stops routing to the bad version is the question. */
const LB_SAMPLE_MS = 25
const REQUEST_TIMEOUT_MS = 10_000
/** More requests in flight than this means the client (not the cluster) cannot keep up: counted as failed. */
const MAX_INFLIGHT = 1000
/** Share of real requests 1.2 answers with 500 (examples/educa's default). */
const FAILURE_SHARE = 0.1
const OLD = 'educa@1.0'
const RUN_CAP_MS = 180_000

type Bad = '1.2' | '1.2-slow'
type AnalysisWindow = NonNullable<RolloutView['window']>

/** One request of the load: wall-clock ms (Date.now, the agents' clock too). */
interface RequestRecord {
  sentAt: number
  doneAt: number
  /** HTTP status; 0 when no answer came (see `error`). */
  status: number
  version: string | null
  node: string | null
  error: string | null
}

interface Segment {
  sent: number
  failed: number
  /** Answered by the bad version (successes and failures). */
  byCanary: number
  failedByCanary: number
  /** Failed without an answer from the bad version (the load balancer's own answers, resets, timeouts). */
  failedOther: number
}

const SEGMENTS = [
  'beforeCanaryServed',
  'canaryBeforeWindow',
  'window',
  'windowEndToVerdict',
  'afterVerdict',
  'afterAllBack',
] as const
type SegmentName = (typeof SEGMENTS)[number]

interface Run {
  run: number
  distribution: string
  state: string
  reason: string | null
  canaryNodes: string[]
  /** ms from the POST (null: not reached). */
  fromPostMs: {
    firstCanaryAnswer: number | null
    canaryReady: number | null
    windowOpened: number | null
    windowClosed: number | null
    verdict: number | null
    rolloutFinished: number | null
    allBack: number | null
  }
  /** ms from the verdict: the canary node's switch back, and the load balancer leaving the bad version. */
  fromVerdictMs: {
    revertStarted: number | null
    revertSpawned: number | null
    /** The canary node's web on 1.0 ready (its `since`). */
    webOldReady: number | null
    /** Every 1.0 component of the canary node ready (lastSwitch.readyAt): its bad web is drained next. */
    revertReady: number | null
    /** The first load-balancer sample (every 25 ms) listing the canary node's 1.0 web ready. */
    lbOldReady: number | null
    /** The canary node marked its bad web draining (its `since`), and announced it. */
    webBadDraining: number | null
    /**
     * The first load-balancer sample in which no backend of the bad version can take a new
     * request: weight 0 (a version a failed verdict condemned announces it at once), draining or gone.
     */
    lbStoppedRouting: number | null
    /** The first load-balancer sample with no ready backend of the bad version (draining or gone). */
    lbBadDraining: number | null
    /** The send time of the last request the bad version answered. */
    lastCanaryRequest: number | null
    /** The first load-balancer sample whose request count for the bad version's backends is final. */
    lbLastBadRequestSeen: number | null
    revertSettled: number | null
    /** The first load-balancer sample that lists no backend of the bad version. */
    lbBadGone: number | null
    allBack: number | null
  }
  /** The canary node's switch to the bad version (its lastSwitch), ms from the POST. */
  canarySwitchMs: {
    started: number | null
    spawned: number | null
    ready: number | null
    settled: number | null
  }
  requests: {
    sent: number
    failed: number
    /** Sent from the POST until every node was back. */
    failedPostToBack: number
    sentPostToBack: number
    /** The bad version's answers that failed, and what FAILURE_SHARE of its answers would be. */
    canaryAnswers: number
    canaryFailures: number
    expectedCanaryFailures: number
    segments: Record<SegmentName, Segment>
    /** Of the requests sent after the verdict until every node was back, the share the bad version answered. */
    canaryShareAfterVerdict: number | null
    failureKinds: Record<string, number>
    /** Latency (send → answer) of successful answers, ms, by version. */
    latencyMs: Record<string, { count: number; p50: number | null; p99: number | null }>
    skippedByClient: number
  }
  verdict: NonNullable<RolloutView['verdicts']>[number] | null
  /** Requests the canary node answered from 100 ms before the verdict to 500 ms after every node was back, ms from the verdict. */
  canaryRequestsAfterVerdict: Array<{
    sentMs: number
    tookMs: number
    status: number
    version: string | null
  }>
  /** Changes seen by the 100 ms sampler, ms from the POST. */
  timeline: Array<{ atMs: number; what: string }>
  cpu: { busyCores: number; benchCores: number; otherCores: number } | null
}

export async function runRolloutAnalysis(options: { sizes: number[] }) {
  const started = performance.now()
  const notes: string[] = []
  const series: Array<{ n: number; runs: Run[] }> = []
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  const hostQuietBefore = await waitQuiet('the rollout-analysis benchmark', notes)
  for (const n of options.sizes) series.push({ n, runs: await measureSize(n, notes) })
  const allRuns = series.flatMap((s) => s.runs)
  const cores = (f: (c: NonNullable<Run['cpu']>) => number) =>
    median(allRuns.map((r) => (r.cpu == null ? null : f(r.cpu))))
  const fromVerdict = (k: keyof Run['fromVerdictMs']) => median(allRuns.map((r) => r.fromVerdictMs[k]))
  notes.push(
    `limits on this host (${cpus().length} cores): the agents, their 2 components each (4 on a node while it switches), ` +
      `shoal lb, and this process's load (${RATE} req/s) and samplers share the cores; per run the host was busy ` +
      `${cores((c) => c.busyCores)} cores (median), ${cores((c) => c.benchCores)} of them this bench's processes, ` +
      `${cores((c) => c.otherCores)} other processes'. CPU-bound after the verdict: the canary node starting its 1.0 ` +
      `components (spawned → web ready, median ${median(allRuns.map((r) => diff(r.fromVerdictMs.webOldReady, r.fromVerdictMs.revertSpawned)))} ms), ` +
      'which holds its drain and the end of the switch back; the bad version leaves rotation before that (weight 0, ' +
      `median ${fromVerdict('lbStoppedRouting')} ms after the verdict), mostly the node's detail push to the load ` +
      "balancer (coalesced 100 ms, then one libp2p round trip), which contention stretches. Not the host's: the " +
      `window and its grace (${ANALYSIS.intervalMs} + 1500 ms) and min-ready (1000 ms). With one canary node of ${options.sizes.join('/')} ` +
      `at ${RATE} req/s it gets ~${Math.round(RATE / (options.sizes[0] ?? 5))} req/s and 1.2 fails every 10th, so failures after ` +
      'the verdict come in whole requests (0 or 1 per ~250 ms the bad version stays in rotation). Times: wall clock ' +
      `of one host; the load balancer sampled every ${LB_SAMPLE_MS} ms, runtimes and the rollout every ${SAMPLE_MS} ms ` +
      "(stamped on receipt); requests by the bench's send time; component and switch times are the agents' own stamps.",
  )

  const summaries = series.flatMap((s) =>
    (['1.2', '1.2-slow'] as const).map((v) => summarize(s.n, `educa@${v}`, s.runs)).filter((x) => x != null),
  )
  const bad = summaries.filter((s) => s.distribution === 'educa@1.2')
  const targets = [
    ...bad.map((s) => ({
      target: `N=${s.n}: 0 failed requests sent before the canary served (median of ${s.runs})`,
      measured: String(s.failed.beforeCanaryServed),
      pass: s.failed.beforeCanaryServed === 0,
    })),
    ...bad.map((s) => ({
      target: `N=${s.n}: failures up to the verdict ≈ ${FAILURE_SHARE * 100} % of the canary's answers then`,
      measured: `${s.failed.upToVerdict} (expected ${s.expectedUpToVerdict})`,
      pass:
        Math.abs(s.failed.upToVerdict - s.expectedUpToVerdict) <= Math.max(2, 0.1 * s.expectedUpToVerdict),
    })),
    ...bad.map((s) => ({
      target: `N=${s.n}: 0 failed requests sent after the verdict (median of ${s.runs})`,
      measured: `${s.failed.afterVerdict} (runs: ${s.afterVerdictRuns.join(', ')})`,
      pass: s.failed.afterVerdict === 0,
    })),
  ]
  const report = {
    suite: 'rollout-analysis',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      sizes: options.sizes,
      preset: 'lan',
      closed: 'secret file (libp2p private network)',
      load: {
        rate: RATE,
        path: '/',
        open: 'fixed-rate (open loop), keep-alive',
        timeoutMs: REQUEST_TIMEOUT_MS,
      },
      rollout: {
        strategy: 'canary',
        steps: '[floor(100 / N), 100]: one canary node, then every node',
        ...ANALYSIS,
        minReadyMs: 1000,
      },
      runs: { bad: RUNS_BAD, slow: RUNS_SLOW },
      leadMs: LEAD_MS,
      tailMs: TAIL_MS,
      sampleMs: SAMPLE_MS,
      loadAverageAtStart,
    },
    hostQuietBefore,
    summaries,
    series,
    targets,
    notes,
  }
  return { report, text: textOf(series, summaries, targets, notes) }
}

function textOf(
  series: Array<{ n: number; runs: Run[] }>,
  summaries: Summary[],
  targets: Array<{ target: string; measured: string; pass: boolean }>,
  notes: string[],
): string {
  const runs = series.flatMap((s) => s.runs.map((r) => ({ n: s.n, ...r })))
  const seg = (r: Run, name: SegmentName) =>
    `${r.requests.segments[name].failed}/${r.requests.segments[name].sent}`
  return [
    `bad canary (one node) with analysis behind shoal lb under ${RATE} req/s (closed cluster, lan preset); ms from the POST`,
    table(
      [
        'N',
        'run',
        'version',
        'state',
        'canary answers',
        'window',
        'verdict',
        'all back',
        'failed/sent: before',
        'canary pre-window',
        'window',
        'to verdict',
        'after verdict',
        'after back',
        'bad share after verdict',
      ],
      runs.map((r) => [
        r.n,
        r.run,
        r.distribution,
        r.state,
        r.fromPostMs.firstCanaryAnswer,
        r.fromPostMs.windowOpened,
        r.fromPostMs.verdict,
        r.fromPostMs.allBack,
        seg(r, 'beforeCanaryServed'),
        seg(r, 'canaryBeforeWindow'),
        seg(r, 'window'),
        seg(r, 'windowEndToVerdict'),
        seg(r, 'afterVerdict'),
        seg(r, 'afterAllBack'),
        r.requests.canaryShareAfterVerdict,
      ]),
    ),
    '',
    'after the verdict (ms from verdicts[0].at): the canary node picks it up (the condemned version announces weight 0 at once) and starts 1.0 beside the bad version (make before break); once 1.0 is ready it drains the bad web and stops it',
    table(
      [
        'N',
        'run',
        'version',
        'picked up',
        'LB weight 0',
        'last bad req.',
        'LB count final',
        'spawned',
        'web 1.0 ready',
        'all 1.0 ready',
        'bad draining',
        'LB draining',
        'LB lists 1.0',
        'settled',
        'LB bad gone',
        'all back',
      ],
      runs.map((r) => [
        r.n,
        r.run,
        r.distribution,
        r.fromVerdictMs.revertStarted,
        r.fromVerdictMs.lbStoppedRouting,
        r.fromVerdictMs.lastCanaryRequest,
        r.fromVerdictMs.lbLastBadRequestSeen,
        r.fromVerdictMs.revertSpawned,
        r.fromVerdictMs.webOldReady,
        r.fromVerdictMs.revertReady,
        r.fromVerdictMs.webBadDraining,
        r.fromVerdictMs.lbBadDraining,
        r.fromVerdictMs.lbOldReady,
        r.fromVerdictMs.revertSettled,
        r.fromVerdictMs.lbBadGone,
        r.fromVerdictMs.allBack,
      ]),
    ),
    '',
    'medians',
    table(
      [
        'N',
        'version',
        'runs',
        'window opened',
        'verdict',
        'all back',
        'failed POST→back',
        'before',
        'up to verdict (exp.)',
        'after verdict',
        'after back',
        'bad share after verdict',
        'LB on bad after verdict',
      ],
      summaries.map((s) => [
        s.n,
        s.distribution,
        s.runs,
        s.fromPostMs.windowOpened,
        s.fromPostMs.verdict,
        s.fromPostMs.allBack,
        s.failed.postToBack,
        s.failed.beforeCanaryServed,
        `${s.failed.upToVerdict} (${s.expectedUpToVerdict})`,
        s.failed.afterVerdict,
        s.failed.afterAllBack,
        s.canaryShareAfterVerdict,
        s.lastCanaryRequestAfterVerdictMs,
      ]),
    ),
    '',
    table(
      ['target', 'measured', ''],
      targets.map((t) => [t.target, t.measured, t.pass ? 'pass' : 'FAIL']),
    ),
    ...notes,
  ].join('\n')
}

interface Summary {
  n: number
  distribution: string
  runs: number
  states: string[]
  fromPostMs: {
    firstCanaryAnswer: number | null
    windowOpened: number | null
    verdict: number | null
    allBack: number | null
  }
  fromVerdictMs: Run['fromVerdictMs']
  failed: {
    postToBack: number
    beforeCanaryServed: number
    upToVerdict: number
    afterVerdict: number
    afterAllBack: number
  }
  expectedUpToVerdict: number
  afterVerdictRuns: number[]
  canaryShareAfterVerdict: number | null
  lastCanaryRequestAfterVerdictMs: number | null
}

/** Medians over the runs of one version at one size (null when there were none). */
function summarize(n: number, distribution: string, all: Run[]): Summary | null {
  const runs = all.filter((r) => r.distribution === distribution)
  if (runs.length === 0) return null
  const m = (f: (r: Run) => number | null) => median(runs.map(f))
  const mn = (f: (r: Run) => number | null) => m(f) ?? Number.NaN
  const upTo = (r: Run) =>
    r.requests.segments.canaryBeforeWindow.failed +
    r.requests.segments.window.failed +
    r.requests.segments.windowEndToVerdict.failed
  const canaryUpTo = (r: Run) =>
    r.requests.segments.canaryBeforeWindow.byCanary +
    r.requests.segments.window.byCanary +
    r.requests.segments.windowEndToVerdict.byCanary
  const keys = Object.keys(runs[0]!.fromVerdictMs) as Array<keyof Run['fromVerdictMs']>
  return {
    n,
    distribution,
    runs: runs.length,
    states: runs.map((r) => r.state),
    fromPostMs: {
      firstCanaryAnswer: m((r) => r.fromPostMs.firstCanaryAnswer),
      windowOpened: m((r) => r.fromPostMs.windowOpened),
      verdict: m((r) => r.fromPostMs.verdict),
      allBack: m((r) => r.fromPostMs.allBack),
    },
    fromVerdictMs: Object.fromEntries(
      keys.map((k) => [k, m((r) => r.fromVerdictMs[k])]),
    ) as Run['fromVerdictMs'],
    failed: {
      postToBack: mn((r) => r.requests.failedPostToBack),
      beforeCanaryServed: mn((r) => r.requests.segments.beforeCanaryServed.failed),
      upToVerdict: mn(upTo),
      afterVerdict: mn((r) => r.requests.segments.afterVerdict.failed),
      afterAllBack: mn((r) => r.requests.segments.afterAllBack.failed),
    },
    expectedUpToVerdict: distribution === 'educa@1.2' ? Math.round(mn(canaryUpTo) * FAILURE_SHARE) : 0,
    afterVerdictRuns: runs.map((r) => r.requests.segments.afterVerdict.failed),
    canaryShareAfterVerdict: m((r) => r.requests.canaryShareAfterVerdict),
    lastCanaryRequestAfterVerdictMs: m((r) => r.fromVerdictMs.lastCanaryRequest),
  }
}

function diff(a: number | null, b: number | null): number | null {
  return a == null || b == null ? null : a - b
}

function median(values: Array<number | null>): number | null {
  const sorted = values.filter((v): v is number => v != null && Number.isFinite(v)).sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)]!
}

function quantile(values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!
}

// --- one cluster size --------------------------------------------------------------------------

async function measureSize(n: number, notes: string[]): Promise<Run[]> {
  const dirs = new TempDirs()
  const agents: Agent[] = []
  const runs: Run[] = []
  let lb: ChildProcess | undefined
  try {
    const work = await dirs.make('shoal-bench-rollout-analysis-')
    const key = join(work, 'publisher.key')
    const secret = join(work, 'cluster.secret')
    await writeNewKeyPair(key)
    await writeNewSecret(secret)
    const closed = ['--secret-file', secret]
    await startCluster(n, dirs, ['--trust', `${key}.pub`, ...closed], agents)
    const client = new ApiClient(agents[0]!.info.api)
    await until(`${n} agents with one manager`, async () => {
      const members = await getJson<MemberView[]>(agents[0]!.info.api, '/api/members')
      return members.filter((m) => m.state === 'alive').length === n && members.some((m) => m.manager)
    })
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const versions = ['1.0', '1.2', '1.2-slow'] as const
    for (const version of versions)
      await publish(client, { dir: builds[version], name: 'educa', version, keyFile: key, progress: false })
    await until('every version complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) => getJson<Array<{ complete: boolean }>>(a.info.api, '/api/distributions')),
      )
      return lists.every((l) => l.length === versions.length && l.every((d) => d.complete))
    })
    await finish(client, await client.post<RolloutView>('/api/rollouts', { json: { distribution: OLD } }))

    const startedLb = await startLb({
      port: await freePort(),
      data: await dirs.make('shoal-bench-rollout-analysis-lb-'),
      bootstrap: tcpAddrs(agents[0]!),
      flags: closed,
    })
    lb = startedLb.child
    const plan: Bad[] = [
      ...Array.from({ length: RUNS_BAD }, () => '1.2' as const),
      ...Array.from({ length: RUNS_SLOW }, () => '1.2-slow' as const),
    ]
    for (const [i, bad] of plan.entries()) {
      await until(
        `every node on 1.0 behind the load balancer before run ${i + 1}`,
        () => clusterOnOld(agents, startedLb.admin),
        120_000,
      )
      const run = await measureRun(i + 1, bad, n, agents, client, startedLb, notes)
      runs.push(run)
      console.error(
        `N=${n} run ${run.run} ${run.distribution}: ${JSON.stringify({ ...run, timeline: undefined })}`,
      )
      if (run.state !== 'failed')
        notes.push(`N=${n} run ${run.run} (${run.distribution}) ended ${run.state}: ${run.reason}`)
    }
  } catch (err) {
    notes.push(`N=${n}: benchmark failed: ${String(err)}`)
    console.error(err)
  } finally {
    if (lb != null) await terminate(lb)
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
    await dirs.removeAll()
  }
  return runs
}

type Runtimes = Array<{ id: string; status: RuntimeStatus }>
type Backends = ProxyStatus['backends']

async function runtimesOf(agents: Agent[]): Promise<Runtimes> {
  return Promise.all(
    agents.map(async (a) => ({
      id: a.info.id,
      status: await getJson<RuntimeStatus>(a.info.api, '/api/components', 2000),
    })),
  )
}

const isVersion = (version: string, distribution: string) =>
  version === distribution || `educa@${version}` === distribution

/**
 * Every node settled on 1.0 (active, target, phase done), and the load balancer has a
 * ready backend on each node and routes to no other version (draining ones take no new request).
 */
function allOld(runtimes: Runtimes, backends: Backends, n: number): boolean {
  const ready = backends.filter((b) => b.state === 'ready')
  return (
    runtimes.length === n &&
    runtimes.every(({ status: s }) => s.active === OLD && s.target === OLD && s.phase === 'done') &&
    ready.every((b) => isVersion(b.version, OLD)) &&
    new Set(ready.map((b) => b.node)).size === n
  )
}

async function clusterOnOld(agents: Agent[], lbAdmin: string): Promise<boolean> {
  const [runtimes, lb] = await Promise.all([runtimesOf(agents), getJson<ProxyStatus>(lbAdmin, '/_shoal/lb')])
  return allOld(runtimes, lb.backends, agents.length)
}

/** Runs `body` every `ms` (a slow answer delays the next) until `running()` is false. */
async function every(ms: number, running: () => boolean, body: () => Promise<void>): Promise<void> {
  while (running()) {
    const next = performance.now() + ms
    await body().catch(() => {})
    await sleep(Math.max(0, next - performance.now()))
  }
}

async function measureRun(
  index: number,
  bad: Bad,
  n: number,
  agents: Agent[],
  client: ApiClient,
  lb: { url: string; admin: string },
  notes: string[],
): Promise<Run> {
  const distribution = `educa@${bad}`
  const percent = Math.floor(100 / n)
  const cpu = await cpuWindow()
  const load = fixedRateLoad(lb.url, RATE)
  const timeline: Array<{ at: number; what: string }> = []
  const last = new Map<string, string>()
  const note = (key: string, value: string, at: number) => {
    if (last.get(key) === value) return
    last.set(key, value)
    timeline.push({ at, what: `${key}: ${value}` })
  }
  /** Every distinct switch each node made (by startedAt). */
  const switches = new Map<string, Map<string, SwitchTiming>>()
  /** When each component instance entered each state, as its agent says (`since`): `node name distribution state` → ms. */
  const componentSince = new Map<string, number>()
  /** The load balancer's backends each time they changed (stamped on receipt). */
  const lbChanges: Array<{ at: number; backends: Backends }> = []
  let lastBackends: Backends | null = null
  /** Requests the load balancer sent to the bad version's backends, and the sample that first saw the latest count. */
  let lbBadRequests = 0
  let lbBadRequestSeenAt: number | null = null
  let runtimes: Runtimes | null = null
  let view: RolloutView | null = null
  /** The step-0 window as last seen open (the record drops it at the verdict). */
  let windowSeen: AnalysisWindow | null = null
  let allBackAt: number | null = null
  let sampling = true
  let id: string | null = null
  const running = () => sampling
  // Back on 1.0 counts once the step was judged (the rollout record may end a little later).
  const judged = () => (view?.verdicts?.length ?? 0) > 0 || view?.state === 'aborted'
  const checkBack = (at: number) => {
    if (allBackAt == null && judged() && runtimes != null && lastBackends != null)
      if (allOld(runtimes, lastBackends, n)) allBackAt = at
  }
  const samplers = [
    every(LB_SAMPLE_MS, running, async () => {
      const { backends } = await getJson<ProxyStatus>(lb.admin, '/_shoal/lb', 2000)
      const at = Date.now()
      const shape = (b: Backends[number]) =>
        `${b.key} ${b.version} ${b.state} w${b.weight}${b.ejected ? ' ejected' : ''}`
      if (lastBackends == null || lastBackends.map(shape).join() !== backends.map(shape).join())
        lbChanges.push({ at, backends })
      lastBackends = backends
      const badCount = backends
        .filter((b) => isVersion(b.version, distribution))
        .reduce((sum, b) => sum + b.counters.requests, 0)
      if (badCount > lbBadRequests) {
        lbBadRequests = badCount
        lbBadRequestSeenAt = at
      }
      for (const node of new Set(backends.map((b) => b.node)))
        note(
          `lb ${short(node)}`,
          backends
            .filter((b) => b.node === node)
            .map((b) => shape(b).slice(b.key.indexOf('/') + 1))
            .join(', '),
          at,
        )
      checkBack(at)
    }),
    every(SAMPLE_MS, running, async () => {
      const got = await runtimesOf(agents)
      const at = Date.now()
      runtimes = got
      for (const { id: node, status } of got) {
        note(`node ${short(node)}`, `${status.phase} ${status.active} → ${status.target}`, at)
        const s = status.lastSwitch
        if (s != null) {
          const mine = switches.get(node) ?? new Map<string, SwitchTiming>()
          mine.set(s.startedAt, s)
          switches.set(node, mine)
        }
        for (const c of status.components) {
          const key = `${node} ${c.name} ${c.distribution} ${c.state}`
          const since = Date.parse(c.since)
          if ((componentSince.get(key) ?? 0) < since) componentSince.set(key, since)
        }
      }
      checkBack(at)
    }),
    every(SAMPLE_MS, running, async () => {
      if (id == null) return
      const rollout = await client.get<RolloutView>(`/api/rollouts/${id}`)
      const at = Date.now()
      view = rollout
      if (rollout.window != null && rollout.window.step === 0) windowSeen = rollout.window
      note('rollout', `${rollout.state}${rollout.window == null ? '' : ` window ${rollout.window.step}`}`, at)
      for (const m of rollout.members)
        if (m.status !== 'pending' && m.status !== 'skipped') note(`progress ${short(m.id)}`, m.status, at)
    }),
  ]

  await sleep(LEAD_MS)
  const postAt = Date.now()
  let state = 'unknown'
  let reason: string | null = null
  try {
    const created = await client.post<RolloutView>('/api/rollouts', {
      json: { distribution, strategy: 'canary', steps: [percent, 100], ...ANALYSIS },
    })
    id = created.id
    const deadline = Date.now() + RUN_CAP_MS
    let rescued = false
    while (allBackAt == null && Date.now() < deadline) {
      await sleep(SAMPLE_MS)
      const v = view as RolloutView | null
      // A verdict that passed waits for approval (manual): not what this bench is for; abort it.
      if (!rescued && (v?.state === 'waiting-approval' || v?.state === 'paused')) {
        rescued = true
        notes.push(
          `run ${index} (${distribution}): ${v.state} (${v.reason ?? v.verdicts?.at(-1)?.reason}); aborted`,
        )
        await client.post(`/api/rollouts/${v.id}/abort`).catch(() => {})
        await sleep(1000)
      }
      if (!rescued && v?.state === 'done') {
        rescued = true
        notes.push(`run ${index} (${distribution}): passed every step; rolled back to 1.0`)
        await client.post('/api/rollbacks', { json: { name: 'educa', to: '1.0' } }).catch(() => {})
        await sleep(1000)
      }
    }
    await until(
      `rollout ${id} to end`,
      async () =>
        view != null && !['running', 'waiting-approval', 'paused', 'rolling-back'].includes(view.state),
      60_000,
    ).catch((err) => notes.push(`run ${index} (${distribution}): ${String(err)}`))
    if (allBackAt == null)
      notes.push(`run ${index} (${distribution}): not every node back on 1.0 within ${RUN_CAP_MS / 1000} s`)
    await sleep(TAIL_MS)
  } catch (err) {
    notes.push(`run ${index} (${distribution}) failed: ${String(err)}`)
  } finally {
    sampling = false
    await Promise.all(samplers)
    await load.stop()
  }
  const final = id == null ? null : await client.get<RolloutView>(`/api/rollouts/${id}`).catch(() => view)
  state = final?.state ?? 'unknown'
  reason = final?.reason ?? null
  const used = await cpu()

  const records = load.records
  const isBad = (r: RequestRecord) => r.version === bad || r.version === distribution
  const failed = (r: RequestRecord) => r.status < 200 || r.status >= 400
  const firstCanary = records
    .filter(isBad)
    .reduce<number | null>((m, r) => (m == null || r.sentAt < m ? r.sentAt : m), null)
  const verdict = final?.verdicts?.[0] ?? null
  const at = (iso: string | null | undefined) => (iso == null ? null : Date.parse(iso))
  const windowFrom = at(verdict?.from ?? (windowSeen as AnalysisWindow | null)?.from)
  const windowTo = at(verdict?.to)
  const verdictAt = at(verdict?.at)
  const bounds: Array<[SegmentName, number | null]> = [
    ['beforeCanaryServed', Number.NEGATIVE_INFINITY],
    ['canaryBeforeWindow', firstCanary],
    ['window', windowFrom],
    ['windowEndToVerdict', windowTo],
    ['afterVerdict', verdictAt],
    ['afterAllBack', allBackAt],
  ]
  const segmentOf = (t: number): SegmentName => {
    let name: SegmentName = 'beforeCanaryServed'
    for (const [s, from] of bounds) if (from != null && t >= from) name = s
    return name
  }
  const segments = Object.fromEntries(
    SEGMENTS.map((s) => [s, { sent: 0, failed: 0, byCanary: 0, failedByCanary: 0, failedOther: 0 }]),
  ) as Record<SegmentName, Segment>
  const kinds: Record<string, number> = {}
  for (const r of records) {
    const s = segments[segmentOf(r.sentAt)]
    s.sent++
    if (isBad(r)) s.byCanary++
    if (failed(r)) {
      s.failed++
      if (isBad(r)) s.failedByCanary++
      else s.failedOther++
      const kind = r.error ?? `${r.status} from ${r.version ?? 'the load balancer'}`
      kinds[kind] = (kinds[kind] ?? 0) + 1
    }
  }
  const afterVerdict =
    verdictAt == null
      ? []
      : records.filter((r) => r.sentAt >= verdictAt && (allBackAt == null || r.sentAt < allBackAt))
  const lastBad = records
    .filter(isBad)
    .reduce<number | null>((m, r) => (m == null || r.sentAt > m ? r.sentAt : m), null)
  const latency: Run['requests']['latencyMs'] = {}
  for (const version of new Set(records.filter((r) => !failed(r)).map((r) => r.version ?? '?'))) {
    const ms = records
      .filter((r) => !failed(r) && (r.version ?? '?') === version)
      .map((r) => r.doneAt - r.sentAt)
    latency[version] = { count: ms.length, p50: quantile(ms, 0.5), p99: quantile(ms, 0.99) }
  }

  // The canary nodes: those whose runtime switched to the bad version in this run.
  const canaryNodes = [...switches.entries()]
    .filter(([, s]) =>
      [...s.values()].some((t) => t.to === distribution && Date.parse(t.startedAt) >= postAt),
    )
    .map(([node]) => node)
  const ofCanary = (to: string) => {
    const found = canaryNodes
      .flatMap((node) => [...switches.get(node)!.values()])
      .filter((t) => t.to === to && Date.parse(t.startedAt) >= postAt)
      .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt))
    return found[0] ?? null
  }
  const toBad = ofCanary(distribution)
  const back = ofCanary(OLD)
  const rel = (t: number | null, from: number | null) => (t == null || from == null ? null : t - from)
  // The load balancer: the bad version ready, then no longer routed to (draining or gone), then gone.
  const hasBad = (bs: Backends, state?: string, routable = false) =>
    bs.some(
      (b) =>
        isVersion(b.version, distribution) &&
        (state == null || b.state === state) &&
        (!routable || (b.weight > 0 && !b.ejected)),
    )
  const badReadyAt = lbChanges.find((c) => hasBad(c.backends, 'ready', true))?.at ?? null
  const afterBadReady = badReadyAt == null ? [] : lbChanges.filter((c) => c.at > badReadyAt)
  const lbStoppedAt = afterBadReady.find((c) => !hasBad(c.backends, 'ready', true))?.at ?? null
  const lbDrainingAt = afterBadReady.find((c) => !hasBad(c.backends, 'ready'))?.at ?? null
  const lbGoneAt = afterBadReady.find((c) => !hasBad(c.backends))?.at ?? null
  const lbOldReadyAt =
    verdictAt == null
      ? null
      : (lbChanges.find(
          (c) =>
            c.at >= verdictAt &&
            c.backends.some(
              (b) => canaryNodes.includes(b.node) && isVersion(b.version, OLD) && b.state === 'ready',
            ),
        )?.at ?? null)
  // The canary node's own account (its components' `since`, the agent's clock).
  const sinceOf = (distributionOf: string, state: string) =>
    median(canaryNodes.map((node) => componentSince.get(`${node} web ${distributionOf} ${state}`) ?? null))
  const webOldReady = sinceOf(OLD, 'ready')
  const webBadDraining = sinceOf(distribution, 'draining')
  const inSent = (from: number, to: number | null) =>
    records.filter((r) => r.sentAt >= from && (to == null || r.sentAt < to))
  const between = inSent(postAt, allBackAt)
  const run: Run = {
    run: index,
    distribution,
    state,
    reason,
    canaryNodes,
    fromPostMs: {
      firstCanaryAnswer: rel(firstCanary, postAt),
      canaryReady: rel(at(toBad?.readyAt), postAt),
      windowOpened: rel(windowFrom, postAt),
      windowClosed: rel(windowTo, postAt),
      verdict: rel(verdictAt, postAt),
      rolloutFinished: rel(at(final?.finishedAt), postAt),
      allBack: rel(allBackAt, postAt),
    },
    fromVerdictMs: {
      revertStarted: rel(at(back?.startedAt), verdictAt),
      revertSpawned: rel(at(back?.spawnedAt), verdictAt),
      webOldReady:
        webOldReady == null || verdictAt == null || webOldReady < verdictAt ? null : webOldReady - verdictAt,
      revertReady: rel(at(back?.readyAt), verdictAt),
      lbOldReady: rel(lbOldReadyAt, verdictAt),
      webBadDraining: rel(webBadDraining, verdictAt),
      lbStoppedRouting: rel(lbStoppedAt, verdictAt),
      lbBadDraining: rel(lbDrainingAt, verdictAt),
      lastCanaryRequest: rel(lastBad, verdictAt),
      lbLastBadRequestSeen: rel(lbBadRequestSeenAt, verdictAt),
      revertSettled: rel(at(back?.settledAt), verdictAt),
      lbBadGone: rel(lbGoneAt, verdictAt),
      allBack: rel(allBackAt, verdictAt),
    },
    canarySwitchMs: {
      started: rel(at(toBad?.startedAt), postAt),
      spawned: rel(at(toBad?.spawnedAt), postAt),
      ready: rel(at(toBad?.readyAt), postAt),
      settled: rel(at(toBad?.settledAt), postAt),
    },
    requests: {
      sent: records.length,
      failed: records.filter(failed).length,
      failedPostToBack: between.filter(failed).length,
      sentPostToBack: between.length,
      canaryAnswers: records.filter(isBad).length,
      canaryFailures: records.filter((r) => isBad(r) && failed(r)).length,
      expectedCanaryFailures: bad === '1.2' ? Math.floor(records.filter(isBad).length * FAILURE_SHARE) : 0,
      segments,
      canaryShareAfterVerdict:
        afterVerdict.length === 0 ? null : round(afterVerdict.filter(isBad).length / afterVerdict.length, 3),
      failureKinds: kinds,
      latencyMs: latency,
      skippedByClient: load.skipped(),
    },
    verdict,
    canaryRequestsAfterVerdict:
      verdictAt == null
        ? []
        : records
            .filter(
              (r) =>
                r.sentAt >= verdictAt - 100 &&
                (isBad(r) || (r.node != null && canaryNodes.includes(r.node))) &&
                (allBackAt == null || r.sentAt < allBackAt + 500),
            )
            .map((r) => ({
              sentMs: r.sentAt - verdictAt,
              tookMs: r.doneAt - r.sentAt,
              status: r.status,
              version: r.version,
            })),
    timeline: timeline.map((e) => ({ atMs: e.at - postAt, what: e.what })),
    cpu: used,
  }
  if (verdict == null) notes.push(`run ${index} (${distribution}): no verdict (${state}: ${reason})`)
  return run
}

function short(id: string): string {
  return id.slice(-6)
}

/** Waits until a rollout (from its POST answer) is no longer in progress. */
async function finish(client: ApiClient, created: RolloutView): Promise<RolloutView> {
  let view = created
  await until(
    `rollout ${created.id} to finish`,
    async () => {
      view = await client.get<RolloutView>(`/api/rollouts/${created.id}`)
      return !['running', 'waiting-approval', 'paused', 'rolling-back'].includes(view.state)
    },
    120_000,
  )
  if (view.state !== 'done') throw new Error(`rollout ${view.id} ended ${view.state}: ${view.reason}`)
  return view
}

// --- the load ----------------------------------------------------------------------------------

/**
 * `rate` GET / per second through `url`, at fixed times whatever the answers take
 * (open loop: a slow backend does not slow the load), over keep-alive connections;
 * every request recorded.
 */
function fixedRateLoad(url: string, rate: number) {
  const target = new URL(url)
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 256 })
  const records: RequestRecord[] = []
  const inflight = new Set<Promise<void>>()
  let skipped = 0
  let running = true
  const one = () => {
    const record: RequestRecord = {
      sentAt: Date.now(),
      doneAt: 0,
      status: 0,
      version: null,
      node: null,
      error: null,
    }
    records.push(record)
    const done = new Promise<void>((resolve) => {
      const end = (error: string | null) => {
        if (record.doneAt !== 0) return
        record.doneAt = Date.now()
        record.error = error
        resolve()
      }
      const req = httpGet(
        { host: target.hostname, port: target.port, path: '/', agent, timeout: REQUEST_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('error', (err: NodeJS.ErrnoException) => end(err.code ?? err.message))
          res.on('end', () => {
            record.status = res.statusCode ?? 0
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
                version?: unknown
                node?: unknown
              }
              record.version = typeof body.version === 'string' ? body.version : null
              record.node = typeof body.node === 'string' ? body.node : null
            } catch {}
            end(null)
          })
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })))
      req.on('error', (err: NodeJS.ErrnoException) => end(err.code ?? err.message))
    })
    inflight.add(done)
    void done.then(() => inflight.delete(done))
  }
  const intervalMs = 1000 / rate
  const began = performance.now()
  let sent = 0
  const loop = (async () => {
    while (running) {
      const due = Math.floor((performance.now() - began) / intervalMs) + 1
      for (; sent < due; sent++) {
        if (inflight.size >= MAX_INFLIGHT) {
          skipped++
          records.push({
            sentAt: Date.now(),
            doneAt: Date.now(),
            status: 0,
            version: null,
            node: null,
            error: 'client-overloaded',
          })
        } else one()
      }
      await sleep(Math.max(1, began + sent * intervalMs - performance.now()))
    }
  })()
  return {
    records,
    skipped: () => skipped,
    stop: async () => {
      running = false
      await loop
      await Promise.all(inflight)
      agent.destroy()
    },
  }
}
