import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeNewKeyPair } from '../../src/artifacts/index.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { writeNewSecret } from '../../src/bootstrap/index.js'
import { ProviderError } from '../../src/providers/errors.js'
import { HANDLE_KEY, PROVIDER_KEY } from '../../src/providers/index.js'
import type { NodeSpec } from '../../src/providers/provider.js'
import {
  remotePath,
  StaticProvider,
  type StaticProviderInit,
  shellQuote,
} from '../../src/providers/static.js'
import { createLogger } from '../../src/shared/logger.js'
import { TestCluster } from '../helpers/cluster.js'
import { CLI } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { freePort, type Sshd, sshdUnavailable, startSshd } from '../helpers/sshd.js'
import { waitFor } from '../helpers/wait.js'

const execFileAsync = promisify(execFile)
const log = createLogger({ level: 'silent' })

const unavailable = skipReason(
  import.meta.url,
  'static provider against a real sshd',
  sshdUnavailable() ?? (existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`),
)

/** Alive and not a zombie (launched agents are orphans; init may not reap them here). */
async function isRunning(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  const fields = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  return fields != null && fields.slice(fields.lastIndexOf(')') + 2)[0] !== 'Z'
}

describe('shell quoting for the remote side', () => {
  it('quotes any word and expands ~/ to the home folder', async () => {
    const word = `it's a "test" $HOME \`x\` \\ ;|&`
    const { stdout } = await execFileAsync('sh', ['-c', `printf %s ${shellQuote(word)}`])
    expect(stdout).toBe(word)
    const path = await execFileAsync('sh', ['-c', `D=${remotePath("~/a b/it's/")}; printf %s "$D"`], {
      env: { ...process.env, HOME: '/home/x y' },
    })
    expect(path.stdout).toBe("/home/x y/a b/it's")
    expect(remotePath('/srv/shoal')).toBe("'/srv/shoal'")
  })

  it('refuses data folders that a relaunch could wipe by mistake', () => {
    const init = (dataDir: string): StaticProviderInit => ({
      hosts: [{ host: '127.0.0.1', user: 'root', identityFile: '/nonexistent' }],
      shoalCommand: ['shoal'],
      dataDir,
      launchedBy: 'test',
      startTimeoutMs: 1000,
      stopTimeoutMs: 1000,
    })
    for (const dir of ['', '~', '~/', '/', '/srv', '~/..', '~other/x'])
      expect(() => new StaticProvider(init(dir), log), dir).toThrow(/dataDir/)
    expect(
      () =>
        new StaticProvider(
          { ...init('~/.shoal-node'), hosts: [{ ...init('').hosts[0]!, host: 'db1' }] },
          log,
        ),
    ).toThrow(/needs an "address"/)
    expect(new StaticProvider(init('~/.shoal-node'), log).name).toBe('static')
  })
})

