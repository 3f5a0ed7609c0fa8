/**
 * Nodes benchmark (issue 7): how long `shoal node copy` takes, from the request to
 * the new node answering through `shoal lb`, on a cluster of 5 agent processes
 * (preset `lan`, the default) running educa 1.0 plus ~100 MB of random resource
 * files. Split into process start, join, fetch, install and ready; 3 runs, the copy
 * removed with `shoal node remove` between them. Baseline in the same run, right
 * before each copy: a plain HTTP download of the same bytes over loopback
 * (node:http static server in its own process, fetch() into files), so the fetch
 * can be given as a ratio. The local provider launches nodes next to the
 * launcher's data folder, so every agent's folder is inside one temporary WORK.
 * SHOAL_BENCH_KEEP=1 keeps WORK (logs included).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Agent as HttpAgent, request } from 'undici'
import type { MemberView, StatusView } from '../src/api/index.js'
import { type DistributionView, writeNewKeyPair } from '../src/artifacts/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ProxyStatus } from '../src/loadbalancer/index.js'
import type { RolloutView } from '../src/manager/index.js'
import type { Operation } from '../src/providers/index.js'
import type { RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { firstLine, startLb } from './lb-process.js'
import { type Started, startProcess, terminate } from './processes.js'
import { clockTicks, hostCpu, machine, round, source, TempDirs, table } from './util.js'

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const PRESET = 'lan'
const CLUSTER_SIZE = 5
const RUNS = 3
/** The resource files added to educa 1.0: 4 × 25 MiB of random bytes (incompressible, no dedup). */
const RESOURCE_FILES = 4
const RESOURCE_BYTES = 25 * 1024 * 1024
const DISTRIBUTION = 'educa@1.0'
const POLL_MS = 50
/** Requests per second the prober sends through the load balancer during a copy. */
const PROBE_RATE = 50

type Agent = Started & { name: string; dataDir: string }

/** A node:http static server for the baseline: serves files of one folder, in its own process. */
const STATIC_SERVER = `
  const http = require('node:http')
  const fs = require('node:fs')
  const path = require('node:path')
  const [root, port] = process.argv.slice(1)
  http.createServer((req, res) => {
    const file = path.join(root, path.basename(req.url))
    fs.stat(file, (err, st) => {
      if (err) { res.writeHead(404); return res.end() }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size })
      fs.createReadStream(file).pipe(res)
    })
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'))
`

interface CpuUse {
  busyCores: number
  benchCores: number
  otherCores: number
}

interface CopyRun {
  run: number
  node: string
  /** Bench clock, ms since the copy request was sent (POST /api/nodes/ID/copy). */
  at: {
    /** The operation's "starting an agent process" step: the provider is about to spawn it. */
    spawning: number | null
    /** The operation's "started as <id>; joining" step (the launcher's clock: the same host). */
    processStarted: number | null
    /** The new node's own log: "agent started" (written right after its agent.json, which the provider polls for). */
    agentStarted: number | null
    /** First poll of the launcher's member list that showed the new node alive. */
    alive: number | null
    /** The new node's log: "distribution learned from peers" (it has the manifest). */
    manifest: number | null
    /** The new node's log: "distribution complete" (polled figure in `polled`). */
    complete: number | null
    /** The new node's lastSwitch (its own clock, the same host). */
    switchStarted: number | null
    installed: number | null
    spawned: number | null
    settled: number | null
    /** First poll of the load balancer's status that listed its web backend ready. */
    inRotation: number | null
    /** First answer through the load balancer that came from the new node (prober, 50 req/s). */
    firstAnswer: number | null
    /** The operation's "ready" step (what `shoal node copy --wait` waits for). */
    operationReady: number | null
  }
  polled: { complete: number | null; componentsReady: number | null }
  /** Consecutive phases, ms: they add up to `totalMs` but for `otherMs`. */
  phases: {
    processStartMs: number | null
    joinMs: number | null
    fetchMs: number | null
    installMs: number | null
    readyMs: number | null
    lbMs: number | null
    otherMs: number | null
  }
  totalMs: number | null
  /** fetch, split: alive → manifest known (learning the version), manifest → complete (the transfer). */
  fetchSplit: { learnMs: number | null; transferMs: number | null }
  transferMBps: number | null
  /** Bytes of educa@1.0 the new node fetched from each peer (by agent name). */
  sources: Record<string, number>
  bytesFetched: number
  peers: number
  probe: { sent: number; failed: number; failures: Record<string, number> }
  /** `shoal node remove ID --wait` through another agent, afterwards; then ms until the LB no longer lists it. */
  remove: { ms: number; state: string; lbDroppedMs: number | null; processExited: boolean }
  /** Host CPU from the copy request to the first answer, in cores: this bench's process tree (agents, new node, components, LB) and the rest. */
  cpu: CpuUse | null
  loadAverageAtStart: number
  /** The cluster's manager (launcher's view) before the copy and once it served; whether the new node's log shows it named itself manager. */
  manager: { before: string; after: string; newNodeClaimed: boolean }
}

