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

/** What one health check found: healthy or not, and what it saw, for operators ("HTTP 503: db down"). */
export interface HealthResult {
  healthy: boolean
  detail: string
}

/** The most of a health answer or a command's output kept in `detail`. */
const DETAIL_CHARS = 200

/** Runs one health check. */
export async function checkHealth(check: HealthCheck, target: HealthTarget): Promise<HealthResult> {
  if (check.http != null) return checkHttp(check, target)
  return checkCommand(check.command!, check.timeoutMs, target)
}

async function checkHttp(check: HealthCheck, target: HealthTarget): Promise<HealthResult> {
  if (target.port == null) return { healthy: false, detail: 'no port to check' }
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  try {
    const res = await fetch(`http://${host}:${target.port}${check.http}`, {
      signal: AbortSignal.timeout(check.timeoutMs),
      redirect: 'manual',
    })
    if (res.status === check.status) {
      await res.body?.cancel()
      return { healthy: true, detail: `HTTP ${res.status}` }
    }
    const body = (await res.text().catch(() => '')).trim().replace(/\s+/g, ' ')
    return {
      healthy: false,
      detail: `${check.http} answered HTTP ${res.status}${body === '' ? '' : `: ${clip(body)}`}`,
    }
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code
    const name =
      (err as Error).name === 'TimeoutError'
        ? `no answer within ${check.timeoutMs} ms`
        : (cause ?? String(err))
    return { healthy: false, detail: `${check.http}: ${name}` }
  }
}

function checkCommand(command: string[], timeoutMs: number, target: HealthTarget): Promise<HealthResult> {
  const [file, ...args] = command as [string, ...string[]]
  return new Promise((resolve) => {
    execFile(file, args, { cwd: target.cwd, env: target.env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err == null) return resolve({ healthy: true, detail: 'exit 0' })
      const output = `${stderr}${stdout}`.trim().replace(/\s+/g, ' ')
      const how = err.killed ? `no answer within ${timeoutMs} ms` : `exit ${err.code ?? '?'}`
      resolve({
        healthy: false,
        detail: `${command.join(' ')}: ${how}${output === '' ? '' : `: ${clip(output)}`}`,
      })
    })
  })
}

function clip(text: string): string {
  return text.length > DETAIL_CHARS ? `${text.slice(0, DETAIL_CHARS)}…` : text
}
