import { z } from 'zod'
import { count, isoTime } from './common.js'

/** A window of traffic to one version, summed over the load balancers. */
export const TrafficFigures = z
  .object({
    requests: count(),
    errors: count().describe('5xx answers, and requests the backend never answered'),
    errorRate: z.number().min(0).max(1).describe('errors / requests (0 without requests)'),
    p50Ms: z.number().nullable().describe('Time to the response head, ms (null without requests)'),
    p90Ms: z.number().nullable(),
    p99Ms: z.number().nullable(),
  })
  .meta({ id: 'TrafficFigures' })

export const TrafficView = z
  .object({
    at: isoTime(),
    from: count().describe('First second (Unix time) of the range'),
    to: count().describe('Last second of the range'),
    loadBalancers: z
      .array(
        z.object({
          id: z.string(),
          service: z.string().nullable(),
          ok: z.boolean().describe('It answered'),
          error: z.string().nullable(),
        }),
      )
      .describe('Every alive load balancer asked'),
    versions: z.array(
      z.object({
        version: z.string().describe('The component version (`1.1`), as the backends announce it'),
        figures: TrafficFigures,
        series: z
          .array(
            z.object({
              at: count().describe('The second (Unix time)'),
              requests: count(),
              errors: count(),
              p99Ms: z.number().nullable(),
            }),
          )
          .describe('One entry per second that saw traffic to this version'),
      }),
    ),
  })
  .meta({ id: 'TrafficView' })
