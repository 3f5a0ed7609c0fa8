/**
 * The OSGi half of the runtime benchmark (bench/runtime.ts): whether this host can
 * run examples/educa-osgi, and what only an OSGi node has: one framework JVM per
 * node, launched by the agent when the first version places bundles there and kept
 * across switches (bundles are updated in place). Its pid is the pid every bundle
 * component shows in GET /api/components.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { defaultOsgiFramework, osgiUnavailableReason } from '../src/runtime/osgi/osgi-host.js'
import { round } from './util.js'

/** The OSGi sample's build script, from the compiled bench (dist/bench → examples). */
export const EDUCA_OSGI_BUILD = new URL('../../examples/educa-osgi/build.mjs', import.meta.url)

export interface OsgiSetup {
  framework: string
  /** `java -version`'s first line. */
  java: string | null
  heap: { initialMB: number; maxMB: number } | null
  builds: Record<'1.0' | '1.1', string>
}

/** Builds educa-osgi 1.0 and 1.1 into `dir`; null with the reason where this host cannot run them. */
export async function prepareOsgi(
  dir: string,
): Promise<{ setup: OsgiSetup; skipped: null } | { setup: null; skipped: string }> {
  const unavailable = osgiUnavailableReason()
  if (unavailable != null) return { setup: null, skipped: unavailable }
  try {
    const { buildEducaOsgi } = (await import(
      EDUCA_OSGI_BUILD.href
    )) as typeof import('../examples/educa-osgi/build.mjs')
    const builds = await buildEducaOsgi(dir)
    return {
      setup: { framework: defaultOsgiFramework(), java: javaVersion(), heap: jvmHeap(), builds },
      skipped: null,
    }
  } catch (err) {
    return { setup: null, skipped: `educa-osgi did not build: ${(err as Error).message}` }
  }
}

function javaCommand(): string {
  return process.env.JAVA_HOME == null ? 'java' : join(process.env.JAVA_HOME, 'bin', 'java')
}

/** `java -version`'s first line (it writes to stderr). */
function javaVersion(): string | null {
  const run = spawnSync(javaCommand(), ['-version'], { encoding: 'utf8' })
  return run.stderr?.split('\n')[0]?.trim() || null
}

/**
 * The heap the framework JVM gets: the launcher passes no -Xms/-Xmx, so the JVM
 * sizes it from the machine's memory (initial 1/64, max 1/4 by default), in MB.
 */
function jvmHeap(): { initialMB: number; maxMB: number } | null {
  const run = spawnSync(javaCommand(), ['-XX:+PrintFlagsFinal', '-version'], { encoding: 'utf8' })
  const flag = (name: string) => {
    const bytes = new RegExp(`\\b${name}\\s+=\\s+(\\d+)`).exec(run.stdout ?? '')?.[1]
    return bytes == null ? null : Math.round(Number(bytes) / 2 ** 20)
  }
  const initialMB = flag('InitialHeapSize')
  const maxMB = flag('MaxHeapSize')
  return initialMB == null || maxMB == null ? null : { initialMB, maxMB }
}

/** How one node's framework came up on the first rollout. Times in ms. */
export interface FrameworkStart {
  node: number
  pid: number
  /** Desired version recorded → the JVM process began (the agent launched it for the first bundles). */
  launchedMs: number | null
  /**
   * JVM process began → the management agent's port file written: the JVM, the
   * framework, the platform bundles (Compendium API, Configuration Admin, SCR) and
   * Shoal's management agent up. The agent connects and installs educa's bundles after it.
   */
  upMs: number | null
  /** The launcher's own clock, from its main(): the framework started … */
  launcherFrameworkMs: number | null
  /** … and the management agent bundle active (the platform bundles started before it). */
  launcherAgentMs: number | null
}

/** Reads when the framework of the agent with this data folder started (its /proc entry, port file and log). */
export async function frameworkStart(
  node: number,
  dataDir: string,
  pid: number,
  recordedAt: number,
): Promise<FrameworkStart> {
  const began = await processStartEpochMs(pid)
  const portWritten = await stat(join(dataDir, 'osgi', 'agent.port')).then(
    (s) => s.mtimeMs,
    () => null,
  )
  const log = await readFile(frameworkLog(dataDir), 'utf8').catch(() => '')
  const at = (pattern: RegExp) => {
    const ms = new RegExp(`^shoal-launcher\\s+(\\d+) ms: .*${pattern.source}`, 'm').exec(log)?.[1]
    return ms == null ? null : Number(ms)
  }
  return {
    node,
    pid,
    launchedMs: began == null ? null : Math.round(began - recordedAt),
    upMs: began == null || portWritten == null ? null : Math.round(portWritten - began),
    launcherFrameworkMs: at(/started on Java/),
    launcherAgentMs: at(/management agent .* ACTIVE/),
  }
}

/**
 * When a process began, as a Unix time in ms: its start time since boot
 * (/proc/PID/stat field 22, clock ticks) against /proc/uptime (10 ms steps),
 * rather than /proc/stat's btime, which has whole seconds only.
 */
async function processStartEpochMs(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const now = Date.now()
    const uptimeS = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0])
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    return now - (uptimeS - startTicks / ticks) * 1000
  } catch {
    return null
  }
}

/** The parent pid of a process (/proc/PID/stat field 4), or null once it is gone. */
export async function parentPid(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (stat == null) return null
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

/** Median of the values that are known, or null. */
export function median(values: ReadonlyArray<number | null>): number | null {
  const known = values.filter((v) => v != null).sort((a, b) => a - b)
  if (known.length === 0) return null
  const mid = Math.floor(known.length / 2)
  return round(known.length % 2 === 1 ? known[mid]! : (known[mid - 1]! + known[mid]!) / 2, 0)
}

/** Maximum of the values that are known, or null. */
export function maximum(values: ReadonlyArray<number | null>): number | null {
  const known = values.filter((v) => v != null)
  return known.length === 0 ? null : Math.max(...known)
}

/** The framework's output (the bundles' System.out): `<data>/logs/osgi-framework.log`. */
function frameworkLog(dataDir: string): string {
  return join(dataDir, 'logs', 'osgi-framework.log')
}

/** How far the framework's log is now, to count what a switch adds to it. */
export async function frameworkLogSize(dataDir: string): Promise<number> {
  return stat(frameworkLog(dataDir)).then(
    (s) => s.size,
    () => 0,
  )
}

/**
 * What educa.web printed since `from`: how many times its HTTP server stopped
 * (each `HttpServer.stop(1)`) and started, i.e. how often DS deactivated and
 * activated the web component during a switch.
 */
export async function webServerEvents(
  dataDir: string,
  from: number,
): Promise<{ webServerStops: number; webServerStarts: number }> {
  const text = (await readFile(frameworkLog(dataDir)).catch(() => Buffer.alloc(0))).subarray(from).toString()
  const count = (pattern: RegExp) => text.split('\n').filter((line) => pattern.test(line)).length
  return {
    webServerStops: count(/^educa\.web \S+ stopped listening on /),
    webServerStarts: count(/^educa\.web \S+ listening on /),
  }
}
