import { Counter, collectDefaultMetrics, Registry } from 'prom-client'

let processRegistry: Registry | undefined

/** prom-client's CPU counters, which count from the moment they are made. */
const CPU_COUNTERS = [
  ['process_cpu_user_seconds_total', 'user'],
  ['process_cpu_system_seconds_total', 'system'],
  ['process_cpu_seconds_total', 'both'],
] as const

/**
 * Starts Node.js's process metrics (CPU, memory, event loop lag, GC) once per
 * process; safe to call again. They describe the process, and several agents in
 * one process (tests, the demo) would otherwise each start their own event-loop
 * and GC observers. Call it when the process starts its work (an agent's start,
 * a metrics listener's): started at the first scrape instead, the event-loop
 * histogram has no samples yet (min 9223372036.85 s, mean NaN) and the CPU
 * counters start from zero.
 */
export function startProcessMetrics(): Registry {
  if (processRegistry == null) {
    const registry = new Registry()
    const before = process.cpuUsage()
    collectDefaultMetrics({ register: registry })
    // The counters count from their making; add what the process used before, so
    // process_cpu_seconds_total is the process's total, as Prometheus expects.
    for (const [name, part] of CPU_COUNTERS) {
      const counter = registry.getSingleMetric(name)
      const micros =
        part === 'user' ? before.user : part === 'system' ? before.system : before.user + before.system
      if (counter instanceof Counter) counter.inc(micros / 1e6)
    }
    processRegistry = registry
  }
  return processRegistry
}

/** Content type of what `exposition()` renders (Prometheus text format 0.0.4). */
export const EXPOSITION_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** The registry's metrics and the process metrics, in Prometheus' text format. */
export function exposition(registry: Registry): Promise<string> {
  return Registry.merge([startProcessMetrics(), registry]).metrics()
}