export async function runNodes() {
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const runs: Array<CopyRun & { baselineMs: number }> = []
  const agents: Agent[] = []
  const children: ChildProcess[] = []
  const setup: Record<string, number> = {}
  let baselineWarmUpMs: number | null = null
  let baselineBytes = 0
  let work = ''
  let distributionBytes = 0
  const loadAverageAtSuiteStart = round(loadavg()[0] ?? 0, 2)
  try {
    work = await dirs.make('shoal-bench-nodes-')
    launchedMark = join(work, 'nodes')
    // Agents in WORK/agent-N: the local provider puts the nodes they launch in WORK/nodes.
    const key = join(work, 'publisher.key')
    await writeNewKeyPair(key)
    const extra = ['--preset', PRESET, '--trust', `${key}.pub`]
    const startAgent = async (name: string, boot: string[]) => {
      const dataDir = join(work, name)
      await mkdir(dataDir, { recursive: true })
      const agent = { ...(await startProcess(dataDir, boot, extra)), name, dataDir }
      agents.push(agent)
      return agent
    }
    let t = performance.now()
    const first = await startAgent('agent-1', [])
    const boot = tcpAddrs(first)
    await Promise.all(Array.from({ length: CLUSTER_SIZE - 1 }, (_, i) => startAgent(`agent-${i + 2}`, boot)))
    agents.sort((a, b) => a.name.localeCompare(b.name))
    await until(`${CLUSTER_SIZE} agents alive everywhere`, async () => {
      const views = await Promise.all(agents.map((a) => getJson<MemberView[]>(a.info.api, '/api/members')))
      return views.every((v) => v.filter((m) => m.state === 'alive').length === CLUSTER_SIZE)
    })
    setup.clusterMs = Math.round(performance.now() - t)

    // educa 1.0 plus the random resource files.
    const { buildEduca } = (await import(EDUCA_BUILD.href)) as typeof import('../examples/educa/build.mjs')
    const builds = await buildEduca(join(work, 'build'))
    const educa = builds['1.0']
    const resources = join(educa, 'static')
    await mkdir(resources, { recursive: true })
    for (let i = 0; i < RESOURCE_FILES; i++)
      await writeFile(join(resources, `random-${i}.bin`), randomBytes(RESOURCE_BYTES))
    const client = new ApiClient(first.info.api)
    t = performance.now()
    await publish(client, { dir: educa, name: 'educa', version: '1.0', keyFile: key, progress: false })
    setup.publishMs = Math.round(performance.now() - t)
    const view = (await getJson<DistributionView[]>(first.info.api, '/api/distributions')).find(
      (d) => d.id === DISTRIBUTION,
    )
    distributionBytes = view?.bytes ?? 0
    t = performance.now()
    const rollout = await client.post<RolloutView>('/api/rollouts', { json: { distribution: DISTRIBUTION } })
    await until(
      `${DISTRIBUTION} on ${CLUSTER_SIZE} nodes`,
      async () => (await client.get<RolloutView>(`/api/rollouts/${rollout.id}`)).state === 'done',
      180_000,
    )
    setup.rolloutMs = Math.round(performance.now() - t)

    // The load balancer (built-in proxy) in front of `web`.
    const {
      child: lb,
      url: lbUrl,
      admin: lbAdmin,
    } = await startLb({
      port: await freePort(),
      data: join(work, 'lb'),
      bootstrap: boot,
      flags: ['--preset', PRESET],
    })
    children.push(lb)
    await until(
      `${CLUSTER_SIZE} nodes in the load balancer's rotation`,
      async () => (await inRotation(lbAdmin)).size === CLUSTER_SIZE,
    )

    // Baseline: the same bytes over plain HTTP on loopback, from another process; one
    // warm-up download, then one right before each copy (the same conditions as that copy).
    const plain = await startBaseline(resources, join(work, 'baseline'), children)
    baselineWarmUpMs = await plain.once()
    baselineBytes = plain.bytes

    for (let i = 1; i <= RUNS; i++) {
      await sleep(2000)
      try {
        const baselineMs = await plain.once()
        await sleep(1000)
        runs.push({ ...(await copyOnce(i, agents, lbUrl, lbAdmin, notes)), baselineMs })
      } catch (err) {
        notes.push(`run ${i} failed: ${String(err)}`)
        console.error(err)
        break
      }
    }
  } catch (err) {
    notes.push(`benchmark failed: ${String(err)}`)
    console.error(err)
  } finally {
    for (const child of children) await terminate(child)
    if (work !== '') await stopLaunched(join(work, 'nodes'))
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(work)
    // SHOAL_BENCH_KEEP=1 keeps the agents' folders and logs (WORK/agent-N, WORK/nodes/*/agent.log).
    if (process.env.SHOAL_BENCH_KEEP) notes.push(`kept ${work}`)
    else await dirs.removeAll()
  }

  const median = (values: Array<number | null>) => {
    const got = values.filter((v): v is number => v != null).sort((a, b) => a - b)
    return got.length === 0 ? null : got[Math.floor((got.length - 1) / 2)]!
  }
  const phaseKeys = [
    'processStartMs',
    'joinMs',
    'fetchMs',
    'installMs',
    'readyMs',
    'lbMs',
    'otherMs',
  ] as const
  const medians = {
    ...Object.fromEntries(phaseKeys.map((k) => [k, median(runs.map((r) => r.phases[k]))])),
    totalMs: median(runs.map((r) => r.totalMs)),
    transferMs: median(runs.map((r) => r.fetchSplit.transferMs)),
    learnMs: median(runs.map((r) => r.fetchSplit.learnMs)),
    removeMs: median(runs.map((r) => r.remove.ms)),
    baselineMs: median(runs.map((r) => r.baselineMs)),
  } as Record<
    (typeof phaseKeys)[number] | 'totalMs' | 'transferMs' | 'learnMs' | 'removeMs' | 'baselineMs',
    number | null
  >
  const ratio = (v: number | null, base: number | null) => (v == null || !base ? null : round(v / base, 2))
  const baseline = {
    what: 'GET of the same resource files from a node:http static server (own process) on 127.0.0.1, one after another on one keep-alive connection, each streamed into a file',
    bytes: baselineBytes,
    warmUpMs: baselineWarmUpMs,
    runsMs: runs.map((r) => r.baselineMs),
    medianMs: medians.baselineMs,
    MBps: medians.baselineMs ? round(baselineBytes / 1e6 / (medians.baselineMs / 1000), 1) : null,
  }
  const report = {
    suite: 'nodes',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    // The load average when the suite began: at the end it mostly shows this bench's own agents.
    machine: { ...machine(), loadAverageAtStart: loadAverageAtSuiteStart },
    source: source(),
    settings: {
      preset: PRESET,
      clusterSize: CLUSTER_SIZE,
      runs: RUNS,
      distribution: DISTRIBUTION,
      distributionBytes,
      resourceFiles: `${RESOURCE_FILES} × ${RESOURCE_BYTES} B random`,
      pollMs: POLL_MS,
      probeRate: PROBE_RATE,
      launchedNodeFlags: 'none (the local provider runs process.execPath CLI agent …)',
      loadAverageAtSuiteStart,
    },
    setup,
    baseline,
    runs,
    medians,
    ratios: {
      /** Median fetch phase (alive on the launcher → complete) ÷ median plain download. */
      fetchOverBaseline: ratio(medians.fetchMs, medians.baselineMs),
      /** Median transfer (manifest known → complete: the whole download) ÷ median plain download. */
      transferOverBaseline: ratio(medians.transferMs, medians.baselineMs),
      /** Each run's transfer ÷ the plain download just before it. */
      transferOverBaselinePerRun: runs.map((r) => ratio(r.fetchSplit.transferMs, r.baselineMs)),
    },
    notes,
  }

  const v = (x: number | null) => x
  const text = [
    `shoal node copy on ${CLUSTER_SIZE} agents (preset ${PRESET}) behind shoal lb; ${DISTRIBUTION} = ${round(distributionBytes / 2 ** 20)} MiB`,
    `setup: cluster ${setup.clusterMs} ms, publish ${setup.publishMs} ms, first rollout (4 nodes fetch) ${setup.rolloutMs} ms`,
    table(
      [
        'run',
        'process start',
        'join',
        'fetch',
        'install',
        'ready',
        'LB',
        'other',
        'total',
        'transfer',
        'MB/s',
        'peers',
        'remove',
      ],
      [
        ...runs.map((r) => [
          String(r.run),
          v(r.phases.processStartMs),
          v(r.phases.joinMs),
          v(r.phases.fetchMs),
          v(r.phases.installMs),
          v(r.phases.readyMs),
          v(r.phases.lbMs),
          v(r.phases.otherMs),
          v(r.totalMs),
          v(r.fetchSplit.transferMs),
          v(r.transferMBps),
          r.peers,
          r.remove.ms,
        ]),
        [
          'median',
          medians.processStartMs,
          medians.joinMs,
          medians.fetchMs,
          medians.installMs,
          medians.readyMs,
          medians.lbMs,
          medians.otherMs,
          medians.totalMs,
          medians.transferMs,
          null,
          null,
          medians.removeMs,
        ],
      ],
    ),
    `baseline plain HTTP download of the same ${round(baseline.bytes / 2 ** 20)} MiB before each run: ${baseline.runsMs.join(' · ')} ms (warm-up ${baseline.warmUpMs}; median ${baseline.medianMs}, ${baseline.MBps} MB/s); fetch ÷ baseline ${report.ratios.fetchOverBaseline}, transfer ÷ baseline ${report.ratios.transferOverBaseline} (per run ${report.ratios.transferOverBaselinePerRun.join(' · ')})`,
    'timeline, ms since the copy request: spawn · agent started (its log) · "started as" · manifest known · alive on launcher · complete · installed · settled · in LB rotation · first LB answer',
    ...runs.map((r) =>
      [
        `run ${r.run}:`,
        [
          r.at.spawning,
          r.at.agentStarted,
          r.at.processStarted,
          r.at.manifest,
          r.at.alive,
          r.at.complete,
          r.at.installed,
          r.at.settled,
          r.at.inRotation,
          r.at.firstAnswer,
        ].join(' · '),
      ].join(' '),
    ),
    ...runs.map(
      (r) =>
        `run ${r.run}: manager ${r.manager.before} → ${r.manager.after}; sources ${JSON.stringify(Object.fromEntries(Object.entries(r.sources).map(([k, b]) => [k, round(b / 2 ** 20)])))} MiB; probe ${r.probe.sent} sent, ${r.probe.failed} failed; cpu ${JSON.stringify(r.cpu)}; load ${r.loadAverageAtStart}`,
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

// --- one copy ---------------------------------------------------------------------------

async function copyOnce(
  run: number,
  agents: Agent[],
  lbUrl: string,
  lbAdmin: string,
  notes: string[],
): Promise<CopyRun> {
  const launcher = agents[0]!
  const model = agents[1]!
  const remover = agents[2]!
  const names = new Map(agents.map((a) => [a.info.id, a.name]))
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  const managerBefore = await getJson<{ manager: string | null; term: number }>(
    launcher.info.api,
    '/api/manager',
  )
  const cpu = await cpuWindow()
  const probe = startProbe(lbUrl)
  await sleep(500)
  const t0 = performance.now()
  const wall0 = Date.now()
  const op0 = await postJson<Operation>(launcher.info.api, `/api/nodes/${model.info.id}/copy`)
  let op: Operation = op0
  let id: string | null = null
  let handle: string | null = null
  let api: string | null = null
  const at: CopyRun['at'] = {
    spawning: null,
    processStarted: null,
    agentStarted: null,
    alive: null,
    manifest: null,
    complete: null,
    switchStarted: null,
    installed: null,
    spawned: null,
    settled: null,
    inRotation: null,
    firstAnswer: null,
    operationReady: null,
  }
  const polled: CopyRun['polled'] = { complete: null, componentsReady: null }
  const since = (iso: string | null | undefined) => (iso == null ? null : Date.parse(iso) - wall0)
  const stepAt = (pattern: RegExp) => since(op.steps.find((s) => pattern.test(s.text))?.at)
  const deadline = t0 + 180_000
  for (;;) {
    const polls: [
      Operation | null,
      MemberView[] | null,
      DistributionView[] | null,
      RuntimeStatus | null,
      Set<string> | null,
    ] = await Promise.all([
      getJson<Operation>(launcher.info.api, `/api/operations/${op0.id}`).catch(() => null),
      id == null ? null : getJson<MemberView[]>(launcher.info.api, '/api/members').catch(() => null),
      api == null ? null : getJson<DistributionView[]>(api, '/api/distributions').catch(() => null),
      api == null ? null : getJson<RuntimeStatus>(api, '/api/components').catch(() => null),
      id == null ? null : inRotation(lbAdmin).catch(() => null),
    ])
    const [opNow, members, dists, comps, inLb] = polls
    const now = Math.round(performance.now() - t0)
    if (opNow != null) op = opNow
    const node = op.nodes[0]
    if (id == null && node?.id != null) {
      id = node.id
      handle = node.handle
    }
    if (api == null && handle != null) api = (await readRunFile(handle))?.api ?? null
    if (at.alive == null && members?.some((m) => m.id === id && m.state === 'alive')) at.alive = now
    const dist = dists?.find((d) => d.id === DISTRIBUTION)
    if (polled.complete == null && dist?.complete === true) polled.complete = now
    if (
      polled.componentsReady == null &&
      comps?.active === DISTRIBUTION &&
      comps.components.length > 0 &&
      comps.components.every((c) => c.state === 'ready')
    )
      polled.componentsReady = now
    if (at.inRotation == null && id != null && inLb?.has(id)) at.inRotation = now
    const answered = id == null ? null : probe.firstFrom(id)
    const opDone = op.state !== 'running'
    if ((answered != null && opDone && polled.componentsReady != null) || performance.now() > deadline) break
    if (op.state === 'failed') break
    await sleep(POLL_MS)
  }
  const probeResult = await probe.stop()
  const answeredAt = id == null ? null : probeResult.firstFrom(id)
  at.firstAnswer = answeredAt == null ? null : Math.round(answeredAt - t0)
  at.spawning = stepAt(/: starting an agent process/)
  at.processStarted = stepAt(/: started as /)
  at.operationReady = stepAt(/: ready$/)
  if (op.state !== 'done') notes.push(`run ${run}: the copy operation ended ${op.state}: ${op.error}`)
  if (id == null || api == null || handle == null) throw new Error(`run ${run}: no node launched`)

  // Precise times from the new node itself: its log and its last switch.
  const log = await readFile(join(handle, 'agent.log'), 'utf8').catch(() => '')
  const lines = log.split('\n')
  const logAt = (pattern: RegExp, field: string) => {
    const line = lines.find((l) => pattern.test(l) && l.includes(field))
    return line == null ? null : since(line.split(' ')[0])
  }
  at.agentStarted = logAt(/ \[shoal\] agent started /, `id=${id}`)
  at.manifest = logAt(/distribution learned from peers/, `id=${DISTRIBUTION}`)
  at.complete = logAt(/distribution complete/, `id=${DISTRIBUTION}`) ?? polled.complete
  // A new node that, before it synced, elected itself manager of a cluster of one.
  const selfClaims = lines.filter(
    (l) => / \[shoal:manager\] manager /.test(l) && l.includes(`manager=${id} `),
  )
  if (selfClaims.length > 0)
    notes.push(
      `run ${run}: the new node ${id.slice(-8)} named itself manager: ${selfClaims.map((l) => l.trim()).join(' | ')}`,
    )
  const managerAfter = await getJson<{ manager: string | null; term: number }>(
    launcher.info.api,
    '/api/manager',
  )
  const comps = await getJson<RuntimeStatus>(api, '/api/components')
  const sw = comps.lastSwitch
  if (sw?.to !== DISTRIBUTION) notes.push(`run ${run}: last switch ${JSON.stringify(sw)}`)
  at.switchStarted = since(sw?.startedAt)
  at.installed = since(sw?.installedAt)
  at.spawned = since(sw?.spawnedAt)
  at.settled = since(sw?.settledAt)
  const status = await getJson<StatusView>(api, '/api/status')
  const transfer = status.transfer as {
    bytesFetched: number
    sources: Record<string, Record<string, number>>
  }
  const bySource = transfer.sources[DISTRIBUTION] ?? {}
  const sources = Object.fromEntries(
    Object.entries(bySource)
      .sort(([a], [b]) => (names.get(a) ?? a).localeCompare(names.get(b) ?? b))
      .map(([peer, bytes]) => [names.get(peer) ?? peer, bytes]),
  )

  const diff = (a: number | null, b: number | null) => (a == null || b == null ? null : Math.round(a - b))
  const phases = {
    processStartMs: at.processStarted,
    joinMs: diff(at.alive, at.processStarted),
    fetchMs: diff(at.complete, at.alive),
    installMs: diff(at.installed, at.switchStarted),
    readyMs: diff(at.settled, at.installed),
    lbMs: diff(at.firstAnswer, at.settled),
    otherMs: null as number | null,
  }
  const totalMs = at.firstAnswer
  const parts = [
    phases.processStartMs,
    phases.joinMs,
    phases.fetchMs,
    phases.installMs,
    phases.readyMs,
    phases.lbMs,
  ]
  if (totalMs != null && parts.every((p) => p != null))
    phases.otherMs = totalMs - parts.reduce((s: number, p) => s + p!, 0)
  const transferMs = diff(at.complete, at.manifest)
  const bytes = Object.values(bySource).reduce((s, b) => s + b, 0)
  const cpuUse = await cpu()

  // Remove it through another agent than the launcher, as an operator would: the CLI.
  const pid = (await readRunFile(handle))?.pid ?? null
  const r0 = performance.now()
  const out = await promisify(execFile)(
    process.execPath,
    [CLI, 'node', 'remove', id, '--wait', '--json', '--api', remover.info.api],
    { timeout: 120_000 },
  ).catch((err: { stdout?: string; message: string }) => ({ stdout: err.stdout ?? '', error: err.message }))
  const removeMs = Math.round(performance.now() - r0)
  let removeState = 'unknown'
  try {
    removeState = (JSON.parse(out.stdout) as Operation).state
  } catch {
    notes.push(`run ${run}: shoal node remove printed ${JSON.stringify(out.stdout.slice(0, 300))}`)
  }
  if ('error' in out) notes.push(`run ${run}: shoal node remove failed: ${out.error}`)
  const lbDroppedMs = await untilMs(async () => !(await inRotation(lbAdmin, true)).has(id!), 30_000)
  const processExited = pid == null ? true : !isAlive(pid)

  return {
    run,
    node: id,
    at,
    polled,
    phases,
    totalMs,
    fetchSplit: { learnMs: diff(at.manifest, at.alive), transferMs },
    transferMBps: transferMs == null || transferMs === 0 ? null : round(bytes / 1e6 / (transferMs / 1000), 1),
    sources,
    bytesFetched: bytes,
    peers: Object.keys(bySource).length,
    probe: { sent: probeResult.sent, failed: probeResult.failed, failures: probeResult.failures },
    remove: {
      ms: removeMs,
      state: removeState,
      lbDroppedMs,
      processExited,
    },
    cpu: cpuUse,
    loadAverageAtStart,
    manager: {
      before: `${names.get(managerBefore.manager ?? '') ?? managerBefore.manager} term ${managerBefore.term}`,
      after: `${names.get(managerAfter.manager ?? '') ?? managerAfter.manager} term ${managerAfter.term}`,
      newNodeClaimed: selfClaims.length > 0,
    },
  }
}

/**
 * Open-loop GET / through the load balancer at PROBE_RATE, recording which node
 * answered (educa's JSON `node`) and when (bench clock, stamped on receipt).
 */
function startProbe(lbUrl: string) {
  const dispatcher = new HttpAgent({ connections: 16, keepAliveTimeout: 10_000 })
  const first = new Map<string, number>()
  const failures: Record<string, number> = {}
  let sent = 0
  let failed = 0
  let stopped = false
  const inflight = new Set<Promise<void>>()
  const loop = (async () => {
    const began = performance.now()
    for (let i = 0; !stopped; i++) {
      const due = began + (i * 1000) / PROBE_RATE
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      sent++
      const one = request(`${lbUrl}/`, { dispatcher, headersTimeout: 10_000, bodyTimeout: 10_000 })
        .then(async (res) => {
          const text = await res.body.text()
          const now = performance.now()
          if (res.statusCode < 200 || res.statusCode >= 300) {
            failed++
            failures[`HTTP ${res.statusCode}`] = (failures[`HTTP ${res.statusCode}`] ?? 0) + 1
            return
          }
          const node = (JSON.parse(text) as { node?: string }).node ?? '?'
          if (!first.has(node)) first.set(node, now)
        })
        .catch((err: { code?: string; message?: string }) => {
          failed++
          const why = err.code ?? err.message ?? 'error'
          failures[why] = (failures[why] ?? 0) + 1
        })
        .finally(() => inflight.delete(one))
      inflight.add(one)
    }
  })()
  const firstFrom = (node: string) => first.get(node) ?? null
  return {
    firstFrom,
    stop: async () => {
      stopped = true
      await loop
      await Promise.all(inflight)
      await dispatcher.close()
      return { sent, failed, failures, firstFrom }
    },
  }
}

// --- baseline ---------------------------------------------------------------------------

/**
 * The baseline server (its own process) and a download of every resource file, one
 * after another on one keep-alive connection, each streamed into a file.
 */
async function startBaseline(folder: string, into: string, children: ChildProcess[]) {
  const port = await freePort()
  const server = spawn(process.execPath, ['-e', STATIC_SERVER, folder, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(server)
  await firstLine(server)
  const files = (await readdir(folder)).filter((f) => f.endsWith('.bin')).sort()
  let bytes = 0
  for (const f of files) bytes += (await stat(join(folder, f))).size
  return {
    bytes,
    /** One download of all the files: ms. */
    async once(): Promise<number> {
      await rm(into, { recursive: true, force: true })
      await mkdir(into, { recursive: true })
      const t = performance.now()
      for (const f of files) {
        const res = await fetch(`http://127.0.0.1:${port}/${f}`)
        if (!res.ok || res.body == null) throw new Error(`baseline: HTTP ${res.status} for ${f}`)
        await pipeline(
          Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
          createWriteStream(join(into, f)),
        )
      }
      const ms = Math.round(performance.now() - t)
      await rm(into, { recursive: true, force: true })
      return ms
    },
    async stop(): Promise<void> {
      await terminate(server)
      children.splice(children.indexOf(server), 1)
    },
  }
}

// --- helpers ----------------------------------------------------------------------------

/** Starts a CPU window: the returned function gives the host's use since, split into this bench's process tree and the rest. */
async function cpuWindow(): Promise<() => Promise<CpuUse | null>> {
  const host = hostCpu()
  const tree = await descendantTicks()
  const from = performance.now()
  return async () => {
    const used = host()
    const treeCores = ((await descendantTicks()) - tree) / clockTicks() / ((performance.now() - from) / 1000)
    if (used == null) return null
    const own = used.busyCores - used.foreignCores
    return {
      busyCores: used.busyCores,
      benchCores: round(own + treeCores, 2),
      otherCores: round(Math.max(0, used.foreignCores - treeCores), 2),
    }
  }
}

/**
 * CPU ticks of this process's descendants and of the local nodes it had launched
 * (detached: their own session, so found by their data folder in the command line),
 * counting reaped children too.
 */
async function descendantTicks(): Promise<number> {
  const procs: Array<{ pid: number; ppid: number; ticks: number; reaped: number; launched: boolean }> = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
    if (stat == null) continue
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const reaped = Number(f[13]) + Number(f[14])
    const cmdline = launchedMark == null ? '' : await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    procs.push({
      pid,
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]) + reaped,
      reaped,
      launched: launchedMark != null && cmdline.includes(launchedMark),
    })
  }
  const tree = new Set([process.pid, ...procs.filter((p) => p.launched).map((p) => p.pid)])
  for (let grew = true; grew; ) {
    grew = false
    for (const p of procs)
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.add(p.pid)
        grew = true
      }
  }
  return procs.reduce((sum, p) => sum + (p.pid === process.pid ? p.reaped : tree.has(p.pid) ? p.ticks : 0), 0)
}

/** Part of the command line of nodes the local provider launched for this run (their data root). */
let launchedMark: string | null = null

/** Nodes whose `web` backend the load balancer lists ready (`any`: listed at all). */
async function inRotation(lbAdmin: string, any = false): Promise<Set<string>> {
  const status = await getJson<ProxyStatus>(lbAdmin, '/_shoal/lb', 2000)
  return new Set(status.backends.filter((b) => any || (b.state === 'ready' && !b.ejected)).map((b) => b.node))
}

interface RunFile {
  pid: number
  id: string
  api: string
}

async function readRunFile(handle: string): Promise<RunFile | null> {
  return JSON.parse(await readFile(join(handle, 'agent.json'), 'utf8').catch(() => 'null')) as RunFile | null
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Stops whatever the local provider launched under `root` and is still running. */
async function stopLaunched(root: string): Promise<void> {
  const pids: number[] = []
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const run = await readRunFile(join(root, name))
    if (run != null && isAlive(run.pid)) {
      process.kill(run.pid, 'SIGTERM')
      pids.push(run.pid)
    }
  }
  const deadline = Date.now() + 10_000
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50)
  for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL')
}

