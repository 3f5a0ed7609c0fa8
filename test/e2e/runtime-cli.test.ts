import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { MemberView } from '../../src/api/index.js'
import { ApiClient } from '../../src/cli/client.js'
import type { RolloutView } from '../../src/manager/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { freePort } from '../../src/shared/ports.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { type AgentProcess, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/** Processes whose environment carries the runtime mark of the agent with data folder `data`. */
async function markedProcesses(data: string): Promise<Array<{ pid: number; ppid: number }>> {
  const found: Array<{ pid: number; ppid: number }> = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (!environ.split('\0').includes(`SHOAL_RUNTIME_DATA=${data}`)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z') continue
    found.push({ pid, ppid: Number(fields[1]) })
  }
  return found
}

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })

describe('running a distribution through the CLI on agent processes', () => {
  let dir: string
  let seedPort: number
  let builds: { '1.0': string; '1.1': string }
  const agents = new Map<string, AgentProcess>()
  const apis = new Map<string, string>()

  const startAgent = async (name: string) => {
    apis.set(name, apis.get(name) ?? `127.0.0.1:${await freePort()}`)
    const args = ['--cluster', 'e2e-run', '--data', join(dir, name), '--api', apis.get(name)!]
    args.push(
      '--listen',
      `/ip4/127.0.0.1/tcp/${name === 'a' ? seedPort : 0}`,
      '--no-mdns',
      '--preset',
      'test',
    )
    args.push('--trust', join(dir, 'pub.key.pub'))
    if (name !== 'a') args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
    const agent = await spawnAgent(args, dir)
    agents.set(name, agent)
    return agent
  }
  const cli = async (...args: string[]) => {
    const result = await runCli(args)
    if (result.code !== 0) throw new Error(`shoal ${args.join(' ')} failed: ${result.stderr}`)
    return result.stdout
  }
  const components = async (name: string): Promise<RuntimeStatus> =>
    JSON.parse(await cli('components', '--json', '--api', apis.get(name)!))

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-run-'))
    seedPort = await freePort()
    await cli('key', 'new', join(dir, 'pub.key'))
    builds = await buildEduca(join(dir, 'build'))
    await startAgent('a')
    await startAgent('b')
  })

  afterAll(async () => {
    for (const agent of agents.values()) await agent.stop('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  })

  it('publishes and rolls out educa 1.0 with --wait; every node serves it', async () => {
    const a = apis.get('a')!
    await waitFor(
      'two members',
      async () => JSON.parse(await cli('members', '--json', '--api', a)).length === 2,
    )
    await cli(
      'publish',
      builds['1.0'],
      '--name',
      'educa',
      '--version',
      '1.0',
      '--key',
      join(dir, 'pub.key'),
      '--api',
      a,
    )
    const done: RolloutView = JSON.parse(await cli('rollout', 'educa@1.0', '--wait', '--json', '--api', a))
    expect(done).toMatchObject({ distribution: 'educa@1.0', state: 'done', nodes: { total: 2, done: 2 } })

    // What a node runs reaches the others as a detail pushed to the watchers (docs/architecture.md):
    // on a loaded machine it can trail the rollout's end by a moment.
    const members = await waitFor(
      'every member to show educa@1.0',
      async () => {
        const list: MemberView[] = JSON.parse(await cli('members', '--json', '--api', apis.get('b')!))
        return list.every((m) => m.distribution === 'educa@1.0') ? list : null
      },
      { timeout: 15_000, interval: 250 },
    )
    for (const member of members) {
      expect(member.distribution).toBe('educa@1.0')
      const web = member.components.find((c) => c.name === 'web')!
      expect(web.state).toBe('ready')
      const answer = (await (await fetch(web.endpoint!)).json()) as { version: string; node: string }
      expect(answer).toMatchObject({ version: '1.0', node: member.id })
    }
    const logs = await cli('logs', 'web', '--api', a)
    expect(logs).toMatch(/web started pid \d+ on port \d+ \(1\.0\)/)

    const unknown = await runCli(['rollout', 'educa@9.9', '--api', a])
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('ERR_UNKNOWN_DISTRIBUTION')
  })

  it('an agent killed with -9 in the middle of a switch restarts on one version with no orphans', async () => {
    const a = apis.get('a')!
    const bData = join(dir, 'b')
    // Components that take 1.5 s to listen hold the switch open long enough to kill it midway.
    const slow = (name: string) => ({
      files: {
        'main.mjs': `import { createServer } from 'node:http'
          setTimeout(() => createServer((q, r) => r.end('${name}')).listen(Number(process.env.PORT), process.env.HOST), 1500)`,
      },
      descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/' } },
    })
    const content = await makeComponentDistribution(join(dir, 'educa-1.2'), {
      web: slow('web'),
      catalog: slow('catalog'),
    })
    await cli(
      'publish',
      content,
      '--name',
      'educa',
      '--version',
      '1.2',
      '--key',
      join(dir, 'pub.key'),
      '--api',
      a,
    )
    const bApi = new ApiClient(`http://${apis.get('b')!}`)
    await waitFor('b to hold educa@1.2', async () =>
      (await bApi.get<Array<{ id: string; complete: boolean }>>('/api/distributions')).some(
        (d) => d.id === 'educa@1.2' && d.complete,
      ),
    )
    await cli('rollout', 'educa@1.2', '--api', a)
    // Kill b once its 1.1 components are spawned but not all ready: the switch is under way.
    const during = await waitFor(
      'b to be switching',
      async () => {
        const status = await bApi.get<RuntimeStatus>('/api/components')
        const starting = status.components.some(
          (c) => c.version === '1.2' && c.state === 'starting' && c.pid != null,
        )
        return status.phase === 'switching' && starting ? status : null
      },
      { interval: 10, timeout: 20_000 },
    )
    await agents.get('b')!.stop('SIGKILL')
    const pidsBefore = during.components.map((c) => c.pid).filter((p): p is number => p != null)
    const portsBefore = during.components.map((c) => c.port).filter((p): p is number => p != null)
    // Its components outlive it (they run in their own process groups): the restart must deal with them.
    expect((await markedProcesses(bData)).length).toBeGreaterThan(0)

    const b = await startAgent('b')
    const after = await waitFor(
      'b to be on one version with every component ready',
      async () => {
        const status = await components('b')
        return status.phase === 'done' && status.components.every((c) => c.state === 'ready') ? status : null
      },
      { timeout: 30_000 },
    )
    expect(after.active).toBe('educa@1.2')
    expect(after.components.map((c) => `${c.name}@${c.version}`).sort()).toEqual(['catalog@1.2', 'web@1.2'])

    // No process of the killed run is left; every marked process is a child of the new agent.
    for (const pid of pidsBefore) expect(after.components.map((c) => c.pid)).not.toContain(pid)
    const marked = await markedProcesses(bData)
    expect(marked.map((p) => p.pid).sort()).toEqual(after.components.map((c) => c.pid).sort())
    for (const p of marked) expect(p.ppid).toBe(b.child.pid)
    const portsNow = after.components.map((c) => c.port)
    for (const port of portsBefore) if (!portsNow.includes(port)) expect(await canListen(port)).toBe(true)

    const rollouts: RolloutView[] = JSON.parse(await cli('rollouts', '--json', '--api', a))
    expect(rollouts[0]).toMatchObject({ distribution: 'educa@1.2', state: 'done', nodes: { done: 2 } })

    // A graceful stop takes the components with it.
    await b.stop('SIGTERM')
    expect(await markedProcesses(bData)).toEqual([])
  })
})
