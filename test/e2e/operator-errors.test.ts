import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusView } from '../../src/api/index.js'
import { EXIT } from '../../src/cli/exit-codes.js'
import { type AgentProcess, type CliResult, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The usual operator mistakes at start, through the real `shoal` binary: each
 * ends the process with one error line (never a stack trace) carrying a stable
 * code, and the exit code docs/cli.md gives it.
 */
describe('operator mistakes at start: one line, a stable code, a fitting exit code', () => {
  let dir: string
  let blocker: Server
  /** A loopback TCP port held by this test process. */
  let taken: number

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-mistakes-'))
    blocker = createServer()
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done))
    taken = (blocker.address() as { port: number }).port
  })

  afterAll(async () => {
    await new Promise((done) => blocker?.close(done))
    await rm(dir, { recursive: true, force: true })
  })

  let runs = 0
  /** `shoal agent` on loopback with a data folder of its own; `overrides` replace the defaults by flag. */
  const agent = (overrides: Record<string, string> = {}, ...extra: string[]) => {
    const flags = {
      '--cluster': 'mistakes',
      '--data': join(dir, `agent-${++runs}`),
      '--listen': '/ip4/127.0.0.1/tcp/0',
      '--api': '127.0.0.1:0',
      '--preset': 'test',
      ...overrides,
    }
    return runCli(['agent', ...Object.entries(flags).flat(), '--no-mdns', ...extra])
  }
  const lb = (overrides: Record<string, string> = {}, ...extra: string[]) => {
    const flags = {
      '--cluster': 'mistakes',
      '--data': join(dir, `lb-${++runs}`),
      '--listen': '127.0.0.1:0',
      '--admin': '127.0.0.1:0',
      '--p2p-listen': '/ip4/127.0.0.1/tcp/0',
      '--preset': 'test',
      ...overrides,
    }
    return runCli(['lb', ...Object.entries(flags).flat(), '--no-mdns', ...extra])
  }

  /**
   * The one error line of a failed start (`error: MESSAGE (CODE)`); `alone`: stderr
   * holds nothing else (no log line either, as the mistake stopped it before anything started).
   */
  function failure(result: CliResult, exitCode: number, code: string, alone = true): string {
    expect(result.code, result.stderr).toBe(exitCode)
    expect(result.stdout).toBe('')
    expect(result.stderr, 'no stack trace').not.toMatch(/^\s+at /m)
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error: '))
    expect(errors, result.stderr).toHaveLength(1)
    expect(errors[0]).toMatch(new RegExp(`^error: .+ \\(${code}\\)$`))
    if (alone) expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1)
    return errors[0]!
  }

  /** The `{"error":{...}}` line of a failed start with --json. */
  function jsonFailure(result: CliResult, exitCode: number, code: string): { code: string; message: string } {
    expect(result.code, result.stderr).toBe(exitCode)
    expect(result.stderr).not.toMatch(/^\s+at /m)
    const last = result.stderr.trim().split('\n').at(-1)!
    const { error } = JSON.parse(last) as { error: { code: string; message: string } }
    expect(error.code).toBe(code)
    expect(error.message).not.toContain('\n')
    return error
  }

  it('a libp2p port in use: ERR_PORT_IN_USE naming the address, exit 1', async () => {
    const addr = `/ip4/127.0.0.1/tcp/${taken}`
    const line = failure(await agent({ '--listen': addr }), EXIT.failed, 'ERR_PORT_IN_USE')
    expect(line).toContain(`cannot listen on ${addr}: the port is in use by another process`)
    jsonFailure(await agent({ '--listen': addr }, '--json'), EXIT.failed, 'ERR_PORT_IN_USE')
    // The load balancer's libp2p side says the same.
    failure(await lb({ '--p2p-listen': addr }), EXIT.failed, 'ERR_PORT_IN_USE')
  })

  it('an API port in use: ERR_API_ADDRESS_IN_USE naming --api, exit 1', async () => {
    // Checked before anything starts: the error is the only line.
    const line = failure(
      await agent({ '--api': `127.0.0.1:${taken}` }),
      EXIT.failed,
      'ERR_API_ADDRESS_IN_USE',
    )
    expect(line).toContain(`127.0.0.1:${taken} is in use; pass another --api`)
    jsonFailure(
      await agent({ '--api': `127.0.0.1:${taken}` }, '--json'),
      EXIT.failed,
      'ERR_API_ADDRESS_IN_USE',
    )
  })

  it("the load balancer's HTTP port in use: ERR_PORT_IN_USE, exit 1", async () => {
    const line = failure(await lb({ '--listen': `127.0.0.1:${taken}` }), EXIT.failed, 'ERR_PORT_IN_USE')
    expect(line).toContain(
      `cannot listen on 127.0.0.1:${taken} (--listen): the port is in use by another process`,
    )
    jsonFailure(await lb({ '--listen': `127.0.0.1:${taken}` }, '--json'), EXIT.failed, 'ERR_PORT_IN_USE')
    const admin = failure(await lb({ '--admin': `127.0.0.1:${taken}` }), EXIT.failed, 'ERR_PORT_IN_USE')
    expect(admin).toContain(
      `cannot listen on 127.0.0.1:${taken} (--admin): the port is in use by another process`,
    )
  })

  it('a missing, folder or foreign secret file: ERR_SECRET_FILE saying what to do, exit 1', async () => {
    const folder = join(dir, 'secret-folder')
    await mkdir(folder)
    const junk = join(dir, 'junk.secret')
    await writeFile(junk, 'not a swarm key\n')
    const cases: Array<[string, string]> = [
      [
        join(dir, 'nope.secret'),
        'does not exist; copy the cluster\'s secret there, or make one for a new cluster with "shoal secret new',
      ],
      [folder, 'is a folder; pass the secret file itself'],
      [junk, 'is not a cluster secret; pass the file "shoal secret new FILE" wrote'],
    ]
    for (const [file, says] of cases) {
      expect(failure(await agent({ '--secret-file': file }), EXIT.failed, 'ERR_SECRET_FILE')).toContain(says)
      jsonFailure(await agent({ '--secret-file': file }, '--json'), EXIT.failed, 'ERR_SECRET_FILE')
    }
    // The load balancer reads it before it makes its data folder.
    const data = join(dir, 'lb-no-secret')
    failure(
      await lb({ '--secret-file': join(dir, 'nope.secret'), '--data': data }),
      EXIT.failed,
      'ERR_SECRET_FILE',
    )
    expect(existsSync(data)).toBe(false)
  })

  it('a data folder held by a running agent: ERR_DATA_DIR_IN_USE, and the running agent is untouched', async () => {
    const data = join(dir, 'shared-data')
    let first: AgentProcess | undefined
    try {
      first = await spawnAgent(
        [
          '--cluster',
          'mistakes',
          '--data',
          data,
          '--listen',
          '/ip4/127.0.0.1/tcp/0',
          '--api',
          '127.0.0.1:0',
        ].concat(['--no-mdns', '--preset', 'test']),
        dir,
      )
      const line = failure(await agent({ '--data': data }), EXIT.failed, 'ERR_DATA_DIR_IN_USE')
      expect(line).toContain(
        `data folder ${data} is in use by another agent; stop it or pass a different --data`,
      )
      jsonFailure(await agent({ '--data': data }, '--json'), EXIT.failed, 'ERR_DATA_DIR_IN_USE')
      const status = await runCli(['status', '--json', '--api', first.info.api])
      expect(status.code, status.stderr).toBe(0)
      expect((JSON.parse(status.stdout) as StatusView).id).toBe(first.info.id)
      expect(first.child.exitCode).toBeNull()
    } finally {
      await first?.stop('SIGKILL')
    }
  })

  it('an agent that can install nothing and looks for no peers, with a loose tokens file: one warning line each', async () => {
    const tokens = join(dir, 'loose.tokens')
    await writeFile(
      tokens,
      JSON.stringify({ tokens: [{ name: 'ops', role: 'admin', token: 'a'.repeat(24) }] }),
      {
        mode: 0o644,
      },
    )
    const logDir = await mkdtemp(join(tmpdir(), 'shoal-warn-'))
    let lone: AgentProcess | undefined
    try {
      lone = await spawnAgent(
        ['--cluster', 'mistakes', '--data', join(dir, 'lone'), '--listen', '/ip4/127.0.0.1/tcp/0'].concat([
          '--api',
          '127.0.0.1:0',
          '--tokens',
          tokens,
          '--no-mdns',
          '--preset',
          'test',
        ]),
        logDir,
      )
      const logFile = join(logDir, (await readdir(logDir)).find((f) => f.endsWith('.log'))!)
      const warnings = await waitFor('the start warnings', async () => {
        const lines = (await readFile(logFile, 'utf8')).split('\n').filter((l) => l.includes(' WARN '))
        return lines.length >= 3 ? lines : null
      })
      expect(warnings.join('\n')).toContain(
        `tokens file ${tokens} is readable by others (mode 0644); chmod 600`,
      )
      expect(warnings.join('\n')).toContain('no --trust was given')
      expect(warnings.join('\n')).toContain('no --bootstrap was given and mDNS is off')
    } finally {
      await lone?.stop('SIGTERM')
      await rm(logDir, { recursive: true, force: true })
    }
  })

  it('a malformed --bootstrap: ERR_BAD_BOOTSTRAP, exit 2, before anything is made', async () => {
    const cases: Array<[string, string]> = [
      ['/ip4/127.0.0.1/tcpx/7946', 'is not a multiaddr'],
      ['10.0.0.5:7946', 'is HOST:PORT, not a multiaddr: write /ip4/10.0.0.5/tcp/7946'],
      ['/ip4/10.0.0.5', 'is not an address this node can dial'],
      ['/ip4/10.0.0.5/tcp/7946/p2p/not-a-peer', 'ends in /p2p/not-a-peer, which is not a peer id'],
    ]
    for (const [address, says] of cases) {
      const data = join(dir, 'never-made')
      const line = failure(
        await agent({ '--bootstrap': address, '--data': data }),
        EXIT.usage,
        'ERR_BAD_BOOTSTRAP',
      )
      expect(line).toContain(`--bootstrap "${address}" ${says}`)
      jsonFailure(await agent({ '--bootstrap': address }, '--json'), EXIT.usage, 'ERR_BAD_BOOTSTRAP')
      expect(existsSync(data)).toBe(false)
    }
    // The load balancer validates the same way.
    failure(await lb({ '--bootstrap': '10.0.0.5:7946' }), EXIT.usage, 'ERR_BAD_BOOTSTRAP')
  })

  it('a listen address that is not TCP: ERR_CONFIG, exit 2', async () => {
    const line = failure(await agent({ '--listen': '/ip4/127.0.0.1/udp/7946' }), EXIT.usage, 'ERR_CONFIG')
    expect(line).toContain('libp2p listen address "/ip4/127.0.0.1/udp/7946" is not /ip4/HOST/tcp/PORT')
  })
})
