/**
 * A real OpenSSH server on loopback for tests of the static provider: its own
 * host key, one client key allowed to log in as the current user (root), and
 * every file in a temp folder. Needs root (sshd runs privilege separation) and
 * Debian's openssh-server.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { Socket } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from '../../src/shared/ports.js'

export { freePort }

const execFileAsync = promisify(execFile)

export const SSHD = '/usr/sbin/sshd'

export interface Sshd {
  host: string
  port: number
  user: string
  /** Private key the server accepts. */
  identityFile: string
  /** A fresh known_hosts file (empty: the first connection records the host key). */
  knownHostsFile: string
  /** The temp folder holding everything (for other test files too); removed by stop(). */
  dir: string
  /** sshd's stderr so far (it logs there with -e). */
  output(): string
  stop(): Promise<void>
}

/** Why sshd cannot be started here, or null when it can. */
export function sshdUnavailable(): string | null {
  if (process.platform !== 'linux') return 'needs Linux'
  if (process.getuid?.() !== 0) return 'needs root (sshd runs privilege separation)'
  if (!existsSync(SSHD)) return `${SSHD} is missing (apt-get install openssh-server)`
  return null
}

export async function startSshd(): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-sshd-'))
  const hostKey = join(dir, 'host_ed25519')
  const identityFile = join(dir, 'client_ed25519')
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'shoal-test-host', '-f', hostKey])
  await execFileAsync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'shoal-test-client',
    '-f',
    identityFile,
  ])
  await writeFile(join(dir, 'authorized_keys'), await readFile(`${identityFile}.pub`), { mode: 0o600 })
  const knownHostsFile = join(dir, 'known_hosts')
  await writeFile(knownHostsFile, '', { mode: 0o600 })
  // Debian's sshd refuses to start without its privilege separation folder.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
  const port = await freePort()
  const config = join(dir, 'sshd_config')
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 50',
      'LogLevel INFO',
      '',
    ].join('\n'),
  )
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  let exited: number | null = null
  child.once('exit', (code) => {
    exited = code ?? -1
  })
  const deadline = Date.now() + 10_000
  while (!(await accepts(port))) {
    if (exited != null || Date.now() > deadline) {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
      throw new Error(`sshd did not start (${exited == null ? 'timeout' : `exit code ${exited}`}): ${output}`)
    }
    await sleep(50)
  }
  return {
    host: '127.0.0.1',
    port,
    user: userInfo().username,
    identityFile,
    knownHostsFile,
    dir,
    output: () => output,
    async stop() {
      if (exited == null) {
        const gone = new Promise((done) => child.once('exit', done))
        child.kill('SIGTERM')
        await Promise.race([gone, sleep(5000)])
        if (exited == null) child.kill('SIGKILL')
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = new Socket()
    socket.once('connect', () => {
      socket.destroy()
      done(true)
    })
    socket.once('error', () => done(false))
    socket.connect(port, '127.0.0.1')
  })
}
