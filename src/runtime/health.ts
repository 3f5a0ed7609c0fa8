import { execFile } from 'node:child_process'
import type { ComponentDescriptor } from './descriptor.js'

type HealthCheck = NonNullable<ComponentDescriptor['health']>

export interface HealthTarget {
  /** Host and port the component serves HTTP on, for HTTP checks. */
  host: string
  port: number | null
  /** Folder a command check runs in. */
  cwd: string
  env: NodeJS.ProcessEnv
}

/** Runs one health check; true when the component answered as its descriptor expects. */
export async function checkHealth(check: HealthCheck, target: HealthTarget): Promise<boolean> {
  if (check.http != null) return checkHttp(check, target)
  return checkCommand(check.command!, check.timeoutMs, target)
}

async function checkHttp(check: HealthCheck, target: HealthTarget): Promise<boolean> {
  if (target.port == null) return false
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  try {
    const res = await fetch(`http://${host}:${target.port}${check.http}`, {
      signal: AbortSignal.timeout(check.timeoutMs),
      redirect: 'manual',
    })
    await res.body?.cancel()
    return res.status === check.status
  } catch {
    return false
  }
}

function checkCommand(command: string[], timeoutMs: number, target: HealthTarget): Promise<boolean> {
  const [file, ...args] = command as [string, ...string[]]
  return new Promise((resolve) => {
    execFile(file, args, { cwd: target.cwd, env: target.env, timeout: timeoutMs }, (err) =>
      resolve(err == null),
    )
  })
}
