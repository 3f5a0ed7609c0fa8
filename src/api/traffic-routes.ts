import type { Hono } from 'hono'
import { z } from 'zod'
import {
  BadRequestError,
  figuresOf,
  type GatheredTraffic,
  KEEP_SECONDS,
  LATENCY_BUCKETS,
  percentile,
} from '../shared/index.js'
import { json, type Operation, serve } from './schemas/operation.js'
import { TrafficView } from './schemas/traffic.js'

/** What the traffic endpoint needs: every load balancer's figures for a range of Unix seconds. */
export type TrafficApi = (range: { from: number; to: number }) => Promise<GatheredTraffic>

/** Default range of `GET /api/traffic`, seconds back from now. */
const DEFAULT_SECONDS = 120

export const TRAFFIC_OPERATIONS = {
  traffic: {
    method: 'get',
    path: '/api/traffic',
    operationId: 'getTraffic',
    summary: 'Requests, errors and latency per version, as every load balancer of the cluster counts them',
    description:
      'Asks each alive `shoal lb` for its per-version figures of the last `seconds` (docs/loadbalancer.md) and ' +
      'sums them: what the manager judges rollout steps by, and what the dashboard charts.',
    tag: 'rollouts',
    query: {
      seconds: z
        .number()
        .int()
        .min(1)
        .max(KEEP_SECONDS)
        .default(DEFAULT_SECONDS)
        .describe(`How far back, in seconds (1–${KEEP_SECONDS})`),
    },
    responses: { 200: json('Figures per version, and which load balancers answered', TrafficView) },
    errors: { ERR_BAD_REQUEST: '`seconds` is not a whole number from 1 to 900' },
  },
} satisfies Record<string, Operation>

/** `GET /api/traffic?seconds=N`: the load balancers' figures per version, in total and per second. */
export function trafficRoutes(app: Hono, api: () => TrafficApi | undefined): void {
  serve(app, TRAFFIC_OPERATIONS.traffic, async (c) => {
    const asked = c.req.query('seconds')
    const seconds = asked == null ? DEFAULT_SECONDS : Number(asked)
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > KEEP_SECONDS)
      throw new BadRequestError(`seconds must be a whole number from 1 to ${KEEP_SECONDS}`)
    // The current second is still being counted: it ends the range anyway, so the chart moves.
    const to = Math.floor(Date.now() / 1000)
    const from = to - seconds + 1
    const gather = api()
    const got: GatheredTraffic =
      gather == null ? { versions: {}, loadBalancers: [] } : await gather({ from, to })
    return c.json({
      at: new Date().toISOString(),
      from,
      to,
      loadBalancers: got.loadBalancers,
      versions: Object.entries(got.versions)
        .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
        .map(([version, list]) => ({
          version,
          figures: figuresOf(list),
          series: list.map((s) => {
            const histogram = new Float64Array(LATENCY_BUCKETS)
            for (const [i, n] of s.latency) histogram[i] = n
            return { at: s.at, requests: s.requests, errors: s.errors, p99Ms: percentile(histogram, 0.99) }
          }),
        })),
    })
  })
}
