import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MemberView, StatusView } from '../../src/api/index.js'
import { type AgentProcess, CLI, runCli, spawnAgent } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** Debian's Chromium, as test/e2e/dashboard.test.ts drives it. */
const CHROMIUM = '/usr/bin/chromium'
const noBrowser = skipReason(
  import.meta.url,
  'roles on the dashboard',
  existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium)`,
)

/**
 * What each member is, as `shoal members` and `shoal status` show it: two agents
 * (one announcing `--role web`) and a `shoal lb`, which is a member with role lb
 * but not a node.
 */
describe('roles in the member list, load balancers counted apart from nodes', () => {
  let dir: string
  let api: string
  let lb: ChildProcess | undefined
  let lbId: string
  const agents: AgentProcess[] = []

  const cli = async (...args: string[]) => {
    const result = await runCli([...args, '--api', api])
    expect(result.code, `shoal ${args.join(' ')}: ${result.stderr}`).toBe(0)
    return result.stdout
  }
  const members = async () => JSON.parse(await cli('members', '--json')) as MemberView[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-roles-'))
    // The seed listens on any free port; the others join through the address it printed.
    let seed = ''
    for (const [i, role] of [[0, null] as const, [1, 'web'] as const]) {
      const args = ['--cluster', 'e2e-roles', '--data', join(dir, `agent-${i}`), '--api', '127.0.0.1:0']
        .concat(['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--preset', 'test'])
        .concat(i === 0 ? [] : ['--bootstrap', seed])
        .concat(role == null ? [] : ['--role', role])
      const agent = await spawnAgent(args, dir)
      agents.push(agent)
      seed ||= agent.info.addrs[0]!
    }
    api = agents[0]!.info.api
    lb = spawn(
      process.execPath,
      [CLI, 'lb', '--cluster', 'e2e-roles', '--listen', '127.0.0.1:0', '--data', join(dir, 'lb')]
        .concat(['--bootstrap', seed, '--p2p-listen', '/ip4/127.0.0.1/tcp/0'])
        .concat(['--no-mdns', '--preset', 'test', '--log-level', 'warn']),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: lb!.stdout! }).once('line', resolve)
      lb!.once('exit', (code) => reject(new Error(`shoal lb exited with ${code} before starting`)))
    })
    lbId = (JSON.parse(line) as { id: string }).id
    await waitFor(
      'two agents and the load balancer alive',
      async () => (await members()).filter((m) => m.state === 'alive').length === 3,
      { timeout: 60_000, interval: 250 },
    )
  })

  afterAll(async () => {
    if (lb != null && lb.exitCode == null) {
      const exit = new Promise((done) => lb!.once('exit', done))
      lb.kill('SIGKILL')
      await exit
    }
    for (const agent of agents) await agent.stop('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('shoal members --json gives every member its roles', async () => {
    const list = await members()
    const roles = Object.fromEntries(list.map((m) => [m.id, m.roles]))
    expect(roles).toEqual({
      [agents[0]!.info.id]: [],
      [agents[1]!.info.id]: ['web'],
      [lbId]: ['lb'],
    })
  })

  it('the members table has a ROLES column: lb for the load balancer', async () => {
    const lines = (await cli('members')).trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ID\s+STATE\s+READY\s+ROLES\s+INC\s+DISTRIBUTION/)
    const row = (id: string) => lines.find((l) => l.startsWith(id.slice(0, 8)) && l.includes(id.slice(-6)))
    expect(row(lbId)).toMatch(/\balive\s+yes\s+lb\s/)
    expect(row(agents[1]!.info.id)).toMatch(/\balive\s+yes\s+web\s/)
    expect(row(agents[0]!.info.id)).toMatch(/\balive\s+yes\s+-\s/)
  })

  it('shoal status counts nodes apart from load balancers; --json keeps every member in members', async () => {
    const human = await cli('status')
    expect(human).toMatch(/^members\s+2 nodes alive of 2 · 1 load balancer \(0 suspect, 0 dead, 0 left\)$/m)
    const status = JSON.parse(await cli('status', '--json')) as StatusView
    expect(status.members).toMatchObject({ total: 3, alive: 3 })
  })

  it.skipIf(noBrowser != null)(
    'the dashboard counts nodes apart and shows roles and the lb member',
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
        ],
      })
      try {
        const page = await browser.newPage()
        await page.goto(`${api}/`)
        await page
          .locator('#overview', { hasText: /^2 nodes alive of 2 · 1 load balancer · seen from / })
          .waitFor({ timeout: 60_000 })
        const web = page.locator(`#nodes tr[data-node="${agents[1]!.info.id}"] td.roles`)
        await web.waitFor({ timeout: 60_000 })
        expect(await web.textContent()).toBe('web')
        const lbEntry = page.locator(`#lbs [data-lb="${lbId}"]`)
        await lbEntry.waitFor({ timeout: 60_000 })
        expect(await lbEntry.textContent()).toMatch(/\blb member …\S+ alive\b/)
      } finally {
        await browser.close()
      }
    },
  )
})
