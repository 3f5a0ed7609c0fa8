import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { homedir } from 'node:os'
import { basename, join } from 'node:path'
import type { Logger } from '../shared/index.js'
import { ConfigError, messageOf } from '../shared/index.js'
import { ProviderError } from './errors.js'
import { type LaunchedNode, launchedNode, type NodeSpec, type Provider } from './provider.js'

/** One machine of the fixed list: where to SSH to, and the address its agent listens on. */
export interface StaticHost {
  host: string
  /** SSH port (default 22). */
  port?: number
  user: string
  /** Private key SSH authenticates with (no passphrase: SSH runs in batch mode). */
  identityFile: string
  /** IPv4 address the agent listens on there (libp2p and API, free ports). Default: `host`. */
  address?: string
}

export interface StaticProviderInit {
  hosts: StaticHost[]
  /** How to run shoal on the hosts, e.g. ['/usr/bin/node', '/opt/shoal/dist/src/cli/main.js'] or ['npx', 'shoal']. */
  shoalCommand: string[]
  /** The agent's data folder on every host: absolute, or under the SSH user's home (`~/.shoal-node`). */
  dataDir: string
  /** Who launches (this agent's peer id), recorded with each node. */
  launchedBy: string
  /** ms to wait for a launched agent to start. */
  startTimeoutMs: number
  /** ms a node gets to stop after SIGTERM before SIGKILL. */
  stopTimeoutMs: number
  /** known_hosts file SSH records and checks host keys in (default ~/.ssh/known_hosts). */
  knownHostsFile?: string
}

interface ResolvedHost {
  host: string
  port: number
  user: string
  identityFile: string
  address: string
  /** `user@host:port`: the node's handle, announced in its member metadata. */
  handle: string
}

/** A file the new agent needs, relative to its data folder. */
interface RemoteFile {
  path: string
  data: Buffer
}

interface SshResult {
  code: number
  stdout: string
  stderr: string
}

/** Timeout of one SSH command that does not wait for anything. */
const SSH_TIMEOUT_MS = 30_000
/** Shell: prints the pid in a run file (agent.json, written by the agent). */
const PID_OF_RUN_FILE = `sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p'`
/** Marks a data folder this provider created, so a later launch may start it afresh. */
const MARKER = '.shoal-static'
/** Exit codes of the remote scripts. */
const EXIT_BUSY = 3
const EXIT_FOLDER = 4
const EXIT_NOT_STARTED = 6
const SSH_FAILED = 255

/**
 * A fixed list of machines (the seed's "fixed set of hosts"). `launch` picks a
 * host without a running agent, copies the cluster secret and trusted publisher
 * keys there over SSH, and starts `shoal agent` detached (nohup + setsid, log in
 * `<dataDir>/agent.log`); one agent per host, its handle is `user@host:port`.
 * Each launch starts a new node: a data folder this provider created before is
 * removed first (new identity, empty state). `terminate` sends SIGTERM over SSH
 * and SIGKILL after `stopTimeoutMs`. Uses the system `ssh` in batch mode (key
 * authentication only); host keys are trusted on first use (accept-new).
 */
export class StaticProvider implements Provider {
  readonly name = 'static'
  private readonly hosts: ResolvedHost[]
  private readonly knownHostsFile: string
  /** Hosts a launch of this provider is busy with (checked or starting). */
  private readonly reserved = new Set<string>()

  constructor(
    private readonly init: StaticProviderInit,
    private readonly log: Logger,
  ) {
    if (init.hosts.length === 0) throw new ConfigError('static provider: the host list is empty')
    if (init.shoalCommand.length === 0) throw new ConfigError('static provider: shoalCommand is empty')
    checkDataDir(init.dataDir)
    this.knownHostsFile = init.knownHostsFile ?? join(homedir(), '.ssh', 'known_hosts')
    this.hosts = init.hosts.map((h) => {
      const port = h.port ?? 22
      const address = h.address ?? h.host
      if (!/^[^\s-][^\s]*$/.test(h.host))
        throw new ConfigError(`static provider: host "${h.host}" is not valid`)
      if (!/^[^\s@:-][^\s@:]*$/.test(h.user))
        throw new ConfigError(`static provider: user "${h.user}" is not valid`)
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new ConfigError(`static provider: port ${port} of ${h.host} is not valid`)
      if (!isIPv4(address))
        throw new ConfigError(
          `static provider: ${h.host} needs an "address" (the IPv4 address its agent listens on); "${address}" is not one`,
        )
      return {
        host: h.host,
        port,
        user: h.user,
        identityFile: h.identityFile,
        address,
        handle: `${h.user}@${h.host}:${port}`,
      }
    })
    const handles = new Set(this.hosts.map((h) => h.handle))
    if (handles.size !== this.hosts.length)
      throw new ConfigError('static provider: a host (user@host:port) is listed twice')
  }

