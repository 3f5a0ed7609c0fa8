import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import type { ProxyStatus } from '../../src/loadbalancer/index.js'
import { freePort } from '../../src/shared/ports.js'
import { runLoad, steadyLoad } from '../helpers/load.js'
import { type AgentProcess, CLI, componentPids, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

describe('shoal lb in front of agent processes', () => {
  let dir: string
  let seedPort: number
  let lbUrl: string
  /** Its admin listener (status, metrics). */
  let lbAdmin: string
  let stopLb: () => Promise<void>
  const agents = new Map<string, AgentProcess>()

  const cli = async (...args: string[]) => {
    const result = await runCli(args)
    if (result.code !== 0) throw new Error(`shoal ${args.join(' ')} failed: ${result.stderr}`)
    return result.stdout
  }
  const status = async () => (await (await fetch(`${lbAdmin}/_shoal/lb`)).json()) as ProxyStatus
  const readyBackends = async () => (await status()).backends.filter((b) => b.state === 'ready').length

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-lb-'))
    seedPort = await freePort()
    await cli('key', 'new', join(dir, 'pub.key'))
    for (const name of ['a', 'b', 'c']) {
      const args = [
        '--cluster',
        'e2e-lb',
        '--data',
        join(dir, name),
        '--api',
        `127.0.0.1:${await freePort()}`,
      ]
      args.push(
        '--listen',
        `/ip4/127.0.0.1/tcp/${name === 'a' ? seedPort : 0}`,
        '--no-mdns',
        '--preset',
        'test',
      )
      args.push('--trust', join(dir, 'pub.key.pub'))
      if (name !== 'a') args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
      agents.set(name, await spawnAgent(args, dir))
    }
    const api = agents.get('a')!.info.api
    const builds = await buildEduca(join(dir, 'build'))
    await waitFor(
      'three members',
      async () => JSON.parse(await cli('members', '--json', '--api', api)).length === 3,
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
      api,
    )
    await cli('rollout', 'educa@1.0', '--wait', '--api', api)

    const lb = spawn(
      process.execPath,
      [
        CLI,
        'lb',
        '--cluster',
        'e2e-lb',
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--admin',
        '127.0.0.1:0',
        '--data',
        join(dir, 'lb'),
      ]
        .concat(['--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`, '--p2p-listen', '/ip4/127.0.0.1/tcp/0'])
        .concat(['--no-mdns', '--preset', 'test', '--log-level', 'warn']),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exit = new Promise<number | null>((resolve) => lb.once('exit', resolve))
    stopLb = async () => {
      if (lb.exitCode == null) lb.kill('SIGTERM')
      expect(await exit).toBe(0)
    }
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: lb.stdout! }).once('line', resolve),
    )
    ;({ url: lbUrl, admin: lbAdmin } = JSON.parse(line) as { url: string; admin: string })
    await waitFor('three ready backends', async () => (await readyBackends()) === 3, { timeout: 20_000 })
  })

  afterAll(async () => {
    await stopLb?.()
    for (const agent of agents.values()) await agent.stop('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  })

  it('a canary judged by the load balancer: a bad --analysis is a usage error; the failing 1.2 is sent back at its first step and status shows the verdict', async () => {
    const api = agents.get('a')!.info.api
    const refused = await runCli([
      'rollout',
      'educa@1.1',
      '--strategy',
      'canary',
      '--analysis',
      'latency<5',
      '--api',
      api,
    ])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/--analysis: analysis condition "latency<5" is not understood/)
    const builds = await buildEduca(join(dir, 'build'))
    await cli(
      'publish',
      builds['1.2'],
      '--name',
      'educa',
      '--version',
      '1.2',
      '--key',
      join(dir, 'pub.key'),
      '--api',
      api,
    )
    const stopLoad = steadyLoad(lbUrl, 60)
    try {
      const run = await runCli(
        ['rollout', 'educa@1.2', '--strategy', 'canary', '--steps', '33,100', '--analysis', 'error-rate<1%']
          .concat([
            '--analysis',
            'p99<+50ms',
            '--interval',
            '3s',
            '--min-requests',
            '20',
            '--wait',
            '--timeout',
            '180',
          ])
          .concat(['--api', api]),
      )
      expect(run.code, run.stderr).toBe(1)
      expect(run.stdout).toMatch(/step 1 \(33%\): FAIL: error-rate<1% BROKEN \(\d+(\.\d+)?%, limit 1%\)/)
      expect(run.stdout).toMatch(/→ rolled back/)
      expect(run.stderr).toMatch(/ended failed: analysis failed at step 1 \(33%\)/)
      const id = /^(r\d+) step 1/m.exec(run.stdout)![1]!
      const shown = await cli('rollout', 'status', id, '--api', api)
      expect(shown).toMatch(/steps: 33% → 100%/)
      expect(shown).toMatch(/1\s+33%\s+fail\s+\d+ req, [\d.]+% errors, p99 [\d.]+ ms\s+\d+ req, 0% errors/)
      await waitFor('every backend back on 1.0', async () =>
        (await status()).backends.every((b) => b.version === '1.0' && b.state === 'ready' && b.weight > 0),
      )
    } finally {
      const load = await stopLoad()
      expect(load.ok).toBeGreaterThan(0)
    }
  })

  it('serves educa from every node, and loses nothing while one drains and stops (SIGTERM)', async () => {
    const spread = await runLoad(lbUrl, { rate: 50, durationMs: 1000 })
    expect(spread.failed).toBe(0)
    expect(Object.keys(spread.nodes)).toHaveLength(3)

    const load = runLoad(lbUrl, { rate: 60, durationMs: 5000, paths: ['/', '/slow?ms=300'] })
    await new Promise((r) => setTimeout(r, 1500))
    expect(await agents.get('c')!.stop('SIGTERM')).toBe(0)
    const result = await load
    expect(result.failures).toEqual({})
    expect(result.ok).toBe(result.sent)
    expect(await readyBackends()).toBe(2)
  })

  it('a node killed with SIGKILL fails at most the requests in flight to it, and is dropped', async () => {
    const b = agents.get('b')!
    const id = b.info.id
    const pids = await componentPids(join(dir, 'b'))
    expect(pids.length).toBe(2)
    const load = runLoad(lbUrl, { rate: 60, durationMs: 5000, paths: ['/', '/slow?ms=200'] })
    await new Promise((r) => setTimeout(r, 1500))
    // The whole node at once: agent and components.
    for (const pid of [b.child.pid!, ...pids]) process.kill(pid, 'SIGKILL')
    await b.stop()
    await waitFor(
      'the killed node to leave the pool',
      async () => !(await status()).backends.some((x) => x.node === id),
      {
        timeout: 10_000,
      },
    )
    const result = await load
    // GETs in flight to the dead node are retried elsewhere; at worst a few fail.
    expect(result.failed).toBeLessThanOrEqual(5)
    expect(result.ok).toBeGreaterThan(result.sent - 6)
    const counters = (await status()).counters
    expect(counters.requests).toBeGreaterThan(0)
  })
})
