import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../shared/index.js'
import { AGENT_NODE_FLAGS } from '../shared/index.js'
import { ProviderError } from './errors.js'
import { type LaunchedNode, launchedNode, type NodeSpec, type Provider } from './provider.js'

export interface LocalProviderInit {
  /** Folder under which each launched node gets its own data folder. */
  dataRoot: string
  /** Address the new agents listen on (libp2p and API, free ports). */
  host: string
  /** Who launches (this agent's peer id), recorded with each node. */
  launchedBy: string
  /** ms to wait for a launched agent to start. */
  startTimeoutMs: number
  /** ms a node gets to stop after SIGTERM before SIGKILL. */
  stopTimeoutMs: number
}

interface RunFile {
  pid: number
  id: string
  api: string
}

/**
 * The default provider: `shoal agent` processes on this machine, each with its
 * own data folder (which is its handle) and free ports, detached so they outlive
 * the agent that launched them, logging to `<folder>/agent.log`. Any agent on
 * the machine can stop one: its pid is in `<folder>/agent.json` while it runs.
 */
export class LocalProvider implements Provider {
  readonly name = 'local'

  constructor(
    private readonly init: LocalProviderInit,
    private readonly log: Logger,
  ) {}

  async launch(spec: NodeSpec, progress: (step: string) => void): Promise<LaunchedNode> {
    const dataDir = join(this.init.dataRoot, `node-${randomBytes(4).toString('hex')}`)
    const args = [
      ...AGENT_NODE_FLAGS,
      cliPath(),
      'agent',
      '--cluster',
      spec.cluster,
      '--data',
      dataDir,
      '--listen',
      `/ip4/${this.init.host}/tcp/0`,
      // Without tokens an API must stay on loopback; with them it listens beside libp2p.
      '--api',
      `${spec.tokensFile == null ? '127.0.0.1' : this.init.host}:0`,
      ...(spec.tokensFile == null ? [] : ['--tokens', spec.tokensFile]),
      '--preset',
      spec.preset,
      '--provider',
      this.name,
      '--handle',
      dataDir,
      ...(spec.mdns ? [] : ['--no-mdns']),
      ...(spec.secretFile == null ? [] : ['--secret-file', spec.secretFile]),
      ...spec.trust.flatMap((file) => ['--trust', file]),
      ...spec.bootstrap.flatMap((addr) => ['--bootstrap', addr]),
      ...spec.roles.flatMap((role) => ['--role', role]),
      ...Object.entries(spec.tags).flatMap(([k, v]) => ['--tag', `${k}=${v}`]),
    ]
    const { mkdir } = await import('node:fs/promises')
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const logFile = join(dataDir, 'agent.log')
    const out = openSync(logFile, 'a')
    progress(`starting an agent process in ${dataDir}`)
    let child: ChildProcess
    try {
      child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out] })
    } catch (err) {
      throw new ProviderError(this.name, `could not start an agent process: ${String(err)}`)
    }
    let exited: number | null = null
    child.once('exit', (code) => {
      exited = code ?? -1
    })
    child.unref()
    const deadline = Date.now() + this.init.startTimeoutMs
    for (;;) {
      const run = await readRunFile(dataDir)
      if (run != null && run.pid === child.pid) {
        this.log.info('launched a local node', { id: run.id, dataDir, pid: run.pid })
        return launchedNode(this.name, this.init.launchedBy, spec, {
          handle: dataDir,
          id: run.id,
          api: run.api,
        })
      }
      if (exited != null || Date.now() > deadline) {
        const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n')
        if (exited == null) child.kill('SIGKILL')
        throw new ProviderError(
          this.name,
          `the agent in ${dataDir} ${exited == null ? 'did not start in time' : `exited with code ${exited}`}; last log lines:\n${tail}`,
        )
      }
      await sleep(50)
    }
  }

  async terminate(node: Pick<LaunchedNode, 'handle'>, progress: (step: string) => void): Promise<void> {
    const run = await readRunFile(node.handle)
    if (run == null || !isAlive(run.pid)) {
      progress('the agent process has exited')
      return
    }
    progress(`stopping the agent process ${run.pid}`)
    process.kill(run.pid, 'SIGTERM')
    const deadline = Date.now() + this.init.stopTimeoutMs
    while (isAlive(run.pid) && Date.now() < deadline) await sleep(50)
    if (isAlive(run.pid)) {
      this.log.warn('a local node did not stop in time; killing it', { pid: run.pid })
      process.kill(run.pid, 'SIGKILL')
      while (isAlive(run.pid)) await sleep(20)
    }
    progress('the agent process has exited')
  }
}

/** The `shoal` CLI of this installation (compiled), which launched nodes run. */
function cliPath(): string {
  const sibling = fileURLToPath(new URL('../cli/main.js', import.meta.url))
  if (existsSync(sibling)) return sibling
  // Running from the TypeScript sources (tests): the compiled CLI next to them.
  return resolve(fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url)))
}

async function readRunFile(dataDir: string): Promise<RunFile | null> {
  try {
    const run = JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8')) as Partial<RunFile>
    return typeof run.pid === 'number' && typeof run.id === 'string' && typeof run.api === 'string'
      ? (run as RunFile)
      : null
  } catch {
    return null
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