  async launch(spec: NodeSpec, progress: (step: string) => void): Promise<LaunchedNode> {
    const files: RemoteFile[] = []
    if (spec.secretFile != null)
      files.push({ path: 'cluster.secret', data: await this.readLocal(spec.secretFile, 'cluster secret') })
    for (const [i, file] of spec.trust.entries())
      files.push({
        path: `trust/${i + 1}-${basename(file)}`,
        data: await this.readLocal(file, 'trusted publisher key'),
      })
    const command = this.agentCommand(spec, files)
    const reasons: string[] = []
    for (const host of this.hosts) {
      if (this.reserved.has(host.handle)) {
        reasons.push(`${host.handle}: another launch is starting an agent there`)
        continue
      }
      // Reserved before it is tried, so concurrent launches of this provider never pick the same host.
      this.reserved.add(host.handle)
      try {
        progress(`trying ${host.handle}`)
        const node = await this.start(host, spec, command, files)
        if (typeof node === 'string') {
          reasons.push(`${host.handle}: ${node}`)
          continue
        }
        progress(`agent ${node.id} runs on ${host.handle}`)
        return node
      } finally {
        this.reserved.delete(host.handle)
      }
    }
    throw new ProviderError(this.name, `no free host (${reasons.join('; ')})`)
  }

  async terminate(node: Pick<LaunchedNode, 'handle'>, progress: (step: string) => void): Promise<void> {
    const host = this.hosts.find((h) => h.handle === node.handle)
    if (host == null)
      throw new ProviderError(
        this.name,
        `${node.handle} is not in the host list (${this.hosts.map((h) => h.handle).join(', ')})`,
      )
    progress(`stopping the agent on ${host.handle}`)
    const outcome = await this.stop(host, this.init.stopTimeoutMs)
    if (outcome === 'killed')
      this.log.warn('a static node did not stop in time; killed it', { handle: host.handle })
    else this.log.info('stopped a static node', { handle: host.handle, outcome })
    progress('the agent process has exited')
  }

  /** The `shoal agent` command line, for the remote shell (the folder is "$D" there). */
  private agentCommand(spec: NodeSpec, files: RemoteFile[]): (host: ResolvedHost) => string {
    return (host) => {
      const args = [
        'agent',
        '--cluster',
        spec.cluster,
        '--listen',
        `/ip4/${host.address}/tcp/0`,
        // The node's API stays on the host's loopback (no tokens are copied there).
        '--api',
        '127.0.0.1:0',
        '--preset',
        spec.preset,
        '--provider',
        this.name,
        '--handle',
        host.handle,
        ...(spec.mdns ? [] : ['--no-mdns']),
        ...spec.bootstrap.flatMap((addr) => ['--bootstrap', addr]),
        ...spec.roles.flatMap((role) => ['--role', role]),
        ...Object.entries(spec.tags).flatMap(([k, v]) => ['--tag', `${k}=${v}`]),
      ]
      return [
        ...this.init.shoalCommand.map(shellQuote),
        ...args.map(shellQuote),
        '--data "$D"',
        ...files.map(
          (f) => `${f.path === 'cluster.secret' ? '--secret-file' : '--trust'} "$D"/${shellQuote(f.path)}`,
        ),
      ].join(' ')
    }
  }

