import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../shared/index.js'
import { freePort, TypedEvents } from '../shared/index.js'
import type { ComponentDescriptor } from './descriptor.js'
import { checkHealth } from './health.js'
import type { LogFile } from './log-file.js'

/** A component without a health check is ready once it has run this long (or its readyDelayMs). */
const UNCHECKED_READY_MS = 1000
/** Lines of a component's output kept for the reason of a crash loop. */
const RECENT_LINES = 5
/** Gap between health checks until a component is first ready (then its own interval). */
const STARTUP_CHECK_MS = 50

export const COMPONENT_STATES = ['installing', 'starting', 'ready', 'draining', 'stopped', 'failed'] as const
export type ComponentState = (typeof COMPONENT_STATES)[number]

/** One component version, installed and ready to run. */
export interface ComponentSpec {
  name: string
  version: string
  /** The distribution it belongs to (`educa@1.0`). */
  distribution: string
  /** Its unpacked package. */
  dir: string
  descriptor: ComponentDescriptor
  /**
   * 0, or 1 for a version started beside the running one of the same name during
   * a make-before-break switch: the two are told apart by it (shared/instance-key.ts).
   */
  instance: number
  /** Environment besides the descriptor's own and PORT/HOST. */
  env: Record<string, string>
  /** Interface it listens on, and the host others reach it through. */
  bindHost: string
  advertiseHost: string
}

/** How hard the supervisor tries (see RuntimeConfig for the defaults and why). */
/**
 * Supervision timers and counts, from the agent's preset (src/shared/presets.ts).
 * Each `@default` reads: lan value (the default preset); cloud, test.
 */
export interface SupervisorPolicy {
  /**
   * ms before the first restart after a crash; doubles with each crash in a row.
   * @default 500 (lan; cloud 500, test 100)
   */
  backoffBaseMs: number
  /**
   * ms: the restart delay's ceiling.
   * @default 30_000 (lan; cloud 30_000, test 400)
   */
  backoffMaxMs: number
  /**
   * Crashes in a row (without a stable run between) after which the component is `failed`.
   * @default 5 (lan; cloud 5, test 3)
   */
  crashLoopLimit: number
  /**
   * ms: a run this long after ready resets the crash count.
   * @default 30_000 (lan; cloud 30_000, test 2_000)
   */
  stableAfterMs: number
  /**
   * ms: a start that is not healthy this long after spawn counts as a crash.
   * @default 60_000 (lan; cloud 60_000, test 15_000)
   */
  startTimeoutMs: number
  /**
   * Failed health checks in a row that take a ready component out of rotation
   * until a check passes (it is restarted when unhealthy for the start timeout).
   * @default 3 (lan; cloud 3, test 3)
   */
  unhealthyAfter: number
}

export interface ExitInfo {
  code: number | null
  signal: string | null
  at: string
}

export interface ComponentStatus {
  name: string
  version: string
  distribution: string
  state: ComponentState
  /** Which of (at most) two instances of this component on the node (ComponentSpec.instance). */
  instance: number
  pid: number | null
  port: number | null
  endpoint: string | null
  provides: string[]
  restarts: number
  lastExit: ExitInfo | null
  error: string | null
  since: string
}

export interface SupervisorEvents {
  'component:state': ComponentStatus
}

export interface SupervisorHooks {
  /** A process was spawned (the runtime records it so a restart can reap it). */
  spawned(name: string, pid: number): void
  /** A process ended. */
  exited(name: string, pid: number): void
}

/**
 * Runs one component version as a supervised child process in its own process
 * group: passes PORT/HOST and the SHOAL_* environment, gates readiness on the
 * health check, restarts crashes with exponential backoff, gives up on a crash
 * loop (`failed`), and stops with SIGTERM, then SIGKILL after the stop timeout.
 */
export class ComponentProcess {
  readonly events: TypedEvents<SupervisorEvents>
  private child: ChildProcess | undefined
  private port: number | null = null
  private state: ComponentState = 'stopped'
  private since = Date.now()
  private restarts = 0
  private crashesInARow = 0
  private lastExit: ExitInfo | null = null
  private error: string | null = null
  /** The last lines the component wrote, for the reason of a crash loop. */
  private readonly recentOutput: string[] = []
  private stopping = false
  /** The agent is stopping: an exit from now on ends the component instead of restarting it. */
  private ending = false
  private readonly abort = new AbortController()
  private exited: Promise<void> = Promise.resolve()

  constructor(
    readonly spec: ComponentSpec,
    private readonly policy: SupervisorPolicy,
    private readonly logFile: LogFile,
    private readonly hooks: SupervisorHooks,
    private readonly log: Logger,
  ) {
    this.events = new TypedEvents(log)
  }

  get name(): string {
    return this.spec.name
  }

