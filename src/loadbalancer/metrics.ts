import { Histogram, Registry } from 'prom-client'
import { collectedCounter, collectedGauge, exposition, flag } from '../metrics/index.js'

/** Latency buckets (seconds) of the request histogram. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export interface BackendCounters {
  requests: number
  /** Responses by status class: 2xx, 3xx, 4xx, 5xx. */
  responses: Record<string, number>
  /** Requests that failed at this backend (connect, reset, timeout). */
  failures: number
  ejections: number
}

export function emptyCounters(): BackendCounters {
  return { requests: 0, responses: {}, failures: 0, ejections: 0 }
}

/** A backend as the metrics see it at scrape time. */
export interface BackendSample {
  key: string
  /** ready, draining, ejected, removed (still finishing requests), ... */
  state: string
  inflight: number
  counters: BackendCounters
}

/**
 * The proxy's counters (kept here as plain numbers, which `status()` shows too)
 * and a latency histogram per backend, exported through prom-client on a
 * registry of this proxy's own.
 */
export class ProxyMetrics {
  requests = 0
  retries = 0
  noBackend = 0
  failed = 0
  upgrades = 0
  readonly registry = new Registry()
  private readonly latency: Histogram<'backend'>

  constructor(service: string, backends: () => BackendSample[]) {
    const registry = this.registry
    collectedCounter(registry, {
      name: 'shoal_lb_requests_total',
      help: 'Requests received by the proxy.',
      labelNames: ['service'],
      read: () => [[{ service }, this.requests]],
    })
    collectedCounter(registry, {
      name: 'shoal_lb_retries_total',
      help: 'Requests retried on another backend.',
      read: () => this.retries,
    })
    collectedCounter(registry, {
      name: 'shoal_lb_no_backend_total',
      help: 'Requests answered 503 because no backend was ready.',
      read: () => this.noBackend,
    })
    collectedCounter(registry, {
      name: 'shoal_lb_failed_total',
      help: 'Requests answered 502/504 after a backend failure.',
      read: () => this.failed,
    })
    collectedCounter(registry, {
      name: 'shoal_lb_upgrades_total',
      help: 'Upgraded (WebSocket) connections.',
      read: () => this.upgrades,
    })
    collectedCounter(registry, {
      name: 'shoal_lb_backend_requests_total',
      help: 'Requests sent to a backend (retries included).',
      labelNames: ['backend'],
      read: () => backends().map((b) => [{ backend: b.key }, b.counters.requests] as const),
    })
    collectedCounter(registry, {
      name: 'shoal_lb_backend_responses_total',
      help: 'Responses from a backend by status class (2xx, 3xx, 4xx, 5xx).',
      labelNames: ['backend', 'code'],
      read: () =>
        backends().flatMap((b) =>
          Object.entries(b.counters.responses).map(([code, n]) => [{ backend: b.key, code }, n] as const),
        ),
    })
    collectedCounter(registry, {
      name: 'shoal_lb_backend_failures_total',
      help: 'Connect errors, resets and timeouts at a backend.',
      labelNames: ['backend'],
      read: () => backends().map((b) => [{ backend: b.key }, b.counters.failures] as const),
    })
    collectedCounter(registry, {
      name: 'shoal_lb_backend_ejections_total',
      help: 'Times a backend was left out after refusing connections.',
      labelNames: ['backend'],
      read: () => backends().map((b) => [{ backend: b.key }, b.counters.ejections] as const),
    })
    collectedGauge(registry, {
      name: 'shoal_lb_backend_inflight',
      help: 'Requests in flight to a backend.',
      labelNames: ['backend'],
      read: () => backends().map((b) => [{ backend: b.key }, b.inflight] as const),
    })
    collectedGauge(registry, {
      name: 'shoal_lb_backend_up',
      help: '1 when the backend takes new requests; the state label says why not.',
      labelNames: ['backend', 'state'],
      read: () =>
        backends().map((b) => [{ backend: b.key, state: b.state }, flag(b.state === 'ready')] as const),
    })
    this.latency = new Histogram({
      name: 'shoal_lb_request_duration_seconds',
      help: 'Time from the request to the response headers, by the backend that answered.',
      labelNames: ['backend'],
      buckets: BUCKETS,
      registers: [registry],
    })
  }

  /** A backend answered `seconds` after the request arrived. */
  observe(backend: string, seconds: number): void {
    this.latency.observe({ backend }, seconds)
  }

  /** The backend is gone: its latency series go with it instead of piling up as nodes come and go. */
  forget(backend: string): void {
    this.latency.remove({ backend })
  }

  /** Prometheus text format: these metrics and the process's. */
  render(): Promise<string> {
    return exposition(this.registry)
  }
}
