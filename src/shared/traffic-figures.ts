import { bucketValueMs, LATENCY_BUCKETS, type TrafficSecond } from './traffic-window.js'

/** A window of traffic to one version, summed over load balancers and seconds. */
export interface TrafficFigures {
  requests: number
  errors: number
  /** errors / requests, 0–1 (0 without requests). */
  errorRate: number
  /** Percentiles of the time to the response head, in ms (null without requests). */
  p50Ms: number | null
  p90Ms: number | null
  p99Ms: number | null
}

/** Several load balancers' seconds of one version, summed per second (sorted by time). */
export function mergeSeconds(lists: ReadonlyArray<readonly TrafficSecond[]>): TrafficSecond[] {
  const byAt = new Map<number, { requests: number; errors: number; latency: Map<number, number> }>()
  for (const list of lists)
    for (const s of list) {
      let into = byAt.get(s.at)
      if (into == null) {
        into = { requests: 0, errors: 0, latency: new Map() }
        byAt.set(s.at, into)
      }
      into.requests += s.requests
      into.errors += s.errors
      for (const [i, n] of s.latency) into.latency.set(i, (into.latency.get(i) ?? 0) + n)
    }
  return [...byAt.entries()]
    .sort(([a], [b]) => a - b)
    .map(([at, s]) => ({
      at,
      requests: s.requests,
      errors: s.errors,
      latency: [...s.latency.entries()].sort(([a], [b]) => a - b),
    }))
}

/** The figures of a list of seconds (one version). */
export function figuresOf(seconds: readonly TrafficSecond[]): TrafficFigures {
  const histogram = new Float64Array(LATENCY_BUCKETS)
  let requests = 0
  let errors = 0
  for (const s of seconds) {
    requests += s.requests
    errors += s.errors
    for (const [i, n] of s.latency) if (i >= 0 && i < LATENCY_BUCKETS) histogram[i]! += n
  }
  return {
    requests,
    errors,
    errorRate: requests === 0 ? 0 : errors / requests,
    p50Ms: percentile(histogram, 0.5),
    p90Ms: percentile(histogram, 0.9),
    p99Ms: percentile(histogram, 0.99),
  }
}

/** The value below which a share `q` of the histogram's counts fall (null when empty). */
export function percentile(histogram: ArrayLike<number>, q: number): number | null {
  let total = 0
  for (let i = 0; i < histogram.length; i++) total += histogram[i]!
  if (total === 0) return null
  const rank = Math.ceil(q * total)
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!
    if (seen >= rank) return round(bucketValueMs(i))
  }
  return round(bucketValueMs(histogram.length - 1))
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}

/** One load balancer's part in a gathering. */
export interface TrafficSource {
  id: string
  service: string | null
  ok: boolean
  error: string | null
}

/** The figures of every alive load balancer for a range of seconds, summed per version and second. */
export interface GatheredTraffic {
  versions: Record<string, TrafficSecond[]>
  loadBalancers: TrafficSource[]
}
