import { figuresOf, type GatheredTraffic, type Logger, mergeSeconds, messageOf } from '../shared/index.js'
import { ANALYSIS_FETCH_PATIENCE_MS, ANALYSIS_GRACE_MS } from './constants.js'
import type { RolloutRecord } from './record.js'
import type { AnalysisWindow, WindowTraffic } from './rollout-engine.js'

/** Between two tries to reach load balancers that did not answer. */
const RETRY_MS = 1000

/**
 * The leader's figures for the analysis window under way, gathered from the load
 * balancers off the loop (a slow one must not hold up the loop that steps
 * rollouts): the loop asks, gets null until they are in, and is woken when they
 * arrive. A window no load balancer answered for is asked again until
 * ANALYSIS_FETCH_PATIENCE_MS after it ended, then judged on what there is
 * (nothing: an inconclusive verdict, never a pass).
 */
export class WindowFigures {
  private key = ''
  private result: WindowTraffic | null = null
  private inFlight = false
  private nextTry = 0

  constructor(
    private readonly gather: (range: { from: number; to: number }) => Promise<GatheredTraffic>,
    private readonly log: Logger,
  ) {}

  get(rollout: RolloutRecord, window: AnalysisWindow, now: number, wake: () => void): WindowTraffic | null {
    const key = `${rollout.id}/${window.step}/${window.from}`
    if (key !== this.key) {
      this.key = key
      this.result = null
      this.nextTry = 0
    }
    if (this.result != null) return this.result
    if (this.inFlight || now < this.nextTry) return null
    this.inFlight = true
    const range = secondsOf(window)
    const ended = Date.parse(window.to)
    this.gather(range)
      .then((got) => {
        if (this.key !== key) return
        const answered = got.loadBalancers.filter((l) => l.ok).length
        const known = got.loadBalancers.length
        if (
          known > 0 &&
          answered === 0 &&
          Date.now() < ended + ANALYSIS_GRACE_MS + ANALYSIS_FETCH_PATIENCE_MS
        ) {
          this.log.warn('no load balancer answered for the analysis window; asking again', {
            rollout: rollout.id,
            errors: got.loadBalancers.map((l) => `${l.id.slice(-8)}: ${l.error}`),
          })
          this.nextTry = Date.now() + RETRY_MS
          return
        }
        this.result = split(rollout, got, { answered, known })
      })
      .catch((err: unknown) => {
        this.log.warn('could not gather the analysis window', { rollout: rollout.id, error: messageOf(err) })
        this.nextTry = Date.now() + RETRY_MS
      })
      .finally(() => {
        this.inFlight = false
        wake()
      })
    return null
  }
}

/** The whole seconds inside a window (a load balancer counts by the second). */
export function secondsOf(window: AnalysisWindow): { from: number; to: number } {
  const from = Math.ceil(Date.parse(window.from) / 1000)
  const to = Math.max(from, Math.floor(Date.parse(window.to) / 1000) - 1)
  return { from, to }
}

/** The component version of `name@version`. */
export function versionOf(distribution: string): string {
  return distribution.slice(distribution.lastIndexOf('@') + 1)
}

/** The new version's figures against the old one's (every other version when the rollout came from none). */
function split(
  rollout: RolloutRecord,
  got: GatheredTraffic,
  sources: { answered: number; known: number },
): WindowTraffic {
  const fresh = versionOf(rollout.distribution)
  const old = rollout.from == null ? null : versionOf(rollout.from)
  const others = Object.entries(got.versions)
    .filter(([v]) => v !== fresh && (old == null || v === old))
    .map(([, seconds]) => seconds)
  return {
    canary: figuresOf(got.versions[fresh] ?? []),
    baseline: figuresOf(mergeSeconds(others)),
    sources,
  }
}
