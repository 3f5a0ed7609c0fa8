/**
 * A simulation run's main loop: events in order until none is left before
 * `end`, a violation is found, or the run has settled (every fault healed and
 * the cluster converged). More than `maxSteps` events is a message storm and an
 * exception is a bug: both are reported as violations.
 */
import type { EventQueue } from './event-queue.js'

/** What every simulation run reports, besides its own counts. */
export interface RunStats {
  /** Simulated time the run took, ms. */
  simulatedMs: number
  /** Events the processes handled. */
  events: number
  /** Leaders seen, one per term. */
  leaders: number
  /** Most nodes acting as leader at one instant (two is a violation). */
  maxActingAtOnce: number
  /** Faults injected, by kind. */
  faults: Record<string, number>
}

export interface EventRun {
  readonly queue: EventQueue
  /** Simulated time at which the run stops whatever its state, ms. */
  readonly end: number
  readonly maxSteps: number
  /** A violation was found: the run stops. */
  failed(): boolean
  /** Asked after every event: the run may stop. */
  settled(): boolean
  fail(message: string): void
}

export function runEvents(run: EventRun): void {
  const { queue, end, maxSteps } = run
  let steps = 0
  try {
    for (;;) {
      if (!queue.step(end)) break
      if (run.failed()) break
      if (++steps > maxSteps) {
        run.fail(`liveness: more than ${maxSteps} events (a message storm?)`)
        break
      }
      if (run.settled()) break
    }
  } catch (err) {
    run.fail(`exception: ${(err as Error).stack ?? err}`)
  }
}
