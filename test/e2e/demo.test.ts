import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI, runCli } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

// Both suites start a demo, and every demo prefers the same ports (7070, 8080): they live in one
// file so that they never run at the same time.
describe('shoal demo', () => {
  const dirs: string[] = []
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
  })

  it('starts a local cluster running educa 1.0, prints one JSON line once the app answers, and stops everything on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-demo-'))
    dirs.push(dir)
    const demo = spawn(process.execPath, [CLI, 'demo', '--json', '--nodes', '3', '--data', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exit = new Promise<number | null>((done) => demo.once('exit', (code) => done(code)))
    const line = await new Promise<string>((done) =>
      createInterface({ input: demo.stdout! }).once('line', done),
    )
    const printed = JSON.parse(line) as {
      app: unknown
      lbAdmin: string
      dashboard: string
      apis: string[]
      token: string
    }
    expect(printed.apis).toHaveLength(3)
    // The demo's agents take tokens: its admin token is printed, and nothing is open without it.
    expect(printed.token).toMatch(/^\S{16,}$/)
    // Its secrets are its owner's alone (moved here from test/security/permissions.test.ts:
    // every demo prefers the same ports, so demos run in this file, one at a time).
    const modeOf = async (file: string) => ((await stat(join(dir, file))).mode & 0o777).toString(8)
    expect({
      tokens: await modeOf('tokens.json'),
      secret: await modeOf('cluster.secret'),
      key: await modeOf('publisher.key'),
      pub: await modeOf('publisher.key.pub'),
    }).toEqual({ tokens: '600', secret: '600', key: '600', pub: '644' })
    expect((await fetch(`${printed.apis[0]}/api/members`)).status).toBe(401)
    const auth = { headers: { authorization: `Bearer ${printed.token}` } }
    expect(printed.dashboard).toBe(printed.apis[0])
    for (const api of printed.apis) {
      const members = (await (await fetch(`${api}/api/members`, auth)).json()) as Array<{
        state: string
        roles: string[]
      }>
      // Three agents and the load balancer, an observer member with role lb.
      expect(members.map((m) => m.state)).toEqual(['alive', 'alive', 'alive', 'alive'])
      expect(members.filter((m) => m.roles.includes('lb'))).toHaveLength(1)
    }
    // The sample app runs: educa 1.0 answers through the load balancer, from every node.
    const answer = (await (await fetch(String(printed.app))).json()) as { app: string; version: string }
    expect(answer).toMatchObject({ app: 'educa', version: '1.0' })
    const lb = (await (await fetch(`${String(printed.lbAdmin)}/_shoal/lb`)).json()) as {
      backends: Array<{ state: string }>
    }
    expect(lb.backends.map((b) => b.state)).toEqual(['ready', 'ready', 'ready'])
    const members = (await (await fetch(`${printed.apis[1]}/api/members`, auth)).json()) as Array<{
      id: string
      distribution: string
      roles: string[]
      components: Array<{ state: string }>
    }>
    for (const m of members.filter((x) => !x.roles.includes('lb'))) {
      expect(m.distribution).toBe('educa@1.0')
      expect(m.components.map((c) => c.state)).toEqual(['ready', 'ready'])
    }
    const page = await fetch(printed.dashboard)
    expect(page.headers.get('content-type')).toContain('text/html')

    // A node copied through an agent (the local provider's detached process) stops with the demo too.
    const copied = await runCli(
      [
        'node',
        'copy',
        members.find((m) => !m.roles.includes('lb'))!.id,
        '--wait',
        '--json',
        '--api',
        printed.apis[0]!,
      ],
      {
        SHOAL_TOKEN: printed.token,
      },
    )
    expect(copied.code).toBe(0)
    const copy = (JSON.parse(copied.stdout) as { nodes: Array<{ id: string }> }).nodes[0]!.id
    const after = (await (await fetch(`${printed.apis[0]}/api/members`, auth)).json()) as Array<{
      id: string
    }>
    expect(after.some((m) => m.id === copy)).toBe(true)

    demo.kill('SIGTERM')
    expect(await exit).toBe(0)
    for (const api of printed.apis) await expect(fetch(`${api}/api/health`)).rejects.toThrow()
    const leftovers = await new Promise<string>((done) =>
      execFile('pgrep', ['-f', dir], (_err, stdout) => done(stdout.trim())),
    )
    expect(leftovers).toBe('')
  })
})

/**
 * Processes (not zombies) whose command line or environment mentions `dir`:
 * agents, the load balancer, and components (marked SHOAL_RUNTIME_DATA=<their agent's data folder>).
 */
async function processesOf(dir: string): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
    if (stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '')
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (cmdline.includes(dir) || environ.includes(dir)) found.push(`${pid} ${cmdline.replaceAll('\0', ' ')}`)
  }
  return found
}

/**
 * Ctrl-C in a terminal sends SIGINT to the whole foreground process group (the
 * demo and every agent and load balancer it spawned); a service manager sends
 * SIGTERM to every process at once. Either is one request to stop.
 */
describe('shoal demo stopped through its process group', () => {
  const dirs: string[] = []
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} to the group stops the agents gracefully, the load balancer and every component`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'shoal-demo-signal-'))
      dirs.push(dir)
      // A process group of its own, as a shell's job control gives a foreground command.
      const demo = spawn(process.execPath, [CLI, 'demo', '--json', '--nodes', '3', '--data', dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
        detached: true,
      })
      const exit = new Promise<number | null>((done) => demo.once('exit', (code) => done(code)))
      const line = await new Promise<string>((done, fail) => {
        createInterface({ input: demo.stdout! }).once('line', done)
        void exit.then((code) => fail(new Error(`the demo exited with ${code} before it was up`)))
      })
      const printed = JSON.parse(line) as { app: string; apis: string[] }
      expect((await fetch(printed.app)).ok).toBe(true)
      const components = (await processesOf(dir)).filter((p) => p.includes('/components/'))
      expect(components.length).toBeGreaterThanOrEqual(6)

      process.kill(-demo.pid!, signal)
      // Generous: three agents drain and leave, each stops two components, on a loaded machine.
      const code = await Promise.race([
        exit,
        new Promise((done) => setTimeout(() => done('timeout'), 150_000)),
      ])
      expect(code).toBe(0)

      for (const node of ['node-1', 'node-2', 'node-3']) {
        const log = await readFile(join(dir, node, 'agent.log'), 'utf8')
        expect(log).not.toContain('second SIG')
        expect(log).toMatch(/agent stopped .*left=true/)
      }
      // Nothing it started outlives it (a child may take a moment to be reaped by init).
      await waitFor('no process of the demo', async () => (await processesOf(dir)).length === 0, {
        timeout: 10_000,
      }).catch(async () => expect(await processesOf(dir)).toEqual([]))
    }, 300_000)
  }
})
