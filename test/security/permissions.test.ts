import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'
import { CLI, type CliResult } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'

const modeOf = async (path: string) => (await stat(path)).mode & 0o777
const octal = (mode: number) => mode.toString(8).padStart(4, '0')

/** `sh -c 'umask U; exec node CLI ARGS'`: the CLI as a user with that umask runs it. */
const UNDER_UMASK = 'umask "$0" && exec "$@"'

function cliUnderUmask(umask: string, args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      'sh',
      ['-c', UNDER_UMASK, umask, process.execPath, CLI, ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        done({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
      },
    )
  })
}

/** Spawns the CLI under `umask` and resolves once it printed its first stdout line. */
async function spawnUnderUmask(
  umask: string,
  args: string[],
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('sh', ['-c', UNDER_UMASK, umask, process.execPath, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const line = await new Promise<string>((done, fail) => {
    createInterface({ input: child.stdout! }).once('line', done)
    child.once('exit', (code) => fail(new Error(`${args[0]} exited with ${code} before printing`)))
  })
  return { child, line }
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode != null || child.signalCode != null) return Promise.resolve()
  return new Promise((done) => {
    child.once('exit', () => done())
    child.kill('SIGTERM')
  })
}

const noCli = skipReason(
  import.meta.url,
  'files written for their owner only',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

describe.skipIf(noCli != null)('keys, secrets and tokens are written for their owner only', () => {
  const dirs: string[] = []
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-perm-'))
    dirs.push(dir)
    return dir
  }
  afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))))

  it('shoal secret new and shoal key new: 0600 (the .pub 0644), even under umask 000', async () => {
    // The modes are given explicitly at creation; an open umask (000) would show any reliance on it.
    const dir = await tempDir()
    const secret = join(dir, 'cluster.secret')
    const key = join(dir, 'publisher.key')
    const made = await Promise.all([
      cliUnderUmask('000', ['secret', 'new', secret]),
      cliUnderUmask('000', ['key', 'new', key]),
    ])
    expect(made.map((r) => r.code)).toEqual([0, 0])
    expect({
      secret: octal(await modeOf(secret)),
      key: octal(await modeOf(key)),
      pub: octal(await modeOf(`${key}.pub`)),
    }).toEqual({ secret: '0600', key: '0600', pub: '0644' })
    // Neither overwrites a key or secret that exists (nor loosens it).
    const before = await readFile(secret)
    const again = await cliUnderUmask('000', ['secret', 'new', secret])
    expect(again.code).not.toBe(0)
    expect(again.stderr).toContain('ERR_FILE_EXISTS')
    expect(await readFile(secret)).toEqual(before)
    expect(await modeOf(secret)).toBe(0o600)
  })

  it('an agent makes its data folder 0700 and its peer key 0600, even under umask 000', async () => {
    const data = join(await tempDir(), 'data')
    const { child, line } = await spawnUnderUmask('000', [
      'agent',
      '--cluster',
      'perm',
      '--data',
      data,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--api',
      '127.0.0.1:0',
      '--no-mdns',
      '--preset',
      'test',
    ])
    try {
      expect(JSON.parse(line)).toMatchObject({ cluster: 'perm' })
      expect(octal(await modeOf(data))).toBe('0700')
      expect(octal(await modeOf(join(data, 'peer.key')))).toBe('0600')
    } finally {
      await stopProcess(child)
    }
  })
})

describe('the data folder of an agent', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  it('a peer key restored with loose permissions is brought back to 0600 at start', async () => {
    const dataDir = await cluster.dataDir()
    const first = await cluster.start({ dataDir })
    await first.stop({ leave: false })
    await chmod(join(dataDir, 'peer.key'), 0o644)
    const again = await cluster.start({ dataDir })
    expect(again.id).toBe(first.id)
    expect(octal(await modeOf(join(dataDir, 'peer.key')))).toBe('0600')
  })

  // A data folder that exists already with group/other access (made by `mkdir -p` or a
  // config tool) is closed to 0700 at start, as PostgreSQL insists for its data directory.
  it('an existing data folder open to others is closed to 0700 at start', async () => {
    const dataDir = await cluster.dataDir()
    await chmod(dataDir, 0o755)
    await cluster.start({ dataDir })
    expect(octal(await modeOf(dataDir))).toBe('0700')
  })
})
