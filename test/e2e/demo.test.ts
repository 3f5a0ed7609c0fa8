import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI, runCli } from '../helpers/processes.js'

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
    const printed = JSON.parse(line) as { app: unknown; dashboard: string; apis: string[]; token: string }
    expect(printed.apis).toHaveLength(3)
    // The demo's agents take tokens: its admin token is printed, and nothing is open without it.
    expect(printed.token).toMatch(/^\S{16,}$/)
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
    const lb = (await (await fetch(`${String(printed.app)}/_shoal/lb`)).json()) as {
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
