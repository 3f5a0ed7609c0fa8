/**
 * How the long-running commands (`shoal agent`, `shoal lb`, `shoal demo`) answer
 * SIGINT, SIGTERM and SIGHUP.
 *
 * One stop request often arrives as several signals: Ctrl-C in a terminal
 * reaches every process of the foreground group (npx, the demo, its agents),
 * and then a parent passes it on (npx to the demo, the demo to its agents); a
 * service manager with `KillMode=control-group` signals every process of the
 * unit at once. So the first signal starts the graceful stop, and any signal
 * within REPEAT_WINDOW_MS of it is the same request. A signal that comes later
 * is an operator insisting: the command ends what it started at once (`force`)
 * and exits with FORCED_EXIT_CODE. docs/operations.md, "Stopping".
 */

/**
 * Signals that ask for a stop. SIGHUP too: a closed terminal sends it to the
 * whole foreground group, and the default (exit at once) would leave components
 * behind.
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
/** Signals this soon after the first are the same stop request (ms). */
export const REPEAT_WINDOW_MS = 5000
/** Exit code of a stop forced by a later signal (128 + SIGINT, as a shell reports Ctrl-C). */
export const FORCED_EXIT_CODE = 130
/** Longest a forced stop may take before the process exits regardless (ms). */
const FORCE_LIMIT_MS = 10_000

export type StopSignalAction = 'stop' | 'repeat' | 'force'

/** What a signal means, given when the first one came (null: this is the first). */
export function classifyStopSignal(
  firstAt: number | null,
  now: number,
  windowMs = REPEAT_WINDOW_MS,
): StopSignalAction {
  if (firstAt == null) return 'stop'
  return now - firstAt < windowMs ? 'repeat' : 'force'
}

export interface StopSignalsInit {
  /** The graceful stop; the process exits 0 when it resolves, 1 when it throws. */
  stop(signal: NodeJS.Signals): Promise<void>
  /** Ends at once what the command started (a later signal insisted); bounded by FORCE_LIMIT_MS. */
  force?(): Promise<void> | void
  /** Where the command tells the operator what a signal did (stderr by default). */
  note?(text: string): void
  windowMs?: number
}

/**
 * Installs SIGINT, SIGTERM and SIGHUP handlers that turn the signals into one graceful
 * stop, or a forced one (see the file comment). Returns the handler, so a
 * command can start the same stop for another reason (`trigger('SIGTERM')`).
 */
export function handleStopSignals(init: StopSignalsInit): (signal: NodeJS.Signals) => void {
  const note = init.note ?? ((text: string) => console.error(text))
  const windowMs = init.windowMs ?? REPEAT_WINDOW_MS
  let firstAt: number | null = null
  let first: NodeJS.Signals | null = null
  let repeatNoted = false
  let forcing = false
  const onSignal = (signal: NodeJS.Signals) => {
    // The terminal is gone: what is still said on it would fail with EIO and crash the stop.
    if (signal === 'SIGHUP') for (const out of [process.stdout, process.stderr]) out.on('error', () => {})
    const action = classifyStopSignal(firstAt, Date.now(), windowMs)
    if (action === 'stop') {
      firstAt = Date.now()
      first = signal
      init.stop(signal).then(
        () => process.exit(0),
        (err: unknown) => {
          note(`stopping failed: ${err instanceof Error ? err.message : String(err)}`)
          process.exit(1)
        },
      )
      return
    }
    if (action === 'repeat') {
      if (!repeatNoted)
        note(
          `${signal} after ${first}: the graceful stop under way continues (a signal ${windowMs / 1000} s or more after the first forces the exit)`,
        )
      repeatNoted = true
      return
    }
    if (forcing) process.exit(FORCED_EXIT_CODE)
    forcing = true
    note(`${signal} again while stopping: forcing the exit`)
    setTimeout(() => process.exit(FORCED_EXIT_CODE), FORCE_LIMIT_MS).unref()
    Promise.resolve()
      .then(() => init.force?.())
      .catch((err: unknown) => note(`forced stop: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => process.exit(FORCED_EXIT_CODE))
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal)
  return onSignal
}
