import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { isLoadBalancer, type Member } from '../membership/index.js'
import {
  decodeJson,
  encodeJson,
  exchange,
  type GatheredTraffic,
  KEEP_SECONDS,
  LATENCY_BUCKETS,
  type Logger,
  mergeSeconds,
  messageOf,
  type StreamNetwork,
  serve,
  type TrafficRecorder,
  type TrafficSecond,
  type TrafficSource,
} from '../shared/index.js'
import { loadBalancerAnnouncement } from './announcement.js'

/**
 * `/shoal/<cluster>/traffic/1.0.0`: a load balancer's per-version figures for a
 * range of seconds, asked for by the manager (to judge a rollout step) and by any
 * agent's API (the dashboard's chart). Pulled from each load balancer rather than
 * put in member metadata, which every member would receive (docs/architecture.md,
 * "Member metadata"). Steps:
 * 1. dial the load balancer (the cluster's own libp2p connection: private network, noise),
 * 2. write `{"v":1,"from":S,"to":S}` (Unix seconds, at most KEEP_SECONDS apart),
 * 3. read `{"v":1,"service":…,"versions":{"<version>":[TrafficSecond…]}}` (at most MAX_ANSWER_BYTES),
 * 4. close. One deadline (TRAFFIC_TIMEOUT_MS) for all of it.
 */
export const trafficProtocol = (cluster: string): string => `/shoal/${cluster}/traffic/1.0.0`

/** Deadline of one exchange with one load balancer. */
export const TRAFFIC_TIMEOUT_MS = 3000
/** 900 s of 3 versions with ~30 latency buckets each is ~600 KB; room for more versions. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024

const request = z.strictObject({
  v: z.literal(1),
  from: z.number().int().min(0),
  to: z.number().int().min(0),
})

const second = z.strictObject({
  at: z.number().int().min(0),
  requests: z.number().int().min(0),
  errors: z.number().int().min(0),
  latency: z
    .array(
      z.tuple([
        z
          .number()
          .int()
          .min(0)
          .max(LATENCY_BUCKETS - 1),
        z.number().int().min(0),
      ]),
    )
    .max(LATENCY_BUCKETS),
})

const answer = z.strictObject({
  v: z.literal(1),
  service: z.string().max(128),
  versions: z.record(z.string().max(128), z.array(second).max(KEEP_SECONDS + 1)),
})

/** Serves this load balancer's figures (from the built-in proxy and, when it drives one, HAProxy). */
export async function serveTraffic(
  network: StreamNetwork,
  cluster: string,
  service: string,
  recorders: () => TrafficRecorder[],
  log: Logger,
): Promise<void> {
  await serve(
    network,
    trafficProtocol(cluster),
    { timeoutMs: TRAFFIC_TIMEOUT_MS, maxBytes: 1024 },
    log,
    async (ch) => {
      const asked = decodeJson(request, await ch.read(), 'traffic request')
      const from = Math.max(asked.from, asked.to - KEEP_SECONDS)
      const versions: Record<string, TrafficSecond[][]> = {}
      for (const recorder of recorders())
        for (const [version, seconds] of Object.entries(recorder.seconds(from, asked.to))) {
          versions[version] ??= []
          versions[version].push(seconds)
        }
      const merged = Object.fromEntries(
        Object.entries(versions).map(([version, lists]) => [
          version,
          lists.length === 1 ? lists[0]! : mergeSeconds(lists),
        ]),
      )
      await ch.write(encodeJson({ v: 1, service, versions: merged }))
    },
  )
}

/**
 * Asks every alive load balancer of `members` for the seconds `from`..`to` (Unix
 * s, both included), at once, and sums what they answer by version and second. A
 * load balancer that does not answer in time is listed with its error.
 */
export async function gatherTraffic(
  network: StreamNetwork,
  cluster: string,
  members: readonly Member[],
  range: { from: number; to: number },
  signal?: AbortSignal,
): Promise<GatheredTraffic> {
  const lbs = members.filter((m) => !m.self && m.state === 'alive' && isLoadBalancer(m))
  const lists: Record<string, TrafficSecond[][]> = {}
  const loadBalancers = await Promise.all(
    lbs.map(async (m): Promise<TrafficSource> => {
      const service = loadBalancerAnnouncement.of(m).service ?? null
      try {
        const got = await exchange(
          network,
          peerIdFromString(m.id),
          trafficProtocol(cluster),
          {
            timeoutMs: TRAFFIC_TIMEOUT_MS,
            maxBytes: MAX_ANSWER_BYTES,
            ...(signal == null ? {} : { signal }),
          },
          async (ch) => {
            await ch.write(encodeJson({ v: 1, from: range.from, to: range.to }))
            return decodeJson(answer, await ch.read(), 'traffic answer')
          },
        )
        for (const [version, seconds] of Object.entries(got.versions)) {
          lists[version] ??= []
          lists[version].push(seconds.filter((s) => s.at >= range.from && s.at <= range.to))
        }
        return { id: m.id, service: got.service, ok: true, error: null }
      } catch (err) {
        return { id: m.id, service, ok: false, error: messageOf(err) }
      }
    }),
  )
  const versions = Object.fromEntries(Object.entries(lists).map(([version, l]) => [version, mergeSeconds(l)]))
  return { versions, loadBalancers }
}
