/**
 * Per-version traffic figures as a load balancer sees them: for each version of
 * the served component, one bucket per second (requests, errors, a latency
 * histogram), kept for KEEP_SECONDS. Histograms add up, percentiles do not: the
 * manager and the dashboard sum the buckets of several load balancers and of a
 * whole window, then read percentiles off the sum (traffic-figures.ts).
 */

/** Seconds of history kept per version: long enough for a manager that took over mid-window to judge it. */
export const KEEP_SECONDS = 900

/**
 * Latency buckets: bucket i holds latencies up to 2^(i/6) / 4 ms (12 % apart), so a
 * percentile read from it is within 6 % of the true value; the last one holds
 * everything above ~4.4 minutes.
 */
export const LATENCY_BUCKETS = 128
const STEPS_PER_DOUBLING = 6
const FIRST_BOUND_MS = 0.25

/** The bucket a latency falls in. */
export function latencyBucket(ms: number): number {
  if (!(ms > FIRST_BOUND_MS)) return 0
  const i = Math.ceil(STEPS_PER_DOUBLING * Math.log2(ms / FIRST_BOUND_MS))
  return i >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : i
}

/** The upper bound of bucket i, in ms. */
export function bucketBoundMs(i: number): number {
  return FIRST_BOUND_MS * 2 ** (i / STEPS_PER_DOUBLING)
}

/** What a bucket stands for when a percentile falls in it: the middle of its range (geometric). */
export function bucketValueMs(i: number): number {
  return i === 0 ? FIRST_BOUND_MS / 2 : bucketBoundMs(i - 0.5)
}

/**
 * One second of traffic to one version, as one load balancer counted it. On the
 * wire `latency` is sparse: `[[bucket, count], …]`.
 */
export interface TrafficSecond {
  /** The second (Unix time, s). */
  at: number
  requests: number
  /** 5xx answers, and requests the backend never answered (refused, reset, timed out). */
  errors: number
  latency: Array<[number, number]>
}

interface Slot {
  at: number
  requests: number
  errors: number
  latency: Uint32Array
}

/** One version's ring of seconds. */
class VersionRing {
  private readonly slots: Array<Slot | undefined>
  lastAt = 0

  constructor(private readonly keep: number) {
    this.slots = new Array(keep)
  }

  slot(at: number): Slot {
    const index = at % this.keep
    let slot = this.slots[index]
    if (slot == null) {
      slot = { at, requests: 0, errors: 0, latency: new Uint32Array(LATENCY_BUCKETS) }
      this.slots[index] = slot
    } else if (slot.at !== at) {
      slot.at = at
      slot.requests = 0
      slot.errors = 0
      slot.latency.fill(0)
    }
    if (at > this.lastAt) this.lastAt = at
    return slot
  }

  seconds(from: number, to: number): TrafficSecond[] {
    const out: TrafficSecond[] = []
    for (let at = Math.max(from, this.lastAt - this.keep + 1); at <= to; at++) {
      const slot = this.slots[at % this.keep]
      if (slot == null || slot.at !== at || slot.requests === 0) continue
      const latency: Array<[number, number]> = []
      for (let i = 0; i < LATENCY_BUCKETS; i++) if (slot.latency[i]! > 0) latency.push([i, slot.latency[i]!])
      out.push({ at, requests: slot.requests, errors: slot.errors, latency })
    }
    return out
  }
}

/**
 * Records every answered or failed request by the version that served it. Cheap
 * on the hot path: one division, one array write, no allocation after a
 * version's first second in the ring.
 */
export class TrafficRecorder {
  private readonly versions = new Map<string, VersionRing>()

  constructor(
    private readonly keepSeconds = KEEP_SECONDS,
    private readonly now: () => number = Date.now,
  ) {}

  /** One request to `version`: `failed` when it answered 5xx or not at all; latency to its response head. */
  record(version: string, failed: boolean, latencyMs: number): void {
    this.recordMany(version, 1, failed ? 1 : 0, latencyMs)
  }

  /**
   * `requests` requests at once, `errors` of them failed, all put at `latencyMs`
   * (HAProxy's counters give a count and an average, not each request).
   */
  recordMany(version: string, requests: number, errors: number, latencyMs: number): void {
    if (requests <= 0) return
    let ring = this.versions.get(version)
    if (ring == null) {
      ring = new VersionRing(this.keepSeconds)
      this.versions.set(version, ring)
    }
    const slot = ring.slot(Math.floor(this.now() / 1000))
    slot.requests += requests
    slot.errors += errors
    slot.latency[latencyBucket(latencyMs)]! += requests
  }

  /**
   * The seconds from `from` to `to` (Unix s, both included) that saw traffic, by
   * version; versions silent for longer than the history are forgotten.
   */
  seconds(from: number, to: number): Record<string, TrafficSecond[]> {
    const out: Record<string, TrafficSecond[]> = {}
    const oldest = Math.floor(this.now() / 1000) - this.keepSeconds
    for (const [version, ring] of this.versions) {
      if (ring.lastAt < oldest) {
        this.versions.delete(version)
        continue
      }
      const list = ring.seconds(from, to)
      if (list.length > 0) out[version] = list
    }
    return out
  }
}
