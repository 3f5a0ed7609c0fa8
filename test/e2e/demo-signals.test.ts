import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

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
