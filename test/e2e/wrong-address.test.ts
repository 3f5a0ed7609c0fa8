import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/shared/ports.js'
import { type AgentProcess, CLI, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const TOKEN = 'wrong-address-admin-token-0123456789'

/**
 * `--api` pointing at something that is not an agent (issue 16): the CLI says what
 * it is, exits 3 with ERR_NOT_AN_AGENT, and the token never leaves for it.
 */
describe('shoal pointed at the wrong address', () => {
  let dir: string
  let agent: AgentProcess
  let lb: ChildProcess
  let lbExit: Promise<number | null>
  let lbUrl: string
  /** Its admin listener (status, metrics). */
  let lbAdmin: string
  let metricsUrl: string
  let app: Server
  let appUrl: string
  /** Every request the stand-in application received, with its headers. */
  const received: { method: string; url: string; headers: IncomingHttpHeaders }[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-wrong-address-'))
    const tokens = join(dir, 'tokens.json')
    await writeFile(tokens, JSON.stringify({ tokens: [{ token: TOKEN, role: 'admin', name: 'e2e' }] }), {
      mode: 0o600,
    })
    const seedPort = await freePort()
    agent = await spawnAgent(
      [
        '--cluster',
        'e2e-wrong',
        '--data',
        join(dir, 'agent'),
        '--listen',
        `/ip4/127.0.0.1/tcp/${seedPort}`,
        '--api',
        `127.0.0.1:${await freePort()}`,
        '--tokens',
        tokens,
        '--no-mdns',
        '--preset',
        'test',
      ],
      dir,
    )

    const metricsPort = await freePort()
    lb = spawn(
      process.execPath,
      [
        CLI,
        'lb',
        '--cluster',
        'e2e-wrong',
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--admin',
        '127.0.0.1:0',
        '--metrics',
        `127.0.0.1:${metricsPort}`,
        '--data',
        join(dir, 'lb'),
        '--bootstrap',
        `/ip4/127.0.0.1/tcp/${seedPort}`,
        '--p2p-listen',
        '/ip4/127.0.0.1/tcp/0',
        '--no-mdns',
        '--preset',
        'test',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    lbExit = new Promise((resolve) => lb.once('exit', resolve))
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: lb.stdout! }).once('line', resolve),
    )
    ;({ url: lbUrl, admin: lbAdmin } = JSON.parse(line) as { url: string; admin: string })
    metricsUrl = `http://127.0.0.1:${metricsPort}`
    await waitFor(
      'the metrics port',
      async () => (await fetch(`${metricsUrl}/metrics`).catch(() => null))?.ok,
    )

    app = createServer((req, res) => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
    })
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  }, 60_000)

  afterAll(async () => {
    app?.closeAllConnections()
    await new Promise((resolve) => app?.close(resolve))
    if (lb != null && lb.exitCode == null) lb.kill('SIGTERM')
    expect(await lbExit).toBe(0)
    expect(await agent?.stop('SIGTERM')).toBe(0)
    await rm(dir, { recursive: true, force: true })
  })

  /** The one line on stderr, `error: MESSAGE (CODE)`. */
  const errorLine = (stderr: string) => {
    const lines = stderr.trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    return lines[0]!
  }

  it('works against the agent with its token, and is refused without one', async () => {
    const api = agent.info.api
    const ok = await runCli(['members', '--json', '--api', api, '--token', TOKEN])
    expect(ok.code).toBe(0)
    expect((JSON.parse(ok.stdout) as { id: string }[]).map((m) => m.id)).toContain(agent.info.id)
    const fromEnv = await runCli(['status', '--json', '--api', api], { SHOAL_TOKEN: TOKEN })
    expect(fromEnv.code).toBe(0)
    const refused = await runCli(['members', '--api', api], { SHOAL_TOKEN: '' })
    expect(refused.code).toBe(4)
    expect(errorLine(refused.stderr)).toMatch(/\(ERR_UNAUTHORIZED\)$/)
  })

  it('names a load balancer, exits 3 with ERR_NOT_AN_AGENT', async () => {
    const result = await runCli(['members', '--api', lbUrl, '--token', TOKEN])
    expect(result.code).toBe(3)
    expect(result.stdout).toBe('')
    expect(errorLine(result.stderr)).toBe(
      `error: ${lbUrl} is a Shoal load balancer (the application's address), not an agent's API; pass --api with an agent's API address (shoal agent --api, default http://127.0.0.1:7070) (ERR_NOT_AN_AGENT)`,
    )
    // Its admin listener, where its status is, is named as such.
    const admin = await runCli(['members', '--api', lbAdmin, '--token', TOKEN])
    expect(admin.code).toBe(3)
    expect(errorLine(admin.stderr)).toBe(
      `error: ${lbAdmin} is a Shoal load balancer's admin listener (service web), not an agent's API; pass --api with an agent's API address (shoal agent --api, default http://127.0.0.1:7070) (ERR_NOT_AN_AGENT)`,
    )
    const json = await runCli(['rollout', 'educa@1.1', '--json', '--api', lbUrl, '--token', TOKEN])
    expect(json.code).toBe(3)
    expect(JSON.parse(errorLine(json.stderr)).error).toMatchObject({
      code: 'ERR_NOT_AN_AGENT',
      message: expect.stringContaining('is a Shoal load balancer'),
    })
  })

  it("names the load balancer's metrics port", async () => {
    const result = await runCli(['status', '--api', metricsUrl, '--token', TOKEN])
    expect(result.code).toBe(3)
    expect(errorLine(result.stderr)).toBe(
      `error: ${metricsUrl} is a Shoal metrics port (it serves only GET /metrics), not an agent's API; pass --api with an agent's API address (shoal agent --api, default http://127.0.0.1:7070) (ERR_NOT_AN_AGENT)`,
    )
  })

  it('sends no token to an HTTP server that is not an agent: one probe, no credentials', async () => {
    received.length = 0
    const commands = [['members'], ['status'], ['rollout', 'educa@1.1', '--wait'], ['rollouts'], ['nodes']]
    for (const command of commands) {
      const result = await runCli([...command, '--api', appUrl, '--token', TOKEN])
      expect(result.code).toBe(3)
      expect(errorLine(result.stderr)).toBe(
        `error: ${appUrl} is not a Shoal agent (GET /_shoal/lb answered HTTP 404 application/json); pass --api with an agent's API address (shoal agent --api, default http://127.0.0.1:7070) (ERR_NOT_AN_AGENT)`,
      )
    }
    // SHOAL_TOKEN and SHOAL_API too.
    const fromEnv = await runCli(['members'], { SHOAL_API: appUrl, SHOAL_TOKEN: TOKEN })
    expect(fromEnv.code).toBe(3)
    expect(received).toHaveLength(commands.length + 1)
    for (const request of received) {
      expect(request).toMatchObject({ method: 'GET', url: '/_shoal/lb' })
      expect(request.headers.authorization).toBeUndefined()
      expect(JSON.stringify(request.headers)).not.toContain(TOKEN)
    }
  })

  it('nothing listening is still ERR_AGENT_UNREACHABLE, exit 3', async () => {
    const result = await runCli(['members', '--api', `127.0.0.1:${await freePort()}`, '--token', TOKEN])
    expect(result.code).toBe(3)
    expect(errorLine(result.stderr)).toMatch(/^error: cannot reach an agent at .*\(ERR_AGENT_UNREACHABLE\)$/)
  })

  it('checks the numeric rollout flags before sending anything: exit 2, in the CLI words', async () => {
    received.length = 0
    const cases: [string[], string][] = [
      [['--strategy', 'rolling', '--max-unavailable', '150%'], '--max-unavailable is N (≥ 1) or P% (1–100%)'],
      [['--max-unavailable', '0'], '--max-unavailable is N (≥ 1) or P% (1–100%)'],
      [['--max-unavailable', '1.5'], '--max-unavailable is N (≥ 1) or P% (1–100%)'],
      [['--strategy', 'canary', '--canary', '150'], '--canary is a percent of the nodes, 1–100'],
      [['--canary', '0%'], '--canary is a percent of the nodes, 1–100'],
      [['--min-ready', '4000'], '--min-ready is seconds, 0–3600 (fractions allowed)'],
      [['--min-ready', 'soon'], '--min-ready is seconds, 0–3600 (fractions allowed)'],
      [['--failure-threshold', '0'], '--failure-threshold is a whole number of nodes (≥ 1)'],
      [['--wait', '--timeout', '0'], '--timeout is whole seconds (≥ 1)'],
    ]
    for (const [flags, says] of cases) {
      const result = await runCli(['rollout', 'educa@1.1', ...flags, '--api', appUrl, '--token', TOKEN])
      expect(result.code, flags.join(' ')).toBe(2)
      expect(result.stderr).toContain(says)
      const json = await runCli(['rollout', 'educa@1.1', ...flags, '--json', '--api', appUrl])
      expect(json.code).toBe(2)
      expect(JSON.parse(errorLine(json.stderr)).error).toMatchObject({
        code: 'ERR_USAGE',
        message: expect.stringContaining(says),
      })
    }
    for (const command of [
      ['rollback', 'educa', '--max-unavailable', '101%'],
      ['rollout', 'undo', 'educa', '--max-unavailable', '-1'],
      ['rollout', 'status', 'r1', '--watch', '--timeout', 'never'],
    ]) {
      const result = await runCli([...command, '--api', appUrl])
      expect(result.code, command.join(' ')).toBe(2)
    }
    expect(received).toEqual([])
  })

  it('takes the accepted forms to the agent', async () => {
    // A rollout of an unknown distribution: the flags passed the CLI and the agent's
    // checks; only the distribution is refused.
    const result = await runCli([
      'rollout',
      'nothing@1.0',
      '--strategy',
      'rolling',
      '--max-unavailable',
      '100%',
      '--min-ready',
      '0.5',
      '--failure-threshold',
      '2',
      '--api',
      agent.info.api,
      '--token',
      TOKEN,
    ])
    expect(result.code).toBe(4)
    expect(errorLine(result.stderr)).toMatch(/\(ERR_UNKNOWN_DISTRIBUTION\)$/)
  })
})
