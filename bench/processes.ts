/** RSS and idle CPU of real, separate agent processes started through the CLI. */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { clockTicks, round, TempDirs, waitFor } from './util.js'

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))

export interface ProcessAgent {
  rssMB: number
  peakRssMB: number
  cpuPercent: number
}

export interface ProcessResult {
  count: number
  convergedMs: number | null
  idleBeforeS: number
  windowS: number
  agents: ProcessAgent[]
  meanRssMB: number | null
  maxRssMB: number | null
  meanCpuPercent: number | null
  /** RSS of a bare `node` idling, for scale. */
  bareNodeRssMB: number | null
  notes: string[]
}

interface Started {
  child: ChildProcess
  info: { id: string; api: string; addrs: string[] }
}

/** Starts `count` agents joined through the first, idles, then samples /proc over `windowS`. */
export async function measureProcesses(count = 5, idleBeforeS = 10, windowS = 10): Promise<ProcessResult> {
  const dirs = new TempDirs()
  const started: Started[] = []
  const notes: string[] = []
  let bare: ChildProcess | undefined
  const spawnOne = async (bootstrap: string[]) => {
    const agent = await startProcess(await dirs.make('shoal-bench-proc-'), bootstrap)
    started.push(agent)
    return agent
  }
  try {
    const first = await spawnOne([])
    const boot = first.info.addrs.filter((addr) => addr.includes('/tcp/'))
    const since = performance.now()
    await Promise.all(Array.from({ length: count - 1 }, () => spawnOne(boot)))
    const alive = new Map<string, number>()
    const poll = setInterval(() => {
      for (const { info } of started) {
        void aliveCount(info.api).then((n) => alive.set(info.id, n))
      }
    }, 200)
    const convergedMs = await waitFor(() => started.every(({ info }) => alive.get(info.id) === count), {
      since,
    })
    clearInterval(poll)
    if (convergedMs == null) notes.push(`the ${count} processes did not all list ${count} alive within 30 s`)

    bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    await sleep(idleBeforeS * 1000)
    const bareNodeRssMB = (await memory(bare.pid!)).rssMB
    const ticks = clockTicks()
    const before = await Promise.all(started.map(({ child }) => cpuTicks(child.pid!)))
    await sleep(windowS * 1000)
    const after = await Promise.all(started.map(({ child }) => cpuTicks(child.pid!)))
    const agents = await Promise.all(
      started.map(async ({ child }, i) => {
        const mem = await memory(child.pid!)
        const used = (after[i]! - before[i]!) / ticks
        return { ...mem, cpuPercent: round((used / windowS) * 100, 2) }
      }),
    )
    const rss = agents.map((a) => a.rssMB)
    return {
      count,
      convergedMs,
      idleBeforeS,
      windowS,
      agents,
      meanRssMB: round(mean(rss)),
      maxRssMB: Math.max(...rss),
      meanCpuPercent: round(mean(agents.map((a) => a.cpuPercent)), 2),
      bareNodeRssMB,
      notes,
    }
  } catch (err) {
    notes.push(`process measurement failed: ${String(err)}`)
    const empty = { agents: [], meanRssMB: null, maxRssMB: null, meanCpuPercent: null, bareNodeRssMB: null }
    return { count, convergedMs: null, idleBeforeS, windowS, ...empty, notes }
  } finally {
    const children = [...started.map(({ child }) => child), ...(bare == null ? [] : [bare])]
    await Promise.all(children.map(terminate))
    await dirs.removeAll()
  }
}

async function startProcess(dataDir: string, bootstrap: string[]): Promise<Started> {
  const args = [
    CLI,
    'agent',
    '--cluster',
    'bench-proc',
    '--data',
    dataDir,
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--api',
    '127.0.0.1:0',
    '--no-mdns',
    '--log-level',
    'error',
    ...bootstrap.flatMap((addr) => ['--bootstrap', addr]),
  ]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000)
  })
  const lines = createInterface({ input: child.stdout! })
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no start line within 30 s')), 30_000)
    lines.once('line', (text) => {
      clearTimeout(timer)
      resolve(text)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`agent exited with code ${code} before starting: ${stderr.trim()}`))
    })
  }).catch((err) => {
    child.kill('SIGKILL')
    throw err
  })
  return { child, info: JSON.parse(line) as Started['info'] }
}

async function aliveCount(api: string): Promise<number> {
  try {
    const res = await fetch(`${api}/api/members`, { signal: AbortSignal.timeout(1000) })
    const members = (await res.json()) as Array<{ state: string }>
    return members.filter((m) => m.state === 'alive').length
  } catch {
    return 0
  }
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

async function memory(pid: number): Promise<{ rssMB: number; peakRssMB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN)
  return { rssMB: round(kb('VmRSS') / 1024), peakRssMB: round(kb('VmHWM') / 1024) }
}

/** SIGTERM (the agent leaves gracefully), SIGKILL after 10 s. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode != null || child.signalCode != null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length
}
