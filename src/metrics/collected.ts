import { Counter, Gauge, type LabelValues, type Registry } from 'prom-client'

/** What a collected metric reads at scrape time: one value, or one per label set. */
export type Reading<L extends string> = number | Iterable<readonly [LabelValues<L>, number]>

export interface CollectedInit<L extends string> {
  name: string
  help: string
  labelNames?: readonly L[]
  /** Called at every scrape; the numbers live where the work is done, not here. */
  read: () => Reading<L>
}

/**
 * A gauge whose series are replaced by `read()` at every scrape, so a label set
 * that no longer exists (a departed backend, a finished rollout) disappears.
 */
export function collectedGauge<L extends string>(registry: Registry, init: CollectedInit<L>): Gauge<L> {
  const { read, ...config } = init
  return new Gauge<L>({
    ...config,
    labelNames: config.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset()
      const reading = read()
      if (typeof reading === 'number') this.set(reading)
      else for (const [labels, value] of reading) this.set(labels, value)
    },
  })
}

/**
 * A counter that mirrors a total kept by a subsystem (its stats object): the
 * total is copied at every scrape instead of every increment going through here.
 */
export function collectedCounter<L extends string>(registry: Registry, init: CollectedInit<L>): Counter<L> {
  const { read, ...config } = init
  return new Counter<L>({
    ...config,
    labelNames: config.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset()
      const reading = read()
      if (typeof reading === 'number') this.inc(reading)
      else for (const [labels, value] of reading) this.inc(labels, value)
    },
  })
}

/** 1 for true: the Prometheus way to export a flag. */
export const flag = (value: boolean): number => (value ? 1 : 0)