  status(): ComponentStatus {
    const { name, version, distribution, descriptor } = this.spec
    const endpoint =
      this.port == null || !descriptor.http
        ? null
        : `http://${hostForUrl(this.spec.advertiseHost)}:${this.port}`
    return {
      name,
      version,
      distribution,
      state: this.state,
      instance: this.spec.instance,
      pid: this.child?.pid ?? null,
      port: this.port,
      endpoint,
      provides: descriptor.provides,
      restarts: this.restarts,
      lastExit: this.lastExit,
      error: this.error,
      since: new Date(this.since).toISOString(),
    }
  }

  /** Starts the first run; later runs follow crashes by themselves. */
  start(): void {
    this.setState('starting')
    void this.run()
  }

  /** Announces the coming stop (state `draining`); false when it is not running to begin with. */
  markDraining(): boolean {
    if (this.stopping || this.child == null || (this.state !== 'ready' && this.state !== 'starting'))
      return false
    this.setState('draining')
    return true
  }

  /**
   * The agent is stopping: an exit from now on is the end, not a crash to restart.
   * A service manager may signal every process of the service at once (systemd's
   * default KillMode), so components can exit before the agent gets to stop them.
   */
  expectExit(): void {
    this.ending = true
  }

  /** SIGTERM, then SIGKILL after the stop timeout; resolves once the process is gone. */
  async stop(): Promise<void> {
    if (this.stopping) return this.exited
    this.stopping = true
    this.abort.abort()
    const child = this.child
    if (child?.pid != null && child.exitCode == null && child.signalCode == null) {
      this.setState('draining')
      this.note(`stopping (SIGTERM, SIGKILL after ${this.spec.descriptor.stopTimeoutMs} ms)`)
      signalGroup(child.pid, 'SIGTERM')
      const killer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), this.spec.descriptor.stopTimeoutMs)
      await this.exited
      clearTimeout(killer)
    }
    if (this.state !== 'failed') this.setState('stopped')
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const crashed = await this.runOnce().catch((err: unknown) => {
        this.error = String(err instanceof Error ? err.message : err)
        this.note(`could not start: ${this.error}`)
        return true
      })
      if (this.stopping || !crashed) return
      // Draining means a stop is on its way: an exit now (a signal sent to the whole
      // service, say) finishes it early rather than being a crash.
      if (this.ending || this.state === 'draining') {
        this.note('exited while stopping; not restarted')
        this.setState('stopped')
        return
      }
      this.crashesInARow++
      if (this.crashesInARow >= this.policy.crashLoopLimit) {
        // Why the last run ended: what the health check saw, else the exit and the last output.
        this.error = `crash loop: ${this.crashesInARow} failed runs in a row; last run: ${this.error ?? this.lastRun()}`
        this.note(`giving up: ${this.error}`)
        this.setState('failed')
        return
      }
      const delay = Math.min(
        this.policy.backoffMaxMs,
        this.policy.backoffBaseMs * 2 ** (this.crashesInARow - 1),
      )
      this.setState('starting')
      // Said when it happens: the agent may begin to stop during the back-off.
      this.note(`next run in ${delay} ms (back-off)`)
      await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => {})
      if (this.ending) {
        this.note('not restarted: the agent is stopping')
        this.setState('stopped')
        return
      }
      if (this.stopping) return
      this.restarts++
      this.note(`restarting (restart ${this.restarts})`)
    }
  }

  /** One process lifetime; resolves true when it ended without being asked to. */
  private async runOnce(): Promise<boolean> {
    const { descriptor, dir } = this.spec
    this.port = descriptor.http ? await freePort(this.spec.bindHost) : null
    if (this.stopping) return false
    const env = this.environment()
    const [command, args] = commandOf(descriptor, dir)
    const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    this.child = child
    let resolveExit!: () => void
    this.exited = new Promise((resolve) => {
      resolveExit = resolve
    })
    const ended = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal, at: new Date().toISOString() }))
      child.once('error', (err) => {
        this.error = err.message
        resolve({ code: null, signal: null, at: new Date().toISOString() })
      })
    })
    const output = (text: string) => {
      this.logFile.write(text)
      for (const line of text.split('\n')) if (line.trim() !== '') this.recentOutput.push(line.trim())
      this.recentOutput.splice(0, Math.max(0, this.recentOutput.length - RECENT_LINES))
    }
    this.recentOutput.length = 0
    // Each run's reason is its own (the crash loop reports the last one).
    this.error = null
    child.stdout?.setEncoding('utf8').on('data', output)
    child.stderr?.setEncoding('utf8').on('data', output)
    if (child.pid != null) {
      this.hooks.spawned(this.name, child.pid)
      this.note(
        `started pid ${child.pid}${this.port == null ? '' : ` on port ${this.port}`} (${this.spec.version})`,
      )
    }

    const watch = new AbortController()
    const watching = this.watchHealth(child, watch.signal)
    const exit = await ended
    watch.abort()
    await watching
    if (child.pid != null) this.hooks.exited(this.name, child.pid)
    this.child = undefined
    this.lastExit = exit
    this.note(`exited (${exit.signal == null ? `code ${exit.code}` : exit.signal})`)
    resolveExit()
    return !this.stopping
  }

  /**
   * Readiness, then liveness, as Kubernetes separates them: a ready component
   * that fails `unhealthyAfter` checks in a row leaves rotation (`starting`) and
   * comes back when a check passes; one that stays unhealthy for the start
   * timeout is restarted, as is a start that never becomes healthy.
   */
  private async watchHealth(child: ChildProcess, signal: AbortSignal): Promise<void> {
    const { descriptor } = this.spec
    const check = descriptor.health
    const interval = check?.intervalMs ?? 1000
    const startTimeoutMs = descriptor.startTimeoutMs ?? this.policy.startTimeoutMs
    let unreadySince = Date.now()
    let failures = 0
    let everReady = false
    try {
      // Without a health check, "ready" can only mean "still running after a while".
      const delay =
        check == null ? Math.max(descriptor.readyDelayMs, UNCHECKED_READY_MS) : descriptor.readyDelayMs
      await sleep(delay, undefined, { signal })
      while (!signal.aborted) {
        const { healthy, detail } =
          check == null
            ? { healthy: true, detail: '' }
            : await checkHealth(check, {
                host: this.spec.bindHost === '0.0.0.0' ? '127.0.0.1' : this.spec.bindHost,
                port: this.port,
                cwd: this.spec.dir,
                env: this.environment(),
              })
        // Draining ends health watching: the stop follows, and it must not turn ready again.
        if (signal.aborted || this.stopping || this.state === 'draining') return
        const ready = this.state === 'ready'
        if (healthy) {
          failures = 0
          if (!ready) {
            if (everReady) this.note('healthy again')
            everReady = true
            this.error = null
            this.setState('ready')
            unreadySince = Date.now()
          } else if (Date.now() - unreadySince >= this.policy.stableAfterMs) this.crashesInARow = 0
        } else if (ready && ++failures >= this.policy.unhealthyAfter) {
          this.error = `${failures} health checks failed in a row; last: ${detail}`
          this.note(`${this.error}; out of rotation until a check passes`)
          this.setState('starting')
          unreadySince = Date.now()
        } else if (!ready && Date.now() - unreadySince > startTimeoutMs) {
          this.error = `not healthy within ${startTimeoutMs} ms; last check: ${detail}`
          this.note(`${this.error}; restarting`)
          // The same stop as everywhere: SIGTERM, SIGKILL after the stop timeout.
          const pid = child.pid!
          signalGroup(pid, 'SIGTERM')
          const killer = setTimeout(() => signalGroup(pid, 'SIGKILL'), descriptor.stopTimeoutMs)
          child.once('exit', () => clearTimeout(killer))
          return
        }
        // While not ready, check every 50 ms: a component is usually up within tens
        // of ms, and its readiness gates rollouts and traffic.
        const wait = this.state === 'ready' ? interval : Math.min(interval, STARTUP_CHECK_MS)
        await sleep(wait, undefined, { signal })
      }
    } catch {
      // aborted: the process ended
    }
  }

  /** How the last run ended, with the last lines it wrote. */
  private lastRun(): string {
    const exit = this.lastExit
    const how =
      exit == null
        ? 'did not start'
        : exit.signal != null
          ? `killed by ${exit.signal}`
          : `exit code ${exit.code}`
    const tail = this.recentOutput.join(' | ')
    return tail === '' ? how : `${how}: ${tail.length > 300 ? `…${tail.slice(-300)}` : tail}`
  }

  private environment(): NodeJS.ProcessEnv {
    const { descriptor } = this.spec
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: process.env.LANG,
      TZ: process.env.TZ,
      ...descriptor.env,
      ...this.spec.env,
      HOST: this.spec.bindHost,
    }
    if (this.port != null) env.PORT = String(this.port)
    for (const key of Object.keys(env)) if (env[key] == null) delete env[key]
    return env
  }

  private setState(state: ComponentState): void {
    if (state === this.state) return
    this.state = state
    this.since = Date.now()
    this.log.debug('component state', { component: this.name, version: this.spec.version, state })
    this.events.emit('component:state', this.status())
  }

  /** A supervisor line in the component's own log, where an operator looks first. */
  private note(text: string): void {
    this.logFile.write(`[shoal ${new Date().toISOString()}] ${this.name} ${text}\n`)
  }
}

function commandOf(descriptor: ComponentDescriptor, dir: string): [string, string[]] {
  const start = descriptor.start
  if ('node' in start) return [process.execPath, [join(dir, start.node), ...start.args]]
  // Bundles run in the node's OSGi framework (osgi/osgi-host.ts); the runtime never supervises them as processes.
  if (!('exec' in start)) throw new Error(`${descriptor.name} is an OSGi bundle, not a process`)
  // A path with a slash is inside the package (or absolute); a bare name is looked up on PATH.
  const command = start.exec.includes('/') && !start.exec.startsWith('/') ? join(dir, start.exec) : start.exec
  return [command, start.args]
}

/** Signals the whole process group the component leads, so its own children go too. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
