/** Small helpers shared by the benchmark suites. */
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

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