  /**
   * One SSH round trip (connections are slow): if no agent runs there, prepares
   * the folder, writes the files from stdin (never on a command line), starts
   * the agent detached and waits there until its run file names a live process.
   * Resolves with the node, or with why the host is not free; throws when the
   * agent does not start.
   */
  private async start(
    host: ResolvedHost,
    spec: NodeSpec,
    command: (host: ResolvedHost) => string,
    files: RemoteFile[],
  ): Promise<LaunchedNode | string> {
    const waitSeconds = Math.max(1, Math.ceil(this.init.startTimeoutMs / 1000))
    const script = [
      this.prelude(),
      `if [ -n "$jp$lp" ]; then echo "busy $jp $lp"; exit ${EXIT_BUSY}; fi`,
      'umask 077',
      `if [ -f "$D"/${MARKER} ]; then rm -rf "$D" || exit ${EXIT_FOLDER}; fi`,
      `mkdir -p "$D"/trust && : > "$D"/${MARKER} && cd "$D" || exit ${EXIT_FOLDER}`,
      'rm -f agent.json agent.pid',
      // dd with bs=1 reads exactly its bytes from stdin, whatever follows.
      ...files.flatMap((f) => {
        const target = shellQuote(f.path)
        return [
          `dd bs=1 count=${f.data.length} of=${target} 2>/dev/null`,
          `if [ "$(wc -c < ${target})" -ne ${f.data.length} ]; then echo ${shellQuote(`could not write ${f.path}`)} >&2; exit ${EXIT_FOLDER}; fi`,
          `chmod 600 ${target}`,
        ]
      }),
      'S=; if command -v setsid >/dev/null 2>&1; then S=setsid; fi',
      `nohup $S ${command(host)} </dev/null >>agent.log 2>&1 &`,
      'lp=$!',
      'echo "$lp" > agent.pid',
      'echo "started $lp"',
      `end=$(( $(date +%s) + ${waitSeconds} ))`,
      'while :; do',
      `  jp=; if [ -f agent.json ]; then jp=$(${PID_OF_RUN_FILE} agent.json | head -n 1); fi`,
      '  if alive "$jp"; then echo ready; cat agent.json; exit 0; fi',
      '  if ! alive "$lp"; then why=exited; break; fi',
      '  if [ "$(date +%s)" -ge "$end" ]; then why=timeout; kill9 "$lp"; break; fi',
      '  sleep 0.2 2>/dev/null || sleep 1',
      'done',
      'echo "$why"',
      'tail -n 20 agent.log 2>/dev/null',
      `exit ${EXIT_NOT_STARTED}`,
    ].join('\n')
    const result = await this.ssh(host, script, {
      input: Buffer.concat(files.map((f) => f.data)),
      timeoutMs: this.init.startTimeoutMs + SSH_TIMEOUT_MS,
    })
    const lines = result.stdout.split('\n')
    const started = lines.find((line) => line.startsWith('started '))
    if (result.code === EXIT_BUSY) {
      const [, agentPid = '', launcherPid = ''] = (lines[0] ?? '').split(' ')
      return agentPid === '' ? `an agent is starting (pid ${launcherPid})` : `an agent runs (pid ${agentPid})`
    }
    if (result.code === SSH_FAILED && started == null)
      return `ssh failed: ${lastLines(result.stderr) || 'exit code 255'}`
    if (result.code === SSH_FAILED)
      throw new ProviderError(
        this.name,
        `lost the SSH connection to ${host.handle} while the agent started there: ${lastLines(result.stderr)}`,
      )
    if (result.code === EXIT_NOT_STARTED) {
      const at = lines.indexOf(started ?? '')
      const why = lines[at + 1] === 'exited' ? 'exited' : `did not start in ${this.init.startTimeoutMs} ms`
      const tail =
        lines
          .slice(at + 2)
          .join('\n')
          .trim() || '(the log is empty)'
      throw new ProviderError(this.name, `the agent on ${host.handle} ${why}; last log lines:\n${tail}`)
    }
    this.check(host, result, 'could not start the agent')
    const ready = lines.indexOf('ready')
    let run: { pid?: unknown; id?: unknown; api?: unknown } = {}
    try {
      run = JSON.parse(lines.slice(ready + 1).join('\n'))
    } catch {
      // Reported below.
    }
    if (ready < 0 || typeof run.pid !== 'number' || typeof run.id !== 'string' || typeof run.api !== 'string')
      throw new ProviderError(this.name, `${host.handle}: unexpected answer: ${result.stdout.slice(0, 500)}`)
    this.log.info('launched a static node', { id: run.id, handle: host.handle, pid: run.pid })
    return launchedNode(this.name, this.init.launchedBy, spec, {
      handle: host.handle,
      id: run.id,
      api: run.api,
    })
  }

