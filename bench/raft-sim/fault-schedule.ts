/**
 * When faults strike: the first a random while after the start, then one after
 * another at random gaps until the fault window ends, each kind drawn by its
 * weight. Every fault is counted by kind and given a duration (0.3–5.3 s) for
 * the kinds that last.
 */
import type { Random } from '../random.js'
import type { EventQueue } from './event-queue.js'

export interface FaultSchedule<Kind extends string> {
  readonly queue: EventQueue
  readonly random: Random
  /** No fault strikes after this time, ms. */
  readonly faultMs: number
  /** Each kind with its weight; the first is the fallback. */
  readonly weights: ReadonlyArray<readonly [Kind, number]>
  /** The first fault strikes between these times after the start, ms. */
  readonly firstMs: readonly [number, number]
  /** Each next one between these times after the last, ms. */
  readonly gapMs: readonly [number, number]
  /** Faults struck so far, by kind. */
  readonly counts: Record<string, number>
  inject(kind: Kind, duration: number): void
}

export function scheduleFaults<Kind extends string>(schedule: FaultSchedule<Kind>): void {
  const { queue, random, faultMs, weights, counts } = schedule
  const total = weights.reduce((s, [, w]) => s + w, 0)
  const within = ([min, max]: readonly [number, number]) => min + random() * (max - min)

  const next = () => {
    if (queue.now >= faultMs) return
    let r = random() * total
    let kind = weights[0]![0]
    for (const [k, w] of weights) {
      r -= w
      if (r < 0) {
        kind = k
        break
      }
    }
    counts[kind] = (counts[kind] ?? 0) + 1
    schedule.inject(kind, 300 + random() * 5000)
    queue.after(within(schedule.gapMs), next)
  }
  queue.after(within(schedule.firstMs), next)
}
