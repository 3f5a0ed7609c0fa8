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

/** The proxy's counters and a latency histogram, rendered in Prometheus' text format. */
export class ProxyMetrics {
  requests = 0
  retries = 0
  noBackend = 0
  failed = 0
  upgrades = 0
  private readonly buckets = new Array<number>(BUCKETS.length).fill(0)
  private sum = 0
  private count = 0

  observe(seconds: number): void {
    this.sum += seconds
    this.count++
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) this.buckets[i]!++
  }

  render(
    backends: Array<{ key: string; state: string; inflight: number; counters: BackendCounters }>,
    service: string,
  ): string {
    const lines: string[] = []
    const metric = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
    metric('shoal_lb_requests_total', 'counter', 'Requests received by the proxy.')
    lines.push(`shoal_lb_requests_total{service="${label(service)}"} ${this.requests}`)
    metric('shoal_lb_retries_total', 'counter', 'Requests retried on another backend.')
    lines.push(`shoal_lb_retries_total ${this.retries}`)
    metric('shoal_lb_no_backend_total', 'counter', 'Requests answered 503 because no backend was ready.')
    lines.push(`shoal_lb_no_backend_total ${this.noBackend}`)
    metric('shoal_lb_failed_total', 'counter', 'Requests answered 502/504 after a backend failure.')
    lines.push(`shoal_lb_failed_total ${this.failed}`)
    metric('shoal_lb_upgrades_total', 'counter', 'Upgraded (WebSocket) connections.')
    lines.push(`shoal_lb_upgrades_total ${this.upgrades}`)
    metric('shoal_lb_backend_requests_total', 'counter', 'Requests sent to a backend.')
    for (const b of backends)
      lines.push(`shoal_lb_backend_requests_total{backend="${label(b.key)}"} ${b.counters.requests}`)
    metric('shoal_lb_backend_responses_total', 'counter', 'Responses from a backend by status class.')
    for (const b of backends)
      for (const [klass, n] of Object.entries(b.counters.responses))
        lines.push(`shoal_lb_backend_responses_total{backend="${label(b.key)}",code="${klass}"} ${n}`)
    metric('shoal_lb_backend_failures_total', 'counter', 'Connect errors, resets and timeouts at a backend.')
    for (const b of backends)
      lines.push(`shoal_lb_backend_failures_total{backend="${label(b.key)}"} ${b.counters.failures}`)
    metric('shoal_lb_backend_inflight', 'gauge', 'Requests in flight to a backend.')
    for (const b of backends) lines.push(`shoal_lb_backend_inflight{backend="${label(b.key)}"} ${b.inflight}`)
    metric('shoal_lb_backend_up', 'gauge', '1 when the backend takes new requests.')
    for (const b of backends)
      lines.push(
        `shoal_lb_backend_up{backend="${label(b.key)}",state="${b.state}"} ${b.state === 'ready' ? 1 : 0}`,
      )
    metric(
      'shoal_lb_request_duration_seconds',
      'histogram',
      'Time to the response headers, proxied requests.',
    )
    for (let i = 0; i < BUCKETS.length; i++)
      lines.push(`shoal_lb_request_duration_seconds_bucket{le="${BUCKETS[i]}"} ${this.buckets[i]}`)
    lines.push(`shoal_lb_request_duration_seconds_bucket{le="+Inf"} ${this.count}`)
    lines.push(
      `shoal_lb_request_duration_seconds_sum ${this.sum}`,
      `shoal_lb_request_duration_seconds_count ${this.count}`,
    )
    return `${lines.join('\n')}\n`
  }
}