/** SIGKILLs component processes left behind by any agent whose data folder is under `work`. */
async function reapComponents(work: string): Promise<void> {
  if (work === '') return
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (environ.split('\0').some((v) => v.startsWith(`SHOAL_RUNTIME_DATA=${work}/`))) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  }
}

function tcpAddrs(agent: Started): string[] {
  return agent.info.addrs.filter((a) => a.includes('/tcp/'))
}

async function getJson<T>(base: string, path: string, timeoutMs = 3000): Promise<T> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`GET ${base}${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

async function postJson<T>(base: string, path: string, body: unknown = {}): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  if (!res.ok) throw new Error(`POST ${base}${path}: HTTP ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

/** Polls `check` every 100 ms until it holds; throws after `capMs`. */
async function until(what: string, check: () => Promise<boolean>, capMs = 60_000): Promise<void> {
  if ((await untilMs(check, capMs)) == null) throw new Error(`benchmark: timed out waiting for ${what}`)
}

/** Polls `check` every 50 ms; ms until it held, or null after `capMs`. */
async function untilMs(check: () => Promise<boolean>, capMs: number): Promise<number | null> {
  const t = performance.now()
  while (!(await check().catch(() => false))) {
    if (performance.now() - t > capMs) return null
    await sleep(50)
  }
  return Math.round(performance.now() - t)
}
