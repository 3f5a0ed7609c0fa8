import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

/** The built CLI; the test script builds before running the suites. */
export const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs `shoal ARGS` to completion. A hang detector, not a speed check: a `--wait`
 * on a loaded 2-core machine can take minutes. A run it stops says so in `stderr`.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 150_000): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err == null ? 0 : typeof err.code === 'number' ? err.code : 1
        const killed =
          err != null && err.killed === true ? `\n(stopped by the test after ${timeoutMs} ms)` : ''
        done({ code, stdout, stderr: stderr + killed })
      },
    )
  })
}

export interface AgentProcess {
  child: ChildProcess
  /** What the agent printed on its first stdout line. */
  info: { id: string; cluster: string; api: string; addrs: string[] }
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

let started = 0

/** Starts `shoal agent ARGS` as its own process; its stderr goes to DIR/agent-N.log. */
export async function spawnAgent(args: string[], dir: string): Promise<AgentProcess> {
  const child = spawn(process.execPath, [CLI, 'agent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const log = join(dir, `agent-${++started}.log`)
  child.stderr!.pipe(createWriteStream(log))
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  const info = await new Promise<AgentProcess['info']>((done, fail) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', (line) => done(JSON.parse(line)))
    void exit.then(async (code) => {
      // The log's last lines in the error itself: the folder is often gone by the time anyone reads it.
      await new Promise((settled) => setTimeout(settled, 100))
      const tail = (await readFile(log, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-5).join('\n  ')
      fail(new Error(`agent exited with code ${code} before starting; ${log} ends:\n  ${tail}`))
    })
  })
  return {
    child,
    info,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode == null && child.signalCode == null) child.kill(signal)
      return exit
    },
  }
}

/**
 * Component processes started by the agent whose data folder is `data` (found by
 * the runtime's environment mark): they outlive a SIGKILLed agent.
 */
export async function componentPids(data: string): Promise<number[]> {
  const found: number[] = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (environ.split('\0').includes(`SHOAL_RUNTIME_DATA=${data}`)) found.push(pid)
  }
  return found
}