describe.skipIf(unavailable != null)('static provider against a real sshd on loopback', () => {
  let sshd: Sshd
  const cluster = new TestCluster()
  let seed: Agent
  let dataDir: string
  let spec: NodeSpec
  let unreachablePort: number

  const provider = (overrides: Partial<StaticProviderInit> = {}) =>
    new StaticProvider(
      {
        hosts: [
          // Nothing listens there: the provider says so and goes on to the next host.
          { host: '127.0.0.1', port: unreachablePort, user: sshd.user, identityFile: sshd.identityFile },
          { host: '127.0.0.1', port: sshd.port, user: sshd.user, identityFile: sshd.identityFile },
        ],
        shoalCommand: [process.execPath, CLI],
        dataDir,
        launchedBy: seed.id,
        startTimeoutMs: 20_000,
        stopTimeoutMs: 10_000,
        knownHostsFile: sshd.knownHostsFile,
        ...overrides,
      },
      log,
    )

  beforeAll(async () => {
    sshd = await startSshd()
    unreachablePort = await freePort()
    dataDir = join(sshd.dir, 'host', 'shoal-node')
    const secretFile = join(sshd.dir, 'cluster.secret')
    await writeNewSecret(secretFile)
    const { publicFile } = await writeNewKeyPair(join(sshd.dir, 'publisher.key'))
    seed = await cluster.start({ secretFile, trust: [publicFile] })
    spec = {
      cluster: cluster.cluster,
      secretFile,
      tokensFile: null,
      trust: [publicFile],
      bootstrap: [seed.membership.self.addrs[0]!],
      roles: ['web'],
      tags: { zone: 'a b' },
      preset: 'test',
      mdns: false,
    }
  })

  afterAll(async () => {
    // A node a failed assertion left running.
    const run = await readFile(join(dataDir ?? '/nonexistent', 'agent.json'), 'utf8').catch(() => null)
    if (run != null) {
      const { pid } = JSON.parse(run) as { pid: number }
      if (await isRunning(pid)) process.kill(pid, 'SIGKILL')
    }
    await cluster.cleanup()
    await sshd?.stop()
  })

  it("fails with the agent's last log lines when it does not start", async () => {
    const steps: string[] = []
    const failed = provider({ shoalCommand: [process.execPath, join(sshd.dir, 'no-such-cli.js')] }).launch(
      spec,
      (step) => steps.push(step),
    )
    await expect(failed).rejects.toBeInstanceOf(ProviderError)
    await expect(failed).rejects.toMatchObject({
      code: 'ERR_PROVIDER',
      message: expect.stringMatching(
        /static provider: the agent on .* exited; last log lines:\n[\s\S]*Cannot find module/,
      ),
    })
    expect(steps).toEqual([
      `trying ${sshd.user}@127.0.0.1:${unreachablePort}`,
      `trying ${sshd.user}@127.0.0.1:${sshd.port}`,
    ])
  })

  // Retried: on a loaded machine the killed stand-in can still be exiting when the next launch
  // checks the host (the provider then rightly finds it busy).
  it('kills an agent that does not start in time, and one that ignores SIGTERM', { retry: 2 }, async () => {
    // Stand-ins for `shoal`: one never writes its run file, the other writes it and ignores SIGTERM.
    const fake = join(sshd.dir, 'fake-agent.mjs')
    await writeFile(
      fake,
      [
        "import { writeFileSync } from 'node:fs'",
        "const data = process.argv[process.argv.indexOf('--data') + 1]",
        "process.on('SIGTERM', () => {})",
        "if (process.argv.includes('--role')) writeFileSync(data + '/agent.json', JSON.stringify({ pid: process.pid, id: 'fake', api: 'http://127.0.0.1:1' }))",
        'setInterval(() => {}, 1000)',
      ].join('\n'),
    )
    const p = provider({ shoalCommand: [process.execPath, fake], startTimeoutMs: 1000, stopTimeoutMs: 1000 })
    const slow = p.launch({ ...spec, roles: [] }, () => undefined)
    await expect(slow).rejects.toThrow(
      /the agent on .* did not start in 1000 ms; last log lines:\n\(the log is empty\)/,
    )
    expect(await readFile(join(dataDir, 'agent.pid'), 'utf8').then((pid) => isRunning(Number(pid)))).toBe(
      false,
    )

    const stubborn = await provider({ shoalCommand: [process.execPath, fake], stopTimeoutMs: 1000 }).launch(
      spec,
      () => undefined,
    )
    expect(stubborn.id).toBe('fake')
    const { pid } = JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8')) as { pid: number }
    await p.terminate({ handle: stubborn.handle }, () => undefined)
    expect(await isRunning(pid)).toBe(false)
  })

  it('launches a node over SSH that joins; no free host for a second; terminate stops it', async () => {
    const handle = `${sshd.user}@127.0.0.1:${sshd.port}`
    const steps: string[] = []
    const p = provider()
    const node = await p.launch(spec, (step) => steps.push(step))
    expect(node).toMatchObject({
      provider: 'static',
      handle,
      state: 'running',
      launchedBy: seed.id,
      roles: ['web'],
      tags: { zone: 'a b' },
      error: null,
    })
    expect(node.id).toMatch(/^12D3/)
    expect(node.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+/)
    expect(steps.at(-1)).toBe(`agent ${node.id} runs on ${handle}`)
    // The secret went over SSH with mode 0600 (the "host" is this machine).
    expect((await stat(join(dataDir, 'cluster.secret'))).mode & 0o777).toBe(0o600)
    const { pid } = JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8')) as { pid: number }
    expect(await isRunning(pid)).toBe(true)

    // The seed sees it alive, announcing who launched it and how to find it.
    const id = node.id!
    await cluster.waitForState([seed], id, 'alive')
    const member = seed.membership.get(id)!
    expect(member.meta[PROVIDER_KEY]).toBe('static')
    expect(member.meta[HANDLE_KEY]).toBe(handle)

    // The only reachable host runs it: a second launch (even by another provider instance) finds none free.
    const second = provider().launch(spec, () => undefined)
    await expect(second).rejects.toMatchObject({
      code: 'ERR_PROVIDER',
      message: expect.stringContaining('no free host'),
    })
    await expect(second).rejects.toThrow(new RegExp(`${handle}: an agent runs \\(pid ${pid}\\)`))
    await expect(second).rejects.toThrow(
      `${sshd.user}@127.0.0.1:${unreachablePort}: ssh failed: ssh: connect to host 127.0.0.1 port ${unreachablePort}: Connection refused`,
    )

    // Terminate: SIGTERM over SSH, the node leaves gracefully, its process is gone.
    const stopSteps: string[] = []
    await p.terminate({ handle }, (step) => stopSteps.push(step))
    expect(stopSteps).toEqual([`stopping the agent on ${handle}`, 'the agent process has exited'])
    expect(await isRunning(pid)).toBe(false)
    await waitFor('the seed to see the node gone', () => {
      const state = seed.membership.get(id)?.state
      return state === 'left' || state === 'dead'
    })
    // Terminating again is harmless; an unknown handle is refused.
    await p.terminate({ handle }, () => undefined)
    await expect(p.terminate({ handle: 'root@elsewhere:22' }, () => undefined)).rejects.toMatchObject({
      code: 'ERR_PROVIDER',
    })

    // The host is free again: a relaunch starts a new node there (fresh data folder, new identity).
    const again = await p.launch(spec, () => undefined)
    expect(again.id).not.toBe(id)
    await cluster.waitForState([seed], again.id!, 'alive')
    await p.terminate({ handle }, () => undefined)
    await waitFor(
      'the seed to see the relaunched node gone',
      () => seed.membership.get(again.id!)?.state !== 'alive',
    )
  })
})
