import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI } from '../helpers/processes.js'

describe('shoal demo', () => {
  const dirs: string[] = []
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
  })

  it('starts a local cluster, prints one JSON line once it is up, and stops everything on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-demo-'))
    dirs.push(dir)
    const demo = spawn(process.execPath, [CLI, 'demo', '--json', '--nodes', '3', '--data', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exit = new Promise<number | null>((done) => demo.once('exit', (code) => done(code)))
    const line = await new Promise<string>((done) =>
      createInterface({ input: demo.stdout! }).once('line', done),
    )
    const printed = JSON.parse(line) as { app: unknown; dashboard: string; apis: string[]; token: unknown }
    expect(printed.apis).toHaveLength(3)
    expect(printed.dashboard).toBe(printed.apis[0])
    for (const api of printed.apis) {
      const members = (await (await fetch(`${api}/api/members`)).json()) as Array<{ state: string }>
      expect(members.map((m) => m.state)).toEqual(['alive', 'alive', 'alive'])
    }
    const page = await fetch(printed.dashboard)
    expect(page.headers.get('content-type')).toContain('text/html')

    demo.kill('SIGTERM')
    expect(await exit).toBe(0)
    for (const api of printed.apis) await expect(fetch(`${api}/api/health`)).rejects.toThrow()
  })
})
