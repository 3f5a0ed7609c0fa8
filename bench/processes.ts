/**
 * Memory and idle CPU of real, separate agent processes started through the CLI
 * with the node flags the CLI's shebang applies (AGENT_NODE_FLAGS).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'
import { clockTicks, hostCpu, round, TempDirs, waitFor } from './util.js'

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))

/** One process's memory, in MB, from /proc/PID/status and /proc/PID/smaps_rollup. */
export interface ProcessMemory {
  /** VmRSS: every resident page the process maps, shared or not. */
  rssMB: number
  /** RssAnon: resident anonymous pages (heaps, stacks): memory this process alone costs. */
  privateMB: number
  /** RssFile: resident file-backed pages, mostly the node binary, shared by every node process on the host. */
  fileMB: number
  /** RssShmem: resident shared memory. */
  shmemMB: number
  /** Pss: the proportional share (shared pages divided among the processes mapping them). */
  pssMB: number | null
  /** VmHWM: peak RSS. */
  peakRssMB: number
}

export interface ProcessAgent extends ProcessMemory {
  cpuPercent: number
}

export interface ProcessResult {
  count: number
  /** Flags every agent process (and the bare node) ran with, before the script. */
  nodeFlags: string[]
  convergedMs: number | null
  idleBeforeS: number
  windowS: number
  agents: ProcessAgent[]
  meanRssMB: number | null
  maxRssMB: number | null
  meanPrivateMB: number | null
  maxPrivateMB: number | null
  meanFileMB: number | null
  meanPssMB: number | null
  maxPssMB: number | null
  meanCpuPercent: number | null
  /** Cores' worth of CPU other processes on the host used during the CPU window (above ~0.1: disturbed). */
  foreignCores: number | null
  /** A bare `node` idling with the same flags, for scale. */
  bareNode: ProcessMemory | null
  notes: string[]
}

export interface Started {
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

    bare = spawn(process.execPath, [...AGENT_NODE_FLAGS, '-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    })
    await sleep(idleBeforeS * 1000)
    const bareNode = await memory(bare.pid!)
    const ticks = clockTicks()
    const before = await Promise.all(started.map(({ child }) => cpuTicks(child.pid!)))
    const host = hostCpu()
    await sleep(windowS * 1000)
    const after = await Promise.all(started.map(({ child }) => cpuTicks(child.pid!)))
    const hostUse = host()
    const agents = await Promise.all(
      started.map(async ({ child }, i) => {
        const mem = await memory(child.pid!)
        const used = (after[i]! - before[i]!) / ticks
        return { ...mem, cpuPercent: round((used / windowS) * 100, 2) }
      }),
    )
    const of = (key: 'rssMB' | 'privateMB' | 'fileMB') => agents.map((a) => a[key])
    const pss = agents.map((a) => a.pssMB).filter((mb) => mb != null)
    return {
      count,
      nodeFlags: AGENT_NODE_FLAGS,
      convergedMs,
      idleBeforeS,
      windowS,
      agents,
      meanRssMB: round(mean(of('rssMB'))),
      maxRssMB: Math.max(...of('rssMB')),
      meanPrivateMB: round(mean(of('privateMB'))),
      maxPrivateMB: Math.max(...of('privateMB')),
      meanFileMB: round(mean(of('fileMB'))),
      meanPssMB: pss.length > 0 ? round(mean(pss)) : null,
      maxPssMB: pss.length > 0 ? Math.max(...pss) : null,
      meanCpuPercent: round(mean(agents.map((a) => a.cpuPercent)), 2),
      // Not this process, not the agents: what else ran on the host meanwhile.
      foreignCores:
        hostUse == null
          ? null
          : round(
              Math.max(0, hostUse.foreignCores - agents.reduce((sum, a) => sum + a.cpuPercent / 100, 0)),
              2,
            ),
      bareNode,
      notes,
    }
  } catch (err) {
    notes.push(`process measurement failed: ${String(err)}`)
    const empty = {
      agents: [],
      meanRssMB: null,
      maxRssMB: null,
      meanPrivateMB: null,
      maxPrivateMB: null,
      meanFileMB: null,
      meanPssMB: null,
      maxPssMB: null,
      meanCpuPercent: null,
      foreignCores: null,
      bareNode: null,
    }
    return { count, nodeFlags: AGENT_NODE_FLAGS, convergedMs: null, idleBeforeS, windowS, ...empty, notes }
  } finally {
    const children = [...started.map(({ child }) => child), ...(bare == null ? [] : [bare])]
    await Promise.all(children.map(terminate))
    await dirs.removeAll()
  }
}

/** Starts one `shoal agent` process (loopback, random ports) and waits for its start line. */
export async function startProcess(
  dataDir: string,
  bootstrap: string[],
  extra: string[] = [],
): Promise<Started> {
  const args = [
    ...AGENT_NODE_FLAGS,
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
    ...extra,
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
export async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

export async function memory(pid: number): Promise<ProcessMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  // smaps_rollup needs Linux >= 4.14 and the right to read the process's maps (our own child: fine).
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '')
  const mb = (text: string, key: string) => {
    const kb = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]
    return kb == null ? null : round(Number(kb) / 1024)
  }
  return {
    rssMB: mb(status, 'VmRSS') ?? Number.NaN,
    privateMB: mb(status, 'RssAnon') ?? Number.NaN,
    fileMB: mb(status, 'RssFile') ?? Number.NaN,
    shmemMB: mb(status, 'RssShmem') ?? Number.NaN,
    pssMB: mb(rollup, 'Pss'),
    peakRssMB: mb(status, 'VmHWM') ?? Number.NaN,
  }
}

/** SIGTERM (the agent leaves gracefully), SIGKILL after 10 s. */
export async function terminate(child: ChildProcess): Promise<void> {
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
