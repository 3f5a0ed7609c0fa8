import { setTimeout as sleep } from 'node:timers/promises'
import { MultiBar, Presets, type SingleBar } from 'cli-progress'
import type { DistributionView } from '../artifacts/index.js'
import type { ApiClient } from './client.js'
import { WaitTimeoutError } from './errors.js'
import { barSize, bytesHeld, formatSize, ProgressLog, percentHeld, transferStatus } from './transfer-line.js'

export interface WatchOptions {
  /** Only this distribution: a name (every version) or NAME@VERSION. */
  only: string | null
  timeoutMs: number
  /**
   * Progress on stderr: a bar per incomplete version (rate, sources, ETA) when
   * it is a terminal, else a line per version at most every PROGRESS_LOG_MS.
   */
  progress: boolean
}

/** The versions `only` selects (all without it). */
export function selectDistributions(list: DistributionView[], only: string | null): DistributionView[] {
  return only == null ? list : list.filter((d) => d.id === only || d.name === only)
}

/**
 * `shoal distributions --watch`: polls `GET /api/distributions` until this agent
 * holds every selected version (each view's `progress` counts the chunks it
 * holds), then answers the final list. A version named with `only` that the
 * agent does not know yet is waited for: gossip may not have brought it.
 * Progress goes to stderr only: stdout is the caller's, for the final list.
 */
export async function watchDistributions(
  client: ApiClient,
  options: WatchOptions,
): Promise<DistributionView[]> {
  const deadline = Date.now() + options.timeoutMs
  const bars = new Map<string, SingleBar>()
  let multi: MultiBar | null = null
  let log: ProgressLog | null = null
  try {
    for (;;) {
      const list = selectDistributions(
        await client.get<DistributionView[]>('/api/distributions'),
        options.only,
      )
      const pending = list.filter((d) => !d.complete)
      if (options.progress && process.stderr.isTTY) {
        const width = Math.max(...list.map((d) => d.id.length))
        multi ??= new MultiBar(
          {
            format: '{id} [{bar}] {held}% of {size} · {status}',
            // The terminal crops each line to its width: the bar gives way so rate, sources and ETA stay.
            barsize: barSize(process.stderr.columns, width),
            stream: process.stderr,
            hideCursor: true,
          },
          Presets.shades_classic,
        )
        for (const d of list) {
          let bar = bars.get(d.id)
          if (bar == null && d.complete) continue // held before we started: nothing to show
          // Bytes, not chunks: the rate and the ETA are in bytes too.
          const payload = {
            id: d.id.padEnd(width),
            held: String(percentHeld(d)).padStart(3),
            size: formatSize(d.bytes).padStart(8),
            status: transferStatus(d),
          }
          bar ??= multi.create(Math.max(1, d.bytes), bytesHeld(d), payload)
          bars.set(d.id, bar)
          bar.setTotal(Math.max(1, d.bytes))
          bar.update(d.complete ? Math.max(1, d.bytes) : bytesHeld(d), payload)
        }
      } else if (options.progress) {
        log ??= new ProgressLog()
        for (const line of log.lines(list, Date.now())) process.stderr.write(`${line}\n`)
      }
      if (pending.length === 0 && (options.only == null || list.length > 0)) return list
      if (Date.now() > deadline) {
        const seconds = Math.round(options.timeoutMs / 1000)
        throw new WaitTimeoutError(
          list.length === 0
            ? `no version of ${options.only} known to this agent after ${seconds} s`
            : `not every version held after ${seconds} s: ${pending.map(stuck).join(', ')}`,
        )
      }
      await sleep(500)
    }
  } finally {
    multi?.stop()
  }
}

/** A version not held when the watch gave up, and why it may wait (a full disk). */
function stuck(d: DistributionView): string {
  const paused = d.transfer?.paused
  return `${d.id} (${d.progress.chunks}/${d.progress.total} chunks${paused == null ? '' : `; paused: ${paused.message}`})`
}
