/**
 * Switch benchmark (issue 15): all-at-once rollouts and rollbacks of the demo's
 * cluster (3 agent processes, closed by a secret, `lan` preset, educa behind
 * `shoal lb`) under a steady 100 req/s load through the load balancer.
 *
 * Each round, from educa 1.0 everywhere:
 *   1. a rolling update to 1.1 (max-unavailable 1): every node switches alone, so
 *      its `lastSwitch` (startedAt → settledAt) is one node's switch, the baseline;
 *   2. `rollback` (all at once, the default) to 1.0;
 *   3. an all-at-once rollout to 1.1;
 *   4. `rollback` to 1.0 again.
 * For each change: failed requests through the load balancer, the rollout's
 * duration (record requestedAt → finishedAt) and that duration ÷ the round's median
 * lone switch. Target: 0 failed requests, ratio ≤ 1.5.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type autocannon from 'autocannon'
import type { MemberView } from '../src/api/index.js'
import { writeNewKeyPair } from '../src/artifacts/index.js'
import { writeNewSecret } from '../src/bootstrap/index.js'
import { ApiClient } from '../src/cli/client.js'
import { publish } from '../src/cli/publish.js'
import type { ProxyStatus } from '../src/loadbalancer/index.js'
import type { RolloutView } from '../src/manager/index.js'
import type { RuntimeStatus } from '../src/runtime/index.js'
import { freePort } from '../src/shared/ports.js'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { startLb } from './lb-process.js'
import {
  type Agent,
  getJson,
  reapComponents,
  startCluster,
  steadyLoad,
  tcpAddrs,
  until,
  waitQuiet,
} from './manager.js'
import { terminate } from './processes.js'
import { machine, round, source, TempDirs, table } from './util.js'

const _CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const EDUCA_BUILD = new URL('../../examples/educa/build.mjs', import.meta.url)
const ROUNDS = 3
/** Load before and after each change, so requests in flight around it are counted. */
const MARGIN_MS = 1000
const RATIO_TARGET = 1.5

type Kind = 'rolling' | 'all-at-once' | 'rollback'

interface Change {
  round: number
  kind: Kind
  to: string
  state: string
  /** Rollout record requestedAt → finishedAt (the manager's clock). */
  durationMs: number
  /** Each node's own switch (lastSwitch startedAt → settledAt), ms. */
  nodeSwitchMs: number[]
  /**
   * Each node's switch in steps, ms: install (startedAt → installedAt), spawn
   * (→ spawnedAt: exclusive components stopped, new ones launched), ready (→ readyAt:
   * every new component healthy), retire (→ settledAt: old ones drained and stopped).
   */
  nodePhasesMs: Array<{ install: number; spawn: number; ready: number; retire: number }>
  /** Most nodes without a ready backend in the load balancer (sampled every 100 ms). */
  maxOutOfRotation: number
  /** Samples that saw a node with two instances of web (make before break). */
  samplesWithTwoInstances: number
  load: { sent: number; failed: number; detail: Record<string, number>; p99Ms: number }
}

