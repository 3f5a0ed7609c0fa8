import { messageOf } from './errors.js'
import type { Logger } from './logger.js'

/**
 * A subsystem's lifecycle (js-libp2p's `Startable`). Both calls are safe to
 * repeat: a second `start()` does nothing (an address it answers stays the same),
 * a second `stop()` does nothing; `stop()` clears every timer, handler and
 * listener `start()` made. Either may be synchronous or answer a promise, which a
 * start list awaits; what it resolves to is the subsystem's own (a listener's bound
 * address) and the list ignores it.
 */
export interface Startable {
  start(): unknown
  stop(): unknown
}

/**
 * One entry of a start list: what starts it and what stops it. A step with only
 * `stop` is a hook run at its place in the stop order (memberlist's Leave before
 * Shutdown: drain, leave); one with only `start` runs once at its place in the start
 * order (a log line). `stop` is told how the list stops (`How`: the agent's `leave`).
 */
export interface Step<How = void> {
  readonly name: string
  start?(): unknown
  stop?(how: How): unknown
}

/** A Startable as a step of a start list. */
export function startable<How = void>(name: string, subsystem: Startable): Step<How> {
  return { name, start: () => subsystem.start(), stop: () => subsystem.stop() }
}

/**
 * One ordered start list: steps start in the order given and stop in reverse, each
 * step once. Start in dependency order (memberlist: Create → Join → Leave → Shutdown),
 * so that a step only stops after everything that uses it.
 */
export class StartList<How = void> {
  private readonly started: Array<Step<How>> = []
  private starting: Promise<void> = Promise.resolve()
  private stopping: Promise<void> | undefined

  /**
   * `abort` is what the steps' `stop` is told when a failed start stops them (for the
   * agent: no leave, as a crash at start looks to peers).
   */
  constructor(
    private readonly log: Logger,
    private readonly abort: How,
  ) {}

  /**
   * Starts `steps` in order, after those already started. When one fails, every step
   * started so far (these and earlier ones) stops, in reverse, and its error is
   * thrown; a step whose start fails cleans up after itself. Refused once stopping.
   */
  start(steps: ReadonlyArray<Step<How>>): Promise<void> {
    const run = this.starting.then(() => this.startAll(steps))
    this.starting = run.catch(() => {})
    return run
  }

  /**
   * Stops every started step in reverse order (after a start in progress, which starts
   * no further step). A step that fails is logged and the next one runs. Safe to call
   * twice and concurrently: every call gets the first call's promise, whatever its `how`.
   */
  stop(how: How): Promise<void> {
    this.stopping ??= this.starting.then(() => this.stopAll(how))
    return this.stopping
  }

  private async startAll(steps: ReadonlyArray<Step<How>>): Promise<void> {
    for (const step of steps) {
      if (this.stopping != null) throw new Error(`not starting ${step.name}: stopping`)
      try {
        await step.start?.()
      } catch (err) {
        this.log.debug(`starting ${step.name} failed; stopping what started`, { error: messageOf(err) })
        // A stop asked for meanwhile runs once this start has ended; else stop here.
        if (this.stopping == null) {
          this.stopping = this.stopAll(this.abort)
          await this.stopping
        }
        throw err
      }
      this.started.push(step)
    }
  }

  private async stopAll(how: How): Promise<void> {
    for (let step = this.started.pop(); step != null; step = this.started.pop()) {
      try {
        await step.stop?.(how)
      } catch (err) {
        this.log.warn(`stopping ${step.name} failed`, { error: messageOf(err) })
      }
    }
  }
}
