import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HaproxyRuntime } from '../../src/loadbalancer/haproxy-runtime.js'
import { freePort } from '../../src/shared/ports.js'
import { waitFor } from './wait.js'

export const HAPROXY = '/usr/sbin/haproxy'
export const haproxyAvailable = existsSync(HAPROXY)

export interface RunningHaproxy {
  child: ChildProcess
  exit: Promise<void>
}

export function startHaproxy(config: string, log: string): RunningHaproxy {
  const child = spawn(HAPROXY, ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.pipe(createWriteStream(log, { flags: 'a' }))
  const exit = new Promise<void>((done) => child.once('exit', () => done()))
  return { child, exit }
}

export async function stopHaproxy(haproxy: RunningHaproxy | undefined, signal: NodeJS.Signals = 'SIGTERM') {
  if (haproxy == null) return
  if (haproxy.child.exitCode == null && haproxy.child.signalCode == null) haproxy.child.kill(signal)
  await haproxy.exit
}

/**
 * A real HAProxy in `dir` with an admin stats socket, a frontend on a free port
 * and an empty `backend app` for Shoal to fill; connection failures are retried
 * on another server (`retries` + `redispatch`), as an operator would set it up.
 */
export async function runHaproxy(
  dir: string,
): Promise<{ haproxy: RunningHaproxy; socket: string; port: number }> {
  const socket = join(dir, 'admin.sock')
  const config = join(dir, 'haproxy.cfg')
  const port = await freePort()
  await writeFile(
    config,
    [
      'global',
      `  stats socket ${socket} mode 600 level admin`,
      'defaults',
      '  mode http',
      '  timeout connect 1s',
      '  timeout client 10s',
      '  timeout server 10s',
      '  retries 3',
      '  option redispatch 1',
      '  retry-on conn-failure',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend app',
      'backend app',
      '  balance roundrobin',
      '',
    ].join('\n'),
  )
  const haproxy = startHaproxy(config, join(dir, 'haproxy.log'))
  const runtime = new HaproxyRuntime(socket, 1_000)
  await waitFor('HAProxy to answer on its stats socket', () => runtime.cliLevel(), { timeout: 5_000 })
  return { haproxy, socket, port }
}