  /**
   * Shell lines that set D (the data folder), `alive PID`, and jp / lp: the pids
   * of a live agent (from its run file) and of a live process this provider
   * started (from agent.pid, only while its command line names the folder, so a
   * reused pid does not count), empty when none.
   */
  private prelude(): string {
    return [
      `D=${remotePath(this.init.dataDir)}`,
      // A zombie (exited, not yet reaped by init) is not alive.
      'alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1; [ -r "/proc/$1/stat" ] || return 0; ' +
        's=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null | cut -c1); [ "$s" != Z ]; }',
      // SIGKILL to the process group a process leads (setsid), else to the process (dash: `kill -s SIG -- -PGID`).
      'kill9() { [ -n "$1" ] || return 0; kill -s KILL -- "-$1" 2>/dev/null || kill -s KILL "$1" 2>/dev/null; }',
      'jp=; lp=',
      `if [ -f "$D"/agent.json ]; then jp=$(${PID_OF_RUN_FILE} "$D"/agent.json | head -n 1); fi`,
      'if [ -f "$D"/agent.pid ]; then lp=$(head -n 1 "$D"/agent.pid | tr -cd 0-9); fi',
      'alive "$jp" || jp=',
      'alive "$lp" || lp=',
      'if [ -n "$lp" ] && [ -r "/proc/$lp/cmdline" ] && ! tr "\\000" "\\n" < "/proc/$lp/cmdline" | grep -qxF -- "$D"; then lp=; fi',
    ].join('\n')
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once no agent process of the folder is alive. */
  private async stop(host: ResolvedHost, graceMs: number): Promise<'gone' | 'stopped' | 'killed'> {
    const result = await this.ssh(
      host,
      [
        this.prelude(),
        'if [ -z "$jp$lp" ]; then rm -f "$D"/agent.pid; echo gone; exit 0; fi',
        't=$jp; [ -n "$t" ] || t=$lp; kill -s TERM "$t" 2>/dev/null',
        'up() { alive "$jp" || alive "$lp"; }',
        `end=$(( $(date +%s) + ${Math.ceil(graceMs / 1000)} ))`,
        'while up && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1 2>/dev/null || sleep 1; done',
        'r=stopped',
        'if up; then kill9 "$jp"; kill9 "$lp"; r=killed; fi',
        'while up; do sleep 0.1 2>/dev/null || sleep 1; done',
        'rm -f "$D"/agent.pid',
        'echo $r',
      ].join('\n'),
      { timeoutMs: graceMs + SSH_TIMEOUT_MS },
    )
    this.check(host, result, 'could not stop the agent')
    const outcome = result.stdout.trim()
    return outcome === 'gone' || outcome === 'killed' ? outcome : 'stopped'
  }

  /** Throws a ProviderError unless the remote script succeeded. */
  private check(host: ResolvedHost, result: SshResult, what: string): void {
    if (result.code === 0) return
    const detail = lastLines(result.stderr) || `exit code ${result.code}`
    if (result.code === SSH_FAILED)
      throw new ProviderError(this.name, `ssh to ${host.handle} failed: ${detail}`)
    throw new ProviderError(this.name, `${host.handle}: ${what}: ${detail}`)
  }

  /** Runs a POSIX sh script on the host (whatever the user's login shell), feeding `input` on stdin. */
  private ssh(
    host: ResolvedHost,
    script: string,
    { input, timeoutMs = SSH_TIMEOUT_MS }: { input?: Buffer; timeoutMs?: number } = {},
  ): Promise<SshResult> {
    const args = [
      '-T',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=accept-new',
      '-o',
      `UserKnownHostsFile="${this.knownHostsFile}"`,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'ConnectTimeout=10',
      '-o',
      'LogLevel=ERROR',
      '-i',
      host.identityFile,
      '-p',
      String(host.port),
      '-l',
      host.user,
      host.host,
      `sh -c ${shellQuote(script)}`,
    ]
    return new Promise((done, fail) => {
      const child = execFile(
        'ssh',
        args,
        { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err == null) return done({ code: 0, stdout, stderr })
          const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean }
          if (e.code === 'ENOENT')
            return fail(new ProviderError(this.name, 'the ssh command is not installed'))
          if (e.killed === true)
            return fail(new ProviderError(this.name, `ssh to ${host.handle} timed out after ${timeoutMs} ms`))
          done({ code: typeof e.code === 'number' ? e.code : -1, stdout, stderr })
        },
      )
      child.stdin?.on('error', () => undefined)
      child.stdin?.end(input)
    })
  }

  private async readLocal(file: string, what: string): Promise<Buffer> {
    try {
      return await readFile(file)
    } catch (err) {
      throw new ProviderError(this.name, `cannot read the ${what} ${file}: ${messageOf(err)}`)
    }
  }
}

/** The last lines of an SSH error output, on one line. */
function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' ')
}

/** Quotes one word for a POSIX shell: `it's` becomes `'it'\''s'`. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`
}

/** A shell expression for a folder on a host: absolute, or `~/x` / `x` under the user's home. */
export function remotePath(path: string): string {
  const clean = path.replace(/\/+$/, '')
  if (clean.startsWith('/')) return shellQuote(clean)
  const rest = clean.startsWith('~/') ? clean.slice(2) : clean
  return `"$HOME"/${shellQuote(rest)}`
}

/** The data folder is removed on relaunch: refuse anything that could be a home or system folder. */
function checkDataDir(dir: string): void {
  const clean = dir.replace(/\/+$/, '')
  const rest = clean.startsWith('~/') ? clean.slice(2) : clean
  const parts = rest.split('/').filter((p) => p !== '' && p !== '.')
  if (clean === '' || clean === '~' || parts.length === 0 || parts.includes('..') || /^~[^/]/.test(clean))
    throw new ConfigError(
      `static provider: dataDir "${dir}" is not valid: use a folder of its own, absolute or under ~/ (e.g. ~/.shoal-node)`,
    )
  if (clean.startsWith('/') && parts.length < 2)
    throw new ConfigError(
      `static provider: dataDir "${dir}" is too close to / (e.g. use /var/lib/shoal/node)`,
    )
}
