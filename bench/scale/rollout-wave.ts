import type { MemberMetadata } from '../../src/membership/index.js'

/**
 * A rollout's metadata on every member at once, 6 members watching: until every
 * watcher holds every member's final details (steps included); bytes each member
 * sent (until then + 2 s), and what each watcher received.
 */
export interface RolloutWave {
  everyUpdateEverywhereMs: number | null
  sentBytesPerNode: number
  windowMs: number
  steps?: number
  watchers?: number
  watcherReceivedBytes?: number
}

/** Members that watch in the rollout wave: the manager's 5 voters and one load balancer. */
export const WAVE_WATCHERS = 6
/** ms between two steps of a node's rollout in the wave. */
export const WAVE_STEP_MS = 1000

const endpoint = 'http://127.0.0.1:8080'

/**
 * What one node writes about itself during a rolling update to `version`, step by
 * step, as the artifacts' distributor and the runtime announce it (their keys'
 * reach decides who hears of each: docs/architecture.md, "Member metadata"):
 * fetching, held and installing, switching make-before-break, done. A real switch
 * writes more steps than these within the 100 ms the announcements coalesce over.
 */
export function rolloutSteps(from: string, version: string): MemberMetadata[] {
  const running = (v: string, state: string, instance?: number) => ({
    name: 'web',
    version: v,
    ...(instance == null ? {} : { instance }),
    state,
    endpoint,
    provides: ['web'],
    weight: 100,
  })
  const runtime = (phase: string) => ({ target: version, phase, error: null })
  return [
    { fetching: [version], runtime: runtime('fetching') },
    {
      fetching: [],
      dists: { [version]: 'a1b2c3d4e5f60718', [from]: '0f1e2d3c4b5a6978' },
      runtime: runtime('installing'),
    },
    { runtime: runtime('switching'), components: [running(from, 'ready'), running(version, 'starting', 1)] },
    {
      runtime: runtime('done'),
      components: [running(version, 'ready')],
      ready: true,
      distribution: version,
    },
  ]
}