export async function runSwitch(options: { sizes: number[] }) {
  const n = options.sizes[0] ?? 3
  const started = performance.now()
  const dirs = new TempDirs()
  const notes: string[] = []
  const changes: Change[] = []
  let contention: Contention | null = null
  const agents: Agent[] = []
  let lb: ChildProcess | undefined
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  const hostQuietBefore = await waitQuiet('the switch benchmark', notes)
  try {
    const work = await dirs.make('shoal-bench-switch-')
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
    for (const version of ['1.0', '1.1'] as const)
      await publish(client, { dir: builds[version], name: 'educa', version, keyFile: key, progress: false })
    await until('both versions complete everywhere', async () => {
      const lists = await Promise.all(
        agents.map((a) => getJson<Array<{ complete: boolean }>>(a.info.api, '/api/distributions')),
      )
      return lists.every((l) => l.length === 2 && l.every((d) => d.complete))
    })
    await change(client, { distribution: 'educa@1.0' }, 120_000)

    const started = await startLb({
      port: await freePort(),
      data: await dirs.make('shoal-bench-switch-lb-'),
      bootstrap: tcpAddrs(agents[0]!),
      flags: closed,
    })
    lb = started.child
    const { url: lbUrl, admin: lbAdmin } = started
    const ids = agents.map((a) => a.info.id)
    await until(`${n} backends ready in the load balancer`, async () => {
      const { backends } = await getJson<ProxyStatus>(lbAdmin, '/_shoal/lb')
      return new Set(backends.filter((b) => b.state === 'ready').map((b) => b.node)).size === n
    })

    const measure = async (round: number, kind: Kind, request: Record<string, unknown>, to: string) => {
      let maxOut = 0
      let twoInstances = 0
      let sampling = true
      const sampler = (async () => {
        while (sampling) {
          const next = performance.now() + 100
          const status = await getJson<ProxyStatus>(lbAdmin, '/_shoal/lb', 2000).catch(() => null)
          if (status != null) {
            const ready = new Set(
              status.backends.filter((b) => b.state === 'ready' && !b.ejected).map((b) => b.node),
            )
            maxOut = Math.max(maxOut, ids.filter((id) => !ready.has(id)).length)
            if (status.backends.some((b) => b.key.endsWith('#1'))) twoInstances++
          }
          await sleep(Math.max(0, next - performance.now()))
        }
      })()
      const load = steadyLoad(lbUrl)
      await sleep(MARGIN_MS)
      const view = await change(client, request, 120_000)
      await sleep(MARGIN_MS)
      load.stop()
      const result: autocannon.Result = await load.done
      sampling = false
      await sampler
      const at = (iso: string | null | undefined) => Date.parse(iso ?? '')
      const switches = await Promise.all(
        agents.map(async (a) => {
          const { lastSwitch } = await getJson<RuntimeStatus>(a.info.api, '/api/components')
          if (lastSwitch?.to !== to)
            notes.push(`round ${round} ${kind}: a node's last switch went to ${lastSwitch?.to}`)
          return lastSwitch
        }),
      )
      const nodeSwitchMs = switches.map((t) => at(t?.settledAt) - at(t?.startedAt))
      const nodePhasesMs = switches.map((t) => ({
        install: at(t?.installedAt) - at(t?.startedAt),
        spawn: at(t?.spawnedAt) - at(t?.installedAt),
        ready: at(t?.readyAt) - at(t?.spawnedAt),
        retire: at(t?.settledAt) - at(t?.readyAt),
      }))
      if (view.state !== 'done') notes.push(`round ${round} ${kind} ended ${view.state}: ${view.reason}`)
      changes.push({
        round,
        kind,
        to,
        state: view.state,
        durationMs: at(view.finishedAt) - at(view.startedAt),
        nodeSwitchMs,
        nodePhasesMs,
        maxOutOfRotation: maxOut,
        samplesWithTwoInstances: twoInstances,
        load: {
          sent: result.requests.sent,
          failed: result.errors + result.timeouts + result.non2xx,
          detail: {
            ...(result.errors > 0 ? { errors: result.errors } : {}),
            ...(result.timeouts > 0 ? { timeouts: result.timeouts } : {}),
            ...(result.non2xx > 0 ? { non2xx: result.non2xx } : {}),
          },
          p99Ms: result.latency.p99,
        },
      })
      console.error(`round ${round} ${kind} → ${to}: ${JSON.stringify(changes.at(-1))}`)
    }

    // The physical limit of this host: how much slower the components start when every
    // node starts its own at once, with the cluster idle (no agent is switching).
    contention = await startupContention(n)
    console.error(`component start-up, one node's vs all ${n} nodes' at once: ${JSON.stringify(contention)}`)

    for (let r = 1; r <= ROUNDS; r++) {
      await measure(
        r,
        'rolling',
        { distribution: 'educa@1.1', strategy: 'rolling', maxUnavailable: 1 },
        'educa@1.1',
      )
      await measure(r, 'rollback', { rollback: 'educa' }, 'educa@1.0')
      await measure(r, 'all-at-once', { distribution: 'educa@1.1', strategy: 'all-at-once' }, 'educa@1.1')
      await measure(r, 'rollback', { rollback: 'educa' }, 'educa@1.0')
    }
  } catch (err) {
    notes.push(`benchmark failed: ${String(err)}`)
    console.error(err)
  } finally {
    if (lb != null) await terminate(lb)
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
    await dirs.removeAll()
  }

  const median = (values: number[]) => {
    const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
    return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
  }
  /** One node's switch, switching alone: the median over the nodes of the round's rolling update. */
  const lone = new Map(
    changes.filter((c) => c.kind === 'rolling').map((c) => [c.round, median(c.nodeSwitchMs)] as const),
  )
  const measured = changes.map((c) => ({
    ...c,
    loneSwitchMs: lone.get(c.round) ?? null,
    ratio:
      c.kind === 'rolling' || lone.get(c.round) == null ? null : round(c.durationMs / lone.get(c.round)!, 2),
    /** The duration ÷ the slowest node's own switch in the same change: what switching together adds. */
    ratioToSlowest: round(c.durationMs / Math.max(...c.nodeSwitchMs), 2),
    /** Medians over the nodes of each step of their switch. */
    phasesMedianMs: {
      install: median(c.nodePhasesMs.map((p) => p.install)),
      spawn: median(c.nodePhasesMs.map((p) => p.spawn)),
      ready: median(c.nodePhasesMs.map((p) => p.ready)),
      retire: median(c.nodePhasesMs.map((p) => p.retire)),
    },
  }))
  const fast = measured.filter((c) => c.kind !== 'rolling')
  const worstRatio = Math.max(...fast.map((c) => c.ratio ?? Number.POSITIVE_INFINITY))
  const failed = (kinds: Kind[]) =>
    measured.filter((c) => kinds.includes(c.kind)).reduce((s, c) => s + c.load.failed, 0)
  const sent = (kinds: Kind[]) =>
    measured.filter((c) => kinds.includes(c.kind)).reduce((s, c) => s + c.load.sent, 0)
  const targets = [
    {
      target: '0 failed requests through the load balancer during all-at-once rollouts and rollbacks',
      measured: `${failed(['all-at-once', 'rollback'])} of ${sent(['all-at-once', 'rollback'])}`,
      pass: fast.length === 2 * ROUNDS + ROUNDS && failed(['all-at-once', 'rollback']) === 0,
    },
    {
      target: `all-at-once and rollback duration ≤ ${RATIO_TARGET} × one node's switch (every run)`,
      measured: `worst ${round(worstRatio, 2)}, median ${median(fast.map((c) => c.ratio ?? Number.NaN))}`,
      pass: worstRatio <= RATIO_TARGET,
    },
    {
      target: `all-at-once and rollback duration ≤ ${RATIO_TARGET} × the slowest node's own switch in it`,
      measured: `worst ${Math.max(...fast.map((c) => c.ratioToSlowest))}`,
      pass: Math.max(...fast.map((c) => c.ratioToSlowest)) <= RATIO_TARGET,
    },
    {
      target: '0 failed requests during the rolling updates (the baseline rounds)',
      measured: `${failed(['rolling'])} of ${sent(['rolling'])}`,
      pass: failed(['rolling']) === 0,
    },
  ]
  const report = {
    suite: 'switch',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      nodes: n,
      rounds: ROUNDS,
      preset: 'lan',
      closed: 'secret file (libp2p private network)',
      load: { rate: 100, connections: 10, paths: ['/', '/slow?ms=100'] },
      marginMs: MARGIN_MS,
      loadAverageAtStart,
    },
    hostQuietBefore,
    contention,
    changes: measured,
    targets,
    notes,
  }
  const text = [
    `all-at-once and rollback of ${n} nodes behind shoal lb under 100 req/s (closed cluster, lan preset)`,
    table(
      [
        'round',
        'change',
        'to',
        'state',
        'duration ms',
        'node switches ms',
        'install/spawn/ready/retire',
        'lone switch ms',
        'ratio',
        'to slowest',
        'out max',
        'two inst.',
        'failed/sent',
      ],
      measured.map((c) => [
        c.round,
        c.kind,
        c.to,
        c.state,
        c.durationMs,
        c.nodeSwitchMs.join(' '),
        Object.values(c.phasesMedianMs).join('/'),
        c.loneSwitchMs,
        c.ratio,
        c.ratioToSlowest,
        c.maxOutOfRotation,
        c.samplesWithTwoInstances,
        `${c.load.failed}/${c.load.sent}`,
      ]),
    ),
    '',
    contention == null
      ? 'component start-up contention: not measured'
      : `component start-up (spawn → healthy, median of ${contention.runs}): one node's ${contention.perNode} processes ${contention.oneNodeMs} ms, all ${n} nodes' ${contention.perNode * n} at once ${contention.allNodesMs} ms: ×${contention.factor} on this host`,
    '',
    table(
      ['target', 'measured', ''],
      targets.map((t) => [t.target, t.measured, t.pass ? 'pass' : 'FAIL']),
    ),
    ...notes,
  ].join('\n')
  return { report, text }
}

