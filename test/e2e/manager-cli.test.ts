import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { MemberView, StatusView } from '../../src/api/index.js'
import type { ProxyStatus } from '../../src/loadbalancer/index.js'
import type { ManagerStatus, RolloutView } from '../../src/manager/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { freePort } from '../../src/shared/ports.js'
import { steadyLoad } from '../helpers/load.js'
import { type AgentProcess, CLI, componentPids, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const CLUSTER = 'e2e-mgr'
const NAMES = ['a', 'b', 'c', 'd', 'e'] as const
type ManagerView = ManagerStatus & { stateTerm: number; stateSeq: number }

/** `shoal ARGS` with a longer timeout than runCli's 30 s (a rolling rollout with --wait). */
function runCliLong(
  args: string[],
  timeout = 80_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { timeout }, (err, stdout, stderr) => {
      done({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** Calls `sample` every `everyMs` until the returned stop function is called (which resolves once the loop ends). */
function every(everyMs: number, sample: () => Promise<void>): () => Promise<void> {
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      const next = Date.now() + everyMs
      await sample().catch(() => {})
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
    }
  })()
  return async () => {
    stopped = true
    await loop
  }
}

describe('the cluster manager drives rollouts on 5 agent processes behind shoal lb', () => {
  let dir: string
  let seedPort: number
  let lbUrl: string
  /** Its admin listener (status, metrics). */
  let lbAdmin: string
  let stopLb: (() => Promise<void>) | undefined
  const agents = new Map<string, AgentProcess>()
  /** Peer id → agent name. */
  const names = new Map<string, string>()

  const cli = async (...args: string[]) => {
    const result = await runCli(args)
    if (result.code !== 0)
      throw new Error(`shoal ${args.join(' ')} failed (${result.code}): ${result.stderr}`)
    return result.stdout
  }
  const api = (name: string) => agents.get(name)!.info.api
  const get = async <T>(base: string, path: string): Promise<T> => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(3000) })
    if (!res.ok) throw new Error(`GET ${base}${path}: HTTP ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }
  const lbStatus = () => get<ProxyStatus>(lbAdmin, '/_shoal/lb')
  const agentMembers = async (base: string) =>
    (await get<MemberView[]>(base, '/api/members')).filter((m) => !m.roles.includes('lb'))
  /** Agent ids whose web component the load balancer routes new requests to. */
  const inRotation = async () =>
    new Set((await lbStatus()).backends.filter((b) => b.state === 'ready' && !b.ejected).map((b) => b.node))
  /** The agent log file of peer `id` (spawnAgent numbers them; the first line names the id). */
  const logOf = async (id: string) => {
    for (const file of await readdir(dir)) {
      if (!/^agent-\d+\.log$/.test(file)) continue
      const text = await readFile(join(dir, file), 'utf8')
      if (text.includes(`membership started id=${id}`)) return { file: join(dir, file), text }
    }
    throw new Error(`no log of ${id} in ${dir}`)
  }
  /** `switching` lines the runtime of `id` logged at or after `since` (one per switch it began). */
  const switchesLogged = async (id: string, since: number) =>
    (await logOf(id)).text
      .split('\n')
      .filter((line) => line.includes('[shoal:runtime] switching') && Date.parse(line.slice(0, 24)) >= since)

  /**
   * The switches of `id` since `since`, from its runtime's log: from its "switching" line to the
   * "switched" line that follows (or now, when none does yet).
   */
  const switchWindows = async (id: string, since: number) => {
    const windows: Array<[number, number]> = []
    for (const line of (await logOf(id)).text.split('\n')) {
      const at = Date.parse(line.slice(0, 24))
      if (!(at >= since)) continue
      if (line.includes('[shoal:runtime] switching ')) windows.push([at, Number.POSITIVE_INFINITY])
      else if (line.includes('[shoal:runtime] switched ') && windows.length > 0) windows.at(-1)![1] = at
    }
    return windows
  }
  /** The most nodes switching at one time since `since`, by their logs. */
  const maxConcurrentSwitches = async (ids: string[], since: number) => {
    const edges: Array<[number, number]> = []
    for (const id of ids)
      for (const [from, to] of await switchWindows(id, since)) edges.push([from, 1], [to, -1])
    edges.sort((x, y) => x[0] - y[0] || x[1] - y[1])
    let now = 0
    let max = 0
    for (const [, d] of edges) {
      now += d
      max = Math.max(max, now)
    }
    return max
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-mgr-'))
    seedPort = await freePort()
    await cli('secret', 'new', join(dir, 'cluster.secret'))
    await cli('key', 'new', join(dir, 'pub.key'))
    const common = ['--no-mdns', '--preset', 'test', '--secret-file', join(dir, 'cluster.secret')]
    const builds = buildEduca(join(dir, 'build'))
    // The seed first (others bootstrap through it), then the other four together.
    const start = async (name: string) => {
      const args = ['--cluster', CLUSTER, '--data', join(dir, name), '--api', '127.0.0.1:0']
      args.push('--listen', `/ip4/127.0.0.1/tcp/${name === 'a' ? seedPort : 0}`, ...common)
      args.push('--trust', join(dir, 'pub.key.pub'))
      if (name !== 'a') args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
      const agent = await spawnAgent(args, dir)
      agents.set(name, agent)
      names.set(agent.info.id, name)
    }
    await start('a')
    await Promise.all(NAMES.slice(1).map(start))
    await waitFor(
      'five alive members and a manager with quorum',
      async () => {
        const status = await get<StatusView>(api('a'), '/api/status')
        const manager = status.managerStatus as ManagerView
        return status.members.alive === 5 && manager.quorum && manager.voters.length === 5
      },
      { timeout: 20_000 },
    )
    const { '1.0': v10, '1.1': v11 } = await builds
    for (const [version, content] of [
      ['1.0', v10],
      ['1.1', v11],
    ] as const)
      await cli(
        'publish',
        content,
        '--name',
        'educa',
        '--version',
        version,
        '--key',
        join(dir, 'pub.key'),
        '--api',
        api('a'),
      )
    const first = await runCliLong(['rollout', 'educa@1.0', '--wait', '--json', '--api', api('b')])
    expect(first.stderr).toBe('')
    expect(JSON.parse(first.stdout)).toMatchObject({ state: 'done', nodes: { total: 5 } })
    // The set-up needs every node on 1.0 (whatever the rollout's node count says: the tests check that).
    await waitFor(
      'five nodes on educa@1.0, ready',
      async () =>
        (await agentMembers(api('a'))).filter(
          (m) => m.distribution === 'educa@1.0' && m.ready && m.components.every((c) => c.state === 'ready'),
        ).length === 5,
      { timeout: 20_000 },
    )

    const lb = spawn(
      process.execPath,
      [
        CLI,
        'lb',
        '--cluster',
        CLUSTER,
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--admin',
        '127.0.0.1:0',
        '--data',
        join(dir, 'lb'),
      ]
        .concat(['--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`, '--p2p-listen', '/ip4/127.0.0.1/tcp/0'])
        .concat(common, ['--log-level', 'warn']),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exit = new Promise<number | null>((resolve) => lb.once('exit', resolve))
    stopLb = async () => {
      if (lb.exitCode == null && lb.signalCode == null) lb.kill('SIGTERM')
      expect(await exit).toBe(0)
    }
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: lb.stdout! }).once('line', resolve),
    )
    ;({ url: lbUrl, admin: lbAdmin } = JSON.parse(line) as { url: string; admin: string })
    await waitFor('five nodes in rotation', async () => (await inRotation()).size === 5, { timeout: 20_000 })
  }, 90_000)

  afterAll(async () => {
    await stopLb?.()
    for (const agent of agents.values()) await agent.stop('SIGTERM')
    // Components of an agent killed with SIGKILL are left behind by design (own process groups).
    for (const name of NAMES)
      for (const pid of await componentPids(join(dir, name)).catch(() => []))
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
    // SHOAL_KEEP_E2E=1 keeps the agents' logs (DIR/agent-N.log) for a look after a failure.
    if (process.env.SHOAL_KEEP_E2E) console.log(`kept ${dir}`)
    else await rm(dir, { recursive: true, force: true })
  })

  it('rolling update 1.0 → 1.1 on 5 nodes behind shoal lb under steady load: 0 failed requests, never more than one node out of rotation, every node ends on 1.1', async () => {
    const ids = [...names.keys()]
    // Two views of "out of rotation", sampled every 100 ms: what the load balancer routes to
    // (a ready, non-ejected web backend), and what the membership says (a member whose runtime
    // reports a component not ready). Also sampled: the rollout engine's own count of nodes
    // `updating`, and the managers seen (a change of manager during the rollout is worth knowing).
    let maxOutLb = 0
    let maxOutMembers = 0
    let maxUpdating = 0
    let samples = 0
    const managersSeen = new Set<string>()
    /** When each maximum was first seen, and which nodes were out then. */
    const worst = { lb: '', members: '' }
    const stopSampling = every(100, async () => {
      const [rotation, members, rollouts, manager] = await Promise.all([
        inRotation(),
        agentMembers(api('c')),
        get<RolloutView[]>(api('d'), '/api/rollouts'),
        get<ManagerView>(api('e'), '/api/manager'),
      ])
      const outLb = ids.filter((id) => !rotation.has(id))
      if (outLb.length > maxOutLb)
        worst.lb = `${new Date().toISOString()} ${outLb.map((id) => names.get(id)).join(',')}`
      maxOutLb = Math.max(maxOutLb, outLb.length)
      const ready = (m: MemberView | undefined) =>
        m != null &&
        m.state !== 'dead' &&
        m.state !== 'left' &&
        m.ready &&
        m.components.length > 0 &&
        m.components.every((c) => c.state === 'ready')
      const outMembers = ids.filter((id) => !ready(members.find((m) => m.id === id)))
      if (outMembers.length > maxOutMembers)
        worst.members = `${new Date().toISOString()} ${outMembers
          .map((id) => members.find((m) => m.id === id))
          .map(
            (m) =>
              `${names.get(m?.id ?? '')}:${m?.state}/${JSON.stringify((m?.meta.runtime as { phase?: string })?.phase)}/${m?.components.map((c) => `${c.name}@${c.version}=${c.state}`).join('+')}`,
          )
          .join(', ')}`
      maxOutMembers = Math.max(maxOutMembers, outMembers.length)
      if (rollouts[0]?.distribution === 'educa@1.1')
        maxUpdating = Math.max(maxUpdating, rollouts[0].nodes.updating)
      if (manager.manager != null) managersSeen.add(`${names.get(manager.manager)}@${manager.term}`)
      samples++
    })
    const stopLoad = steadyLoad(lbUrl, 40)
    const started = Date.now()
    const result = await runCliLong(
      ['rollout', 'educa@1.1', '--strategy', 'rolling', '--max-unavailable', '1', '--min-ready', '1'].concat([
        '--wait',
        '--json',
        '--api',
        api('a'),
      ]),
    )
    const took = Date.now() - started
    // The load runs on a moment after the last switch.
    await sleep(500)
    const [load] = await Promise.all([stopLoad(), stopSampling()])
    const overlap = await maxConcurrentSwitches(ids, started)
    console.log(
      `rolling 1.0 → 1.1: ${took} ms; load ${JSON.stringify(load)}; out of rotation max lb=${maxOutLb} members=${maxOutMembers} (${samples} samples); engine updating max ${maxUpdating}; concurrent switches (logs) max ${overlap}; managers ${[...managersSeen].join(', ')}; worst samples ${JSON.stringify(worst)}`,
    )
    expect(result.code, result.stderr).toBe(0)
    const view: RolloutView = JSON.parse(result.stdout)
    expect(view).toMatchObject({
      distribution: 'educa@1.1',
      from: 'educa@1.0',
      strategy: 'rolling',
      maxUnavailable: 1,
      minReadyMs: 1000,
      state: 'done',
      nodes: { total: 5, done: 5, pending: 0, updating: 0, failed: 0 },
    })

    expect(load.failures).toEqual({})
    expect(load.failed).toBe(0)
    expect(load.ok).toBe(load.sent)
    expect(load.sent).toBeGreaterThan(100)
    expect(samples).toBeGreaterThan(20)
    // Out of rotation as the load balancer (built from membership) and the manager's record see it.
    // One agent's raw member list is only logged: gossip can bring node B's "draining" before node
    // A's "ready", so a single view may show two for a moment while the LB never routed that way.
    // Nodes switch make-before-break (the new version starts beside the old), so a node
    // normally never leaves rotation at all; a slow health check may take one out for a moment.
    expect(maxOutLb).toBeLessThanOrEqual(1)
    expect(maxUpdating).toBeLessThanOrEqual(1)
    // One node switched at a time, and the sampler did see the engine move them.
    expect(overlap).toBe(1)
    expect(maxUpdating).toBe(1)

    const members: MemberView[] = JSON.parse(await cli('members', '--json', '--api', api('e')))
    const agentsSeen = members.filter((m) => !m.roles.includes('lb'))
    expect(agentsSeen).toHaveLength(5)
    for (const m of agentsSeen) {
      expect(m, m.id).toMatchObject({ state: 'alive', ready: true, distribution: 'educa@1.1' })
      expect(m.components.map((c) => `${c.name}@${c.version}:${c.state}`).sort()).toEqual([
        'catalog@1.1:ready',
        'web@1.1:ready',
      ])
    }
    const answer = (await (await fetch(`${lbUrl}/`)).json()) as { version: string }
    expect(answer.version).toBe('1.1')
  }, 75_000)

  /**
   * `shoal ARGS --wait --json` under a steady load through the load balancer, sampling every
   * 100 ms how many nodes have no web backend in rotation and whether a node ran two instances.
   */
  const changeUnderLoad = async (args: string[]) => {
    const ids = [...names.keys()]
    let maxOutLb = 0
    let worst = ''
    let twoInstances = 0
    const stopSampling = every(100, async () => {
      const backends = (await lbStatus()).backends
      const rotation = new Set(backends.filter((b) => b.state === 'ready' && !b.ejected).map((b) => b.node))
      const out = ids.filter((id) => !rotation.has(id)).length
      if (out > maxOutLb)
        worst = backends.map((b) => `${b.key.slice(-12)}:${b.state}${b.ejected ? ':ejected' : ''}`).join(' ')
      maxOutLb = Math.max(maxOutLb, out)
      if (backends.some((b) => b.key.endsWith('#1'))) twoInstances++
    })
    const stopLoad = steadyLoad(lbUrl, 40)
    const started = Date.now()
    const result = await runCliLong([...args, '--wait', '--json', '--api', api('c')])
    const took = Date.now() - started
    await sleep(500)
    const [load] = await Promise.all([stopLoad(), stopSampling()])
    console.log(
      `shoal ${args.join(' ')}: ${took} ms; load ${JSON.stringify(load)}; most nodes out of rotation ${maxOutLb} (${worst}); samples with a second instance ${twoInstances}`,
    )
    expect(result.code, result.stderr).toBe(0)
    return { view: JSON.parse(result.stdout) as RolloutView, load, maxOutLb }
  }

  const expectAllOn = async (version: string) => {
    const members: MemberView[] = JSON.parse(await cli('members', '--json', '--api', api('d')))
    const agentsSeen = members.filter((m) => !m.roles.includes('lb'))
    expect(agentsSeen).toHaveLength(5)
    for (const m of agentsSeen) {
      expect(m, m.id).toMatchObject({ state: 'alive', ready: true, distribution: `educa@${version}` })
      expect(m.components.map((c) => `${c.name}@${c.version}:${c.state}`).sort()).toEqual([
        `catalog@${version}:ready`,
        `web@${version}:ready`,
      ])
    }
    const answer = (await (await fetch(`${lbUrl}/`)).json()) as { version: string }
    expect(answer.version).toBe(version)
  }

  it('rollback (all at once by default) and an all-at-once rollout under steady load: 0 failed requests, every node switches make-before-break', async () => {
    // Back to 1.0 (a rollback is all at once unless told otherwise), then forward again all at once.
    const changes = [
      { args: ['rollback', 'educa'], version: '1.0', kind: 'rollback' },
      { args: ['rollout', 'educa@1.1', '--strategy', 'all-at-once'], version: '1.1', kind: 'rollout' },
    ]
    for (const { args, version, kind } of changes) {
      const { view, load, maxOutLb } = await changeUnderLoad(args)
      expect(view).toMatchObject({
        kind,
        distribution: `educa@${version}`,
        strategy: 'all-at-once',
        state: 'done',
        nodes: { total: 5, done: 5, failed: 0 },
      })
      expect(load.failures).toEqual({})
      expect(load.failed).toBe(0)
      expect(load.sent).toBeGreaterThan(20)
      // Before make-before-break every node left rotation at once. Now none should, but on a
      // loaded machine a slow health check or an ejection can take a node out for a moment.
      expect(maxOutLb).toBeLessThan(5)
      await expectAllOn(version)
    }
  }, 120_000)

  it('kill the manager (SIGKILL) in the middle of a rolling update: a new manager is elected and finishes; each node switched exactly once', async () => {
    const before = await get<ManagerView>(api('b'), '/api/manager')
    expect(before.quorum).toBe(true)
    const managerId = before.manager!
    const managerName = names.get(managerId)!
    expect(managerName).toBeDefined()
    const membersBefore = await agentMembers(api('b'))
    expect(membersBefore.filter((m) => m.manager).map((m) => m.id)).toEqual([managerId])
    const survivors = NAMES.filter((n) => n !== managerName)
    const witness = survivors[0]!
    const survivorIds = survivors.map((n) => agents.get(n)!.info.id)

    // Switches are counted two ways. The authoritative one is the runtime's own log: every switch it
    // begins writes one "[shoal:runtime] switching from=… to=…" line (Runtime.switchTo), so the lines
    // stamped after the rollout was requested are the switches it caused, however short they were.
    // The second is what a user sees: each survivor's `distribution` sampled every 100 ms from a
    // witness's membership, which must change exactly once, 1.1 → 1.0 (a switch takes far longer
    // than 100 ms: drain, stop, start, health checks, so a double switch cannot hide between samples).
    // (GET /api/components' `lastSwitch` only holds the latest switch, so it cannot count them;
    // it is checked at the end to name this rollout's switch.)
    const trail = new Map<string, string[]>(survivorIds.map((id) => [id, []]))
    const managersSeen = new Set<string>()
    const stopSampling = every(100, async () => {
      const manager = await get<ManagerView>(api(witness), '/api/manager')
      if (manager.manager != null) managersSeen.add(`${names.get(manager.manager)}@${manager.term}`)
      for (const m of await agentMembers(api(witness))) {
        const seen = trail.get(m.id)
        if (seen == null || m.distribution == null) continue
        if (seen.at(-1) !== m.distribution) seen.push(m.distribution)
      }
    })

    const requested = Date.now()
    // A rolling rollback to 1.0 with 2 s of readiness per node: slow enough to stop midway.
    const started: RolloutView = JSON.parse(
      await cli(
        'rollout',
        'educa@1.0',
        '--strategy',
        'rolling',
        '--max-unavailable',
        '1',
        '--min-ready',
        '2',
        '--json',
        '--api',
        api(witness),
      ),
    )
    expect(started).toMatchObject({ distribution: 'educa@1.0', from: 'educa@1.1', state: 'running' })
    const id = started.id
    const rollout = async (name: string) =>
      JSON.parse(await cli('rollout', 'status', id, '--json', '--api', api(name))) as RolloutView

    const midway = await waitFor(
      'the rollout to have one node done and one pending',
      async () => {
        const view = await get<RolloutView>(api(witness), `/api/rollouts/${id}`)
        return view.nodes.done >= 1 && view.nodes.pending >= 1 ? view : null
      },
      { timeout: 30_000, interval: 50 },
    )
    const killedProgress = midway.members.find((m) => m.id === managerId)!.status
    const killedAt = Date.now()
    expect(await agents.get(managerName)!.stop('SIGKILL')).toBeNull()

    const after = await waitFor(
      'a new manager with a higher term',
      async () => {
        const view = await get<ManagerView>(api(witness), '/api/manager')
        return view.manager != null && view.manager !== managerId && view.term > before.term && view.quorum
          ? view
          : null
      },
      { timeout: 15_000, interval: 20 },
    )
    const failoverMs = Date.now() - killedAt
    const done = await waitFor(
      'the rollout to finish',
      async () => {
        const view = await get<RolloutView>(api(witness), `/api/rollouts/${id}`)
        return view.state !== 'running' ? view : null
      },
      { timeout: 40_000, interval: 100 },
    )
    const finishedMs = Date.now() - requested
    await sleep(300) // a few more samples after the end
    await stopSampling()
    const overlap = await maxConcurrentSwitches(survivorIds, requested)
    console.log(
      `manager ${managerName} (${killedProgress} in ${id} when killed, term ${before.term}) → ${names.get(after.manager!)} term ${after.term}: failover ${failoverMs} ms; rollout ${done.state} after ${finishedMs} ms; nodes ${JSON.stringify(done.nodes)}; killed node's entry ${JSON.stringify(done.members.find((m) => m.id === managerId))}; concurrent switches (logs) max ${overlap}; managers ${[...managersSeen].join(', ')}; versions seen ${JSON.stringify(Object.fromEntries([...trail].map(([k, v]) => [names.get(k), v])))}`,
    )

    expect(done.state).toBe('done')
    expect(overlap).toBe(1)
    // What `shoal rollout status` says, from another survivor than the one asked so far.
    const viaCli = await rollout(survivors[1]!)
    expect(viaCli.state).toBe('done')
    expect(viaCli.nodes.total).toBe(5)
    expect(viaCli.nodes.failed).toBe(0)
    for (const sid of survivorIds)
      expect(
        viaCli.members.find((m) => m.id === sid),
        sid,
      ).toMatchObject({
        status: 'done',
        distribution: 'educa@1.0',
      })
    // The killed node is `lost` unless it had finished before it died (it is not counted as failed).
    expect(['lost', 'done']).toContain(viaCli.members.find((m) => m.id === managerId)?.status)

    for (const name of survivors) {
      const sid = agents.get(name)!.info.id
      const switches = await switchesLogged(sid, requested)
      expect(switches, `${name} switches: ${switches.join('\n')}`).toHaveLength(1)
      expect(switches[0]).toContain('from=educa@1.1 to=educa@1.0')
      expect(trail.get(sid), `${name} versions seen`).toEqual(['educa@1.1', 'educa@1.0'])
      const runtime: RuntimeStatus = JSON.parse(await cli('components', '--json', '--api', api(name)))
      expect(runtime).toMatchObject({ active: 'educa@1.0', target: 'educa@1.0', phase: 'done' })
      expect(runtime.lastSwitch).toMatchObject({ from: 'educa@1.1', to: 'educa@1.0' })
      expect(Date.parse(runtime.lastSwitch!.startedAt)).toBeGreaterThanOrEqual(requested)
    }
    // In the end every survivor follows one manager (not the killed one), with one term, and says so.
    const settled = await waitFor('the survivors to agree on one manager', async () => {
      const views = await Promise.all(survivors.map((n) => get<ManagerView>(api(n), '/api/manager')))
      const first = views[0]!
      return views.every((v) => v.manager === first.manager && v.term === first.term && v.quorum) &&
        first.manager !== managerId
        ? first
        : null
    })
    expect(settled.term).toBeGreaterThanOrEqual(after.term)
    const status: StatusView = JSON.parse(await cli('status', '--json', '--api', api(survivors[1]!)))
    expect(status.manager).toBe(settled.manager)
    expect(status.managerStatus).toMatchObject({ manager: settled.manager, term: settled.term, quorum: true })
    const members: MemberView[] = JSON.parse(await cli('members', '--json', '--api', api(survivors[2]!)))
    expect(members.filter((m) => m.manager).map((m) => m.id)).toEqual([settled.manager])
    expect(failoverMs).toBeLessThan(10_000)
  }, 75_000)
})
