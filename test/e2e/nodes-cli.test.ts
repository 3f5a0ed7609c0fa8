import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { MemberView, StatusView } from '../../src/api/index.js'
import type { ProxyStatus } from '../../src/loadbalancer/index.js'
import type { Operation } from '../../src/providers/index.js'
import { freePort } from '../../src/shared/ports.js'
import { runLoad, steadyLoad } from '../helpers/load.js'
import { type AgentProcess, CLI, componentPids, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const CLUSTER = 'e2e-nodes'
const SOLO_CLUSTER = 'e2e-nodes-solo'
/** The padding resource added to educa@1.0: 8 chunks of 1 MiB, so a new node can fetch it from several peers. */
const PADDING_BYTES = 8 * 1024 * 1024

interface NodeRow {
  id: string | null
  state: string
  member: string | null
  provider: string | null
  handle: string | null
  distribution: string | null
}

interface RunFile {
  pid: number
  id: string
  api: string
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function readRunFile(handle: string): Promise<RunFile | null> {
  return JSON.parse(await readFile(join(handle, 'agent.json'), 'utf8').catch(() => 'null')) as RunFile | null
}

/** Stops the nodes a provider launched under `root` (`root/node-*`): agents first, then anything they left. */
async function stopLaunched(root: string): Promise<void> {
  const handles = (await readdir(root).catch(() => [] as string[]))
    .filter((name) => name.startsWith('node-'))
    .map((name) => join(root, name))
  const pids: number[] = []
  for (const handle of handles) {
    const run = await readRunFile(handle)
    if (run != null && isAlive(run.pid)) {
      process.kill(run.pid, 'SIGTERM')
      pids.push(run.pid)
    }
  }
  const deadline = Date.now() + 10_000
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50)
  for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL')
  for (const handle of handles)
    for (const pid of await componentPids(handle).catch(() => []))
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
}

describe('shoal node copy | remove | add on agent processes behind shoal lb (local provider)', () => {
  let dir: string
  let secret: string
  let lbUrl: string
  /** Its admin listener (status, metrics). */
  let lbAdmin: string
  let lb: ChildProcess | undefined
  let lbExit: Promise<number | null> | undefined
  const agents: AgentProcess[] = []
  let solo: AgentProcess | undefined
  /** The node `shoal node copy` launched (test 1), removed in test 2. */
  let copied: { id: string; handle: string; api: string } | undefined

  const cli = async (...args: string[]) => {
    const result = await runCli(args)
    if (result.code !== 0)
      throw new Error(`shoal ${args.join(' ')} failed (${result.code}): ${result.stderr}${result.stdout}`)
    return result.stdout
  }
  const get = async <T>(base: string, path: string): Promise<T> => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(3000) })
    if (!res.ok) throw new Error(`GET ${base}${path}: HTTP ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }
  const api = (i: number) => agents[i]!.info.api
  const lbStatus = () => get<ProxyStatus>(lbAdmin, '/_shoal/lb')
  const readyBackendNodes = async () =>
    new Set((await lbStatus()).backends.filter((b) => b.state === 'ready' && !b.ejected).map((b) => b.node))
  const members = async (base: string) =>
    (await get<MemberView[]>(base, '/api/members')).filter((m) => !m.roles.includes('lb'))
  const readyOn = (m: MemberView | undefined, distribution: string) =>
    m != null &&
    m.state === 'alive' &&
    m.ready &&
    m.distribution === distribution &&
    m.components.length > 0 &&
    m.components.every((c) => c.state === 'ready')

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-nodes-'))
    secret = join(dir, 'cluster.secret')
    await cli('secret', 'new', secret)
    await cli('key', 'new', join(dir, 'pub.key'))
    const seedPort = await freePort()
    const common = ['--no-mdns', '--preset', 'test', '--secret-file', secret]
    const builds = buildEduca(join(dir, 'build'))
    // Agents in DIR/a, DIR/b, DIR/c: the nodes they launch get folders in DIR/nodes.
    const start = async (name: string, seed: boolean) => {
      const args = ['--cluster', CLUSTER, '--data', join(dir, name), '--api', '127.0.0.1:0']
      args.push('--listen', `/ip4/127.0.0.1/tcp/${seed ? seedPort : 0}`, ...common)
      args.push('--trust', join(dir, 'pub.key.pub'))
      if (!seed) args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
      return spawnAgent(args, dir)
    }
    agents.push(await start('a', true))
    agents.push(...(await Promise.all([start('b', false), start('c', false)])))
    // educa 1.0 plus an 8 MiB resource: its three other files are one chunk each, too few to
    // show a download spread over several peers.
    const educa = (await builds)['1.0']
    await mkdir(join(educa, 'static'), { recursive: true })
    await writeFile(join(educa, 'static', 'padding.bin'), randomBytes(PADDING_BYTES))
    await waitFor(
      'three alive members and a manager with quorum',
      async () => {
        const status = await get<StatusView>(api(0), '/api/status')
        return status.members.alive === 3 && status.manager != null
      },
      { timeout: 60_000 },
    )
    await cli(
      'publish',
      educa,
      '--name',
      'educa',
      '--version',
      '1.0',
      '--key',
      join(dir, 'pub.key'),
      '--api',
      api(0),
    )
    await cli('rollout', 'educa@1.0', '--wait', '--api', api(1))
    await waitFor(
      'three nodes on educa@1.0, ready',
      async () => (await members(api(0))).filter((m) => readyOn(m, 'educa@1.0')).length === 3,
      { timeout: 60_000 },
    )

    lb = spawn(
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
    const child = lb
    lbExit = new Promise<number | null>((resolve) => child.once('exit', resolve))
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: child.stdout! }).once('line', resolve),
    )
    ;({ url: lbUrl, admin: lbAdmin } = JSON.parse(line) as { url: string; admin: string })
    await waitFor('three nodes in rotation', async () => (await readyBackendNodes()).size === 3, {
      timeout: 60_000,
    })
  })

  afterAll(async () => {
    if (lb != null && lb.exitCode == null && lb.signalCode == null) lb.kill('SIGTERM')
    await lbExit
    // Launched nodes first: they would otherwise try to reach agents that are gone.
    await stopLaunched(join(dir, 'nodes'))
    await stopLaunched(join(dir, 'solo', 'nodes'))
    await Promise.all([...agents, ...(solo == null ? [] : [solo])].map((a) => a.stop('SIGTERM')))
    // SHOAL_KEEP_E2E=1 keeps the logs (DIR/agent-N.log, DIR/nodes/*/agent.log) for a look after a failure.
    if (process.env.SHOAL_KEEP_E2E) console.log(`kept ${dir}`)
    else await rm(dir, { recursive: true, force: true })
  })

  it('shoal node copy: a 4th node joins, fetches educa from at least two peers, becomes ready, and the load balancer sends it traffic', async () => {
    const ids = agents.map((a) => a.info.id)
    const started = Date.now()
    // A unique end of agent 2's id, as tables show ids.
    const out = await cli('node', 'copy', ids[1]!.slice(-12), '--wait', '--json', '--api', api(0))
    const copyDone = Date.now()
    const op = JSON.parse(out) as Operation
    expect(op).toMatchObject({ kind: 'copy', state: 'done', error: null })
    expect(op.nodes).toHaveLength(1)
    const { id, handle } = op.nodes[0]!
    expect(id).toMatch(/^12D3/)
    expect(handle).toMatch(new RegExp(`^${join(dir, 'nodes', 'node-')}`))
    const run = (await readRunFile(handle!))!
    expect(run.id).toBe(id)
    copied = { id: id!, handle: handle!, api: run.api }

    // A member everywhere (its own view included), alive, running educa@1.0, ready.
    for (const base of [...agents.map((a) => a.info.api), copied.api])
      await waitFor(`${base} to see the copy ready on educa@1.0`, async () =>
        readyOn(
          (await members(base)).find((m) => m.id === id),
          'educa@1.0',
        ),
      )
    const self = (await members(copied.api)).find((m) => m.id === id)!
    expect(self.meta).toMatchObject({ provider: 'local', handle })
    const nodes = JSON.parse(await cli('nodes', '--json', '--api', api(2))) as NodeRow[]
    expect(nodes.find((n) => n.id === id)).toMatchObject({
      state: 'ready',
      member: 'alive',
      provider: 'local',
      handle,
      distribution: 'educa@1.0',
    })

    // It fetched educa@1.0 from its peers: bytes from at least two of the three agents.
    const status = await get<StatusView>(copied.api, '/api/status')
    const sources = (status.transfer as { sources: Record<string, Record<string, number>> }).sources[
      'educa@1.0'
    ]
    expect(sources).toBeDefined()
    const peers = Object.keys(sources!)
    for (const peer of peers) expect(ids).toContain(peer)
    expect(peers.length).toBeGreaterThanOrEqual(2)
    const fetched = Object.values(sources!).reduce((a, b) => a + b, 0)
    expect(fetched).toBeGreaterThanOrEqual(PADDING_BYTES)

    // The load balancer lists it as a ready backend and sends it requests.
    await waitFor('the copy in rotation', async () => (await readyBackendNodes()).has(id!), {
      timeout: 60_000,
    })
    const serving = Date.now()
    const burst = await runLoad(lbUrl, { rate: 100, durationMs: 1500 })
    expect(burst.failures).toEqual({})
    expect(burst.nodes[id!] ?? 0).toBeGreaterThan(0)
    console.log(
      `copy: --wait returned after ${copyDone - started} ms, in rotation at ${serving - started} ms; ` +
        `educa@1.0 from ${peers.length} peers (${JSON.stringify(sources)}); burst ${JSON.stringify(burst.nodes)}`,
    )
  })

  it('shoal node remove under steady load: 0 failed requests, the node is gone from every view and from the load balancer, its process has exited', async () => {
    expect(copied, 'test 1 launched the node to remove').toBeDefined()
    const { id, handle } = copied!
    const run = (await readRunFile(handle))!
    expect(run.id).toBe(id)
    expect(isAlive(run.pid)).toBe(true)
    const components = await componentPids(handle)
    expect(components.length).toBeGreaterThan(0)

    const stopLoad = steadyLoad(lbUrl, 60, ['/', '/slow?ms=200'])
    await sleep(1000)
    const started = Date.now()
    // Agent 1 launched it; agent 3 removes it.
    const out = await cli('node', 'remove', id, '--wait', '--json', '--api', api(2))
    const removed = Date.now() - started
    await sleep(1000)
    const load = await stopLoad()
    const op = JSON.parse(out) as Operation
    expect(op).toMatchObject({ kind: 'remove', state: 'done', error: null })
    expect(op.nodes).toMatchObject([{ id, state: 'gone' }])
    expect(load.failures).toEqual({})
    expect(load.ok).toBe(load.sent)
    expect(load.nodes[id] ?? 0).toBeGreaterThan(0)

    // Its process and its components have exited.
    expect(isAlive(run.pid)).toBe(false)
    for (const pid of components) expect(isAlive(pid)).toBe(false)
    // Gone from every view (left, or forgotten) and from the load balancer.
    for (const agent of agents)
      await waitFor(`${agent.info.api} to see the node gone`, async () => {
        const m = (await members(agent.info.api)).find((x) => x.id === id)
        return m == null || m.state === 'left' || m.state === 'dead'
      })
    for (const agent of agents) {
      const row = (JSON.parse(await cli('nodes', '--json', '--api', agent.info.api)) as NodeRow[]).find(
        (n) => n.id === id,
      )
      if (row != null) expect(row.state).toBe('gone')
    }
    await waitFor('the node out of the load balancer', async () =>
      (await lbStatus()).backends.every((b) => b.node !== id),
    )
    const after = await runLoad(lbUrl, { rate: 60, durationMs: 500 })
    expect(after.failures).toEqual({})
    expect(Object.keys(after.nodes).sort()).toEqual(agents.map((a) => a.info.id).sort())
    console.log(
      `remove: ${removed} ms through another agent; load ${load.ok}/${load.sent} ok, ${JSON.stringify(load.nodes)}`,
    )
  })

  it('shoal node add --count 3 on a cluster of one: four ready nodes', async () => {
    // Its own cluster, with its data in DIR/solo/agent (so launched nodes go to DIR/solo/nodes).
    const args = ['--cluster', SOLO_CLUSTER, '--data', join(dir, 'solo', 'agent')]
    args.push('--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0')
    args.push('--no-mdns', '--preset', 'test', '--secret-file', secret, '--trust', join(dir, 'pub.key.pub'))
    solo = await spawnAgent(args, dir)
    const base = solo.info.api
    const started = Date.now()
    const op = JSON.parse(
      await cli('node', 'add', '--count', '3', '--wait', '--json', '--api', base),
    ) as Operation
    const added = Date.now() - started
    expect(op).toMatchObject({ kind: 'add', state: 'done', error: null })
    expect(op.nodes).toHaveLength(3)
    expect(op.nodes.every((n) => n.state === 'ready')).toBe(true)
    const launched = op.nodes.map((n) => n.id!)
    const all = [solo.info.id, ...launched].sort()

    const nodes = JSON.parse(await cli('nodes', '--json', '--api', base)) as NodeRow[]
    expect(nodes.map((n) => n.id).sort()).toEqual(all)
    expect(nodes.every((n) => n.state === 'ready' && n.member === 'alive')).toBe(true)
    for (const n of nodes.filter((x) => x.id !== solo!.info.id))
      expect(n).toMatchObject({
        provider: 'local',
        handle: expect.stringContaining(join(dir, 'solo', 'nodes')),
      })
    // Every node (the launched ones through their own API) lists the four alive.
    const apis = [base]
    for (const n of op.nodes) apis.push((await readRunFile(n.handle!))!.api)
    for (const url of apis)
      await waitFor(`${url} to list four alive members`, async () => {
        const alive = (await members(url)).filter((m) => m.state === 'alive').map((m) => m.id)
        return JSON.stringify(alive.sort()) === JSON.stringify(all)
      })

    // Clean up through the CLI: remove the three launched nodes.
    const pids = await Promise.all(op.nodes.map(async (n) => (await readRunFile(n.handle!))!.pid))
    const removeStarted = Date.now()
    for (const id of launched) await cli('node', 'remove', id, '--wait', '--api', base)
    const removed = Date.now() - removeStarted
    for (const pid of pids) expect(isAlive(pid)).toBe(false)
    const left = JSON.parse(await cli('nodes', '--json', '--api', base)) as NodeRow[]
    expect(left.filter((n) => n.state !== 'gone').map((n) => n.id)).toEqual([solo.info.id])
    console.log(`add --count 3: ${added} ms to four ready nodes; removing the three: ${removed} ms`)
  })
})