/** Starts a rollout (`distribution`) or a rollback (`rollback: NAME`) and waits until it ends. */
async function change(
  client: ApiClient,
  request: Record<string, unknown>,
  capMs: number,
): Promise<RolloutView> {
  const { rollback, ...rest } = request
  const created =
    rollback == null
      ? await client.post<RolloutView>('/api/rollouts', { json: rest })
      : await client.post<RolloutView>('/api/rollbacks', { json: { name: rollback, ...rest } })
  let view: RolloutView = created
  await until(
    `rollout ${created.id} to finish`,
    async () => {
      view = await client.get<RolloutView>(`/api/rollouts/${created.id}`)
      return !['running', 'waiting-approval', 'paused', 'rolling-back'].includes(view.state)
    },
    capMs,
  )
  return view
}

interface Contention {
  perNode: number
  runs: number
  oneNodeMs: number
  allNodesMs: number
  factor: number
}

const EDUCA_SERVERS = ['web', 'catalog'].map((name) =>
  fileURLToPath(new URL(`../../examples/educa/components/${name}/server.mjs`, import.meta.url)),
)

/**
 * Spawns the educa components (web and catalog) of one node, then of `nodes` nodes at
 * once, with the agents' Node.js flags, and times spawn → every /healthz answering 200
 * (polled every 50 ms, as the supervisor does while a component starts).
 */
