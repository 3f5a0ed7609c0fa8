import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/shared/ports.js'
import { type AgentProcess, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

interface MemberJson {
  id: string
  state: string
  addrs: string[]
  manager: boolean
  ready: boolean
  distribution: string | null
  components: unknown[]
}

describe('shoal agent processes, driven through the CLI', () => {
  let dir: string
  const agents: AgentProcess[] = []
  const members = async (api: string): Promise<MemberJson[]> => {
    const result = await runCli(['members', '--json', '--api', api])
    if (result.code !== 0) throw new Error(result.stderr)
    return JSON.parse(result.stdout)
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-'))
    const secret = join(dir, 'cluster.secret')
    const made = await runCli(['secret', 'new', secret])
    expect(made.code).toBe(0)
    expect((await stat(secret)).mode & 0o777).toBe(0o600)
    const seedPort = await freePort()
    for (let i = 0; i < 3; i++) {
      const data = join(dir, `node-${i}`)
      const args = [
        '--cluster',
        'e2e',
        '--data',
        data,
        '--listen',
        `/ip4/127.0.0.1/tcp/${i === 0 ? seedPort : 0}`,
      ]
      args.push(
        '--api',
        `127.0.0.1:${await freePort()}`,
        '--secret-file',
        secret,
        '--no-mdns',
        '--preset',
        'test',
      )
      if (i > 0) args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
      agents.push(await spawnAgent(args, dir))
    }
  })

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.stop('SIGKILL')))
    await rm(dir, { recursive: true, force: true })
  })

  it('every agent lists all three as alive, in the contract shape', async () => {
    for (const agent of agents) {
      const view = await waitFor('three alive members', async () => {
        const list = await members(agent.info.api)
        return list.filter((m) => m.state === 'alive').length === 3 ? list : null
      })
      expect(view.map((m) => m.id).sort()).toEqual(agents.map((a) => a.info.id).sort())
      // One manager, the same everywhere (the election's smallest id with a majority).
      expect(view.filter((m) => m.manager).length).toBe(1)
      for (const member of view) {
        expect(member).toMatchObject({ ready: true, distribution: null, components: [] })
        expect(member.addrs.length).toBeGreaterThan(0)
      }
    }
  })

  it('status --json names this node, its cluster and its addresses', async () => {
    const result = await runCli(['status', '--json', '--api', agents[0]!.info.api])
    expect(result.code).toBe(0)
    const status = JSON.parse(result.stdout)
    expect(status).toMatchObject({ id: agents[0]!.info.id, cluster: 'e2e', open: false })
    expect(agents.map((a) => a.info.id)).toContain(status.manager)
    expect(status.managerStatus).toMatchObject({ quorum: true, voters: expect.any(Array) })
    expect(status.addrs).toEqual(agents[0]!.info.addrs)
    expect(status.members.alive).toBe(3)
  })

  it('prints readable tables without --json', async () => {
    const result = await runCli(['members', '--api', agents[1]!.info.api])
    expect(result.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+READY/)
    expect(result.stdout).toContain('alive')
  })

  it('answers errors as JSON over HTTP and as a message plus exit code in the CLI', async () => {
    const response = await fetch(`${agents[0]!.info.api}/api/nothing-here`)
    expect(response.status).toBe(404)
    expect(await response.json()).toMatchObject({ error: { code: 'ERR_NOT_FOUND' } })
    const unreachable = await runCli(['members', '--api', `http://127.0.0.1:${await freePort()}`])
    expect(unreachable.code).not.toBe(0)
    expect(unreachable.stderr).toContain('ERR_AGENT_UNREACHABLE')
  })

  it('SIGTERM makes an agent leave gracefully and exit 0; the others show it as left', async () => {
    const leaver = agents[2]!
    expect(await leaver.stop('SIGTERM')).toBe(0)
    for (const agent of agents.slice(0, 2)) {
      await waitFor('the leaver to show as left', async () => {
        const list = await members(agent.info.api)
        return list.find((m) => m.id === leaver.info.id)?.state === 'left'
      })
    }
  })
})
