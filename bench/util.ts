/** Small helpers shared by the benchmark suites. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IncarnationStore } from '../src/membership/index.js'

/** Polls `done` every `everyMs` until it holds; elapsed ms since `since`, or null after `capMs`. */
export async function waitFor(
  done: () => boolean,
  { since = performance.now(), capMs = 30_000, everyMs = 25 } = {},
): Promise<number | null> {
  while (!done()) {
    if (performance.now() - since > capMs) return null
    await sleep(everyMs)
  }
  return Math.round(performance.now() - since)
}

/**
 * Polls `sample` every `everyMs` until every milestone in it holds, or `capMs`: for
 * each, ms since `since` of the first poll that saw it hold, or null.
 */
export async function milestones<K extends string>(
  sample: () => Promise<Record<K, boolean>>,
  { since = performance.now(), capMs = 30_000, everyMs = 25 } = {},
): Promise<Record<K, number | null>> {
  const reached = new Map<K, number | null>()
  for (;;) {
    const state = await sample()
    // Stamped on receipt: an answer from a late event loop counts late, never early.
    const now = performance.now()
    const keys = Object.keys(state) as K[]
    for (const key of keys) {
      if (state[key] && reached.get(key) == null) reached.set(key, Math.round(now - since))
    }
    if (keys.every((key) => reached.get(key) != null) || now - since > capMs) {
      return Object.fromEntries(keys.map((key) => [key, reached.get(key) ?? null])) as Record<
        K,
        number | null
      >
    }
    await sleep(everyMs)
  }
}

/** Temporary folders, removed together at the end. */
export class TempDirs {
  private readonly dirs: string[] = []

  async make(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    this.dirs.push(dir)
    return dir
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })))
  }
}

export interface Machine {
  cores: number
  cpuModel: string
  memoryMB: number
  platform: string
  kernel: string
  node: string
  clockTicksPerSecond: number
  /** 1-minute load average when the run began: above ~0.5 something else was running. */
  loadAverageAtStart: number
}

export function machine(): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMB: Math.round(totalmem() / 2 ** 20),
    platform: process.platform,
    kernel: release(),
    node: process.version,
    clockTicksPerSecond: clockTicks(),
    loadAverageAtStart: round(loadavg()[0] ?? 0, 2),
  }
}

/** The commit measured and the source files changed on top of it (the build compiles the working tree). */
export function source(): { commit: string | null; changed: string[] } {
  const git = (...args: string[]) =>
    execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd()
  try {
    const changed = git('status', '--porcelain', '--', 'src')
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      changed: changed
        .split('\n')
        .map((line) => line.trim())
        .filter(Boolean),
    }
  } catch {
    return { commit: null, changed: [] }
  }
}

/**
 * Starts watching the host's CPU: the returned function gives, since then, how many
 * cores' worth of CPU the whole host used and how much of it was not this process
 * (other benchmarks, builds, ...), from /proc/stat. Null where /proc is missing.
 */
export function hostCpu(): () => { busyCores: number; foreignCores: number } | null {
  const ticks = clockTicks()
  const busyTicks = () => {
    try {
      const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
      // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy
      return cpu.slice(0, 8).reduce((sum, value, i) => (i === 3 || i === 4 ? sum : sum + value), 0)
    } catch {
      return null
    }
  }
  const began = { busy: busyTicks(), own: process.cpuUsage(), at: performance.now() }
  return () => {
    const busy = busyTicks()
    if (busy == null || began.busy == null) return null
    const seconds = (performance.now() - began.at) / 1000
    const own = process.cpuUsage(began.own)
    const busyCores = (busy - began.busy) / ticks / seconds
    const ownCores = (own.user + own.system) / 1e6 / seconds
    return { busyCores: round(busyCores, 2), foreignCores: round(Math.max(0, busyCores - ownCores), 2) }
  }
}

/**
 * Waits (up to `maxWaitS`) for a 2 s stretch in which other processes used less than
 * `limitCores` of CPU, so that a measurement does not start on a busy, shared machine.
 * Returns the seconds waited, and whether the machine became quiet.
 */
export async function quietHost({ limitCores = 0.1, maxWaitS = 120 } = {}): Promise<{
  waitedS: number
  quiet: boolean
}> {
  const began = performance.now()
  for (;;) {
    const sample = hostCpu()
    await sleep(2000)
    const foreign = sample()?.foreignCores ?? 0
    const waitedS = Math.round((performance.now() - began) / 1000)
    if (foreign < limitCores) return { waitedS, quiet: true }
    if (waitedS >= maxWaitS) return { waitedS, quiet: false }
  }
}

/** USER_HZ, the unit of the CPU times in /proc/PID/stat (100 almost everywhere). */
export function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
}

/** Event-loop delay of this process over a phase: how loaded the shared loop was. */
export function loopDelay(): () => { p99Ms: number; maxMs: number } {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  return () => {
    histogram.disable()
    return { p99Ms: round(histogram.percentile(99) / 1e6), maxMs: round(histogram.max / 1e6) }
  }
}

/** An incarnation store in memory, for members whose restarts the benchmark does not test. */
export function memoryIncarnations(): IncarnationStore {
  let value: number | null = null
  return {
    load: async () => value,
    save: async (incarnation) => {
      value = incarnation
    },
  }
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/** A plain fixed-width text table: numbers right-aligned, text left-aligned. */
export function table(header: string[], rows: Array<Array<string | number | null>>): string {
  const text = (c: string | number | null) => (c == null ? '-' : String(c))
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => text(row[i] ?? null).length)))
  const numeric = header.map((_, i) => rows.some((row) => typeof row[i] === 'number'))
  const line = (row: Array<string | number | null>) =>
    row
      .map((c, i) => (numeric[i] ? text(c).padStart(widths[i]!) : text(c).padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}
