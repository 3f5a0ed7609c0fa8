import { setTimeout as sleep } from 'node:timers/promises'
import { MultiBar, Presets, type SingleBar } from 'cli-progress'
import type { DistributionView } from '../artifacts/index.js'
import type { ApiClient } from './client.js'
import { WaitTimeoutError } from './errors.js'
import { formatBytes } from './table.js'

export interface WatchOptions {
  /** Only this distribution: a name (every version) or NAME@VERSION. */
  only: string | null
  timeoutMs: number
  /** A bar per incomplete version on stderr, when it is a terminal. */
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
 */
export async function watchDistributions(
  client: ApiClient,
  options: WatchOptions,
): Promise<DistributionView[]> {
  const deadline = Date.now() + options.timeoutMs
  const bars = new Map<string, SingleBar>()
  let multi: MultiBar | null = null
  try {
    for (;;) {
      const list = selectDistributions(
        await client.get<DistributionView[]>('/api/distributions'),
        options.only,
      )
      const pending = list.filter((d) => !d.complete)
      if (options.progress && process.stderr.isTTY) {
        multi ??= new MultiBar(
          {
            format: '{id} [{bar}] {percentage}% | {value}/{total} chunks of {size}',
            stream: process.stderr,
            hideCursor: true,
          },
          Presets.shades_classic,
        )
        const width = Math.max(...list.map((d) => d.id.length))
        for (const d of list) {
          let bar = bars.get(d.id)
          if (bar == null && d.complete) continue // held before we started: nothing to show
          bar ??= multi.create(d.progress.total, d.progress.chunks, {
            id: d.id.padEnd(width),
            size: formatBytes(d.bytes),
          })
          bars.set(d.id, bar)
          bar.setTotal(d.progress.total)
          bar.update(d.complete ? d.progress.total : d.progress.chunks)
        }
      }
      if (pending.length === 0 && (options.only == null || list.length > 0)) return list
      if (Date.now() > deadline) {
        const seconds = Math.round(options.timeoutMs / 1000)
        throw new WaitTimeoutError(
          list.length === 0
            ? `no version of ${options.only} known to this agent after ${seconds} s`
            : `not every version held after ${seconds} s: ${pending.map((d) => `${d.id} (${d.progress.chunks}/${d.progress.total} chunks)`).join(', ')}`,
        )
      }
      await sleep(500)
    }
  } finally {
    multi?.stop()
  }
}