async function startupContention(nodes: number, runs = 5): Promise<Contention> {
  const once = async (count: number) => {
    const started = performance.now()
    const children: ChildProcess[] = []
    try {
      const ports = await Promise.all(Array.from({ length: count }, () => freePort()))
      for (const [i, port] of ports.entries())
        children.push(
          spawn(process.execPath, [...AGENT_NODE_FLAGS, EDUCA_SERVERS[i % EDUCA_SERVERS.length]!], {
            env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1' },
            stdio: 'ignore',
          }),
        )
      await Promise.all(
        ports.map(async (port) => {
          for (;;) {
            const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) })
              .then((res) => res.ok)
              .catch(() => false)
            if (ok) return
            await sleep(50)
          }
        }),
      )
      return performance.now() - started
    } finally {
      await Promise.all(children.map((child) => terminate(child)))
    }
  }
  const perNode = EDUCA_SERVERS.length
  const one: number[] = []
  const all: number[] = []
  for (let i = 0; i < runs; i++) {
    one.push(await once(perNode))
    all.push(await once(perNode * nodes))
  }
  const middle = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const oneNodeMs = Math.round(middle(one))
  const allNodesMs = Math.round(middle(all))
  return { perNode, runs, oneNodeMs, allNodesMs, factor: round(allNodesMs / oneNodeMs, 2) }
}
