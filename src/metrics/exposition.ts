import { collectDefaultMetrics, Registry } from 'prom-client'

let processRegistry: Registry | undefined

/**
 * Node.js process metrics (CPU, memory, event loop lag, GC), collected once per
 * process: they describe the process, and several agents in one process (tests,
 * the demo) would otherwise each start their own event-loop and GC observers.
 */
function processMetrics(): Registry {
  if (processRegistry == null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/** Content type of what `exposition()` renders (Prometheus text format 0.0.4). */
export const EXPOSITION_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** The registry's metrics and the process metrics, in Prometheus' text format. */
export function exposition(registry: Registry): Promise<string> {
  return Registry.merge([processMetrics(), registry]).metrics()
}
