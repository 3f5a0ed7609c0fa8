import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { type AgentProcess, componentPids, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/** The parent of `pid` (null once it is gone or a zombie). */
async function parentOf(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (stat === '' || fields[0] === 'Z') return null
  return Number(fields[1])
}

/** Marked component processes of the agent with data folder `data` that are still running. */
async function running(data: string): Promise<number[]> {
  const pids: number[] = []
  for (const pid of await componentPids(data)) if ((await parentOf(pid)) != null) pids.push(pid)
  return pids.sort()
}

/**
 * How an agent's components fare when the agent is stopped the ways an operator
 * or a service manager stops it (docs/operations.md, "Stopping an agent").
 */
describe('stopping an agent process with components', () => {
  let dir: string
  const agents: AgentProcess[] = []
  let n = 0

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-stop-'))
    const key = join(dir, 'pub.key')
    expect((await runCli(['key', 'new', key])).code).toBe(0)
    // web: a plain HTTP server (SIGTERM kills it); worker: exits 0 on SIGTERM.
    await makeComponentDistribution(join(dir, 'app'), {
      web: {
        files: {
          'main.mjs': `import { createServer } from 'node:http'
            createServer((q, r) => r.end(String(process.pid))).listen(Number(process.env.PORT), process.env.HOST)`,
        },
        descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/' } },
      },
      worker: {
        files: {
          'main.mjs': `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000)`,
        },
        descriptor: { start: { node: 'main.mjs' } },
      },
    })
  })

  afterAll(async () => {
    for (const agent of agents) await agent.stop('SIGTERM')
    if (!process.env.KEEP) await rm(dir, { recursive: true, force: true })
  })

  /** One agent on `data` with `app@1.0` rolled out and every component ready. */
  const startWithApp = async (data: string, listenApi: string): Promise<AgentProcess> => {
    const agent = await start(data, listenApi)
    const api = agent.info.api
    const cli = async (...args: string[]) => {
      const result = await runCli([...args, '--api', api])
      if (result.code !== 0) throw new Error(`shoal ${args.join(' ')}: ${result.stderr}`)
      return result.stdout
    }
    await cli('publish', join(dir, 'app'), '--name', 'app', '--version', '1.0', '--key', join(dir, 'pub.key'))
    await cli('rollout', 'app@1.0', '--wait')
    await waitFor('every component ready', async () => (await components(api)).length === 2)
    return agent
  }
  const start = async (data: string, api: string): Promise<AgentProcess> => {
    const args = ['--cluster', `e2e-stop-${++n}`, '--data', data, '--api', api, '--no-mdns']
    args.push('--listen', '/ip4/127.0.0.1/tcp/0', '--preset', 'test', '--trust', join(dir, 'pub.key.pub'))
    const agent = await spawnAgent(args, dir)
    agents.push(agent)
    return agent
  }
  /** Ready components as the agent reports them. */
  const components = async (api: string) => {
    const result = await runCli(['components', '--json', '--api', api])
    if (result.code !== 0) return []
    const status = JSON.parse(result.stdout) as RuntimeStatus
    return status.components.filter((c) => c.state === 'ready' && c.pid != null)
  }

  it('SIGKILL: the components keep running and serving; the restarted agent stops them and starts its own', async () => {
    const data = join(dir, 'killed')
    const agent = await startWithApp(data, '127.0.0.1:0')
    const before = await components(agent.info.api)
    const web = before.find((c) => c.name === 'web')!

    expect(await agent.stop('SIGKILL')).toBe(null)
    // What docs/operations.md says: the components outlive the agent, in process groups of their own, and serve.
    expect(await running(data)).toEqual(before.map((c) => c.pid!).sort())
    expect(await (await fetch(web.endpoint!)).text()).toBe(String(web.pid))

    const again = await start(data, '127.0.0.1:0')
    const after = await waitFor('the restarted agent to run both components', async () => {
      const ready = await components(again.info.api)
      return ready.length === 2 ? ready : null
    })
    for (const c of after) expect(before.map((b) => b.pid)).not.toContain(c.pid)
    // Only the new ones remain, children of the new agent.
    const now = await running(data)
    expect(now).toEqual(after.map((c) => c.pid!).sort())
    for (const pid of now) expect(await parentOf(pid)).toBe(again.child.pid)

    expect(await again.stop('SIGTERM')).toBe(0)
    expect(await running(data)).toEqual([])
  })

  it('SIGTERM to the agent and every component at once (systemd KillMode=control-group): a clean stop, no restart', async () => {
    const data = join(dir, 'cgroup')
    // Port 0: a port picked beforehand can be taken by another suite before the agent binds it.
    const agent = await startWithApp(data, '127.0.0.1:0')
    const pids = await running(data)
    expect(pids).toHaveLength(2)

    // systemd signals the processes of the cgroup in no set order: the components first is the harder case.
    for (const pid of pids) process.kill(pid, 'SIGTERM')
    const exit = agent.stop('SIGTERM')
    expect(await exit).toBe(0)
    expect(await running(data)).toEqual([])
    // The components' exits during the agent's stop are no crash: nothing was restarted.
    for (const name of ['web', 'worker']) {
      const log = await readFile(join(data, 'logs', `${name}.log`), 'utf8')
      expect(log.match(/started pid/g)).toHaveLength(1)
      expect(log).not.toMatch(/restarting/)
    }
    const agentLog = await readFile(join(dir, `agent-${agents.indexOf(agent) + 1}.log`), 'utf8')
    expect(agentLog).toMatch(/agent stopped .*left=true/)
    expect(agentLog).not.toMatch(/ERROR|crash/i)
  })
})
