import { z } from 'zod'
import { type Announced, Announcement, type Member, metadataBytes } from '../membership/index.js'

const distributionId = z.string().min(1).max(200)

/**
 * What the distributor announces about its node: the versions it holds whole and
 * the ones it is fetching, so peers know whom to ask for chunks. Sizes:
 * docs/architecture.md, "Member metadata".
 */
export const artifactsAnnouncement = new Announcement('artifacts', {
  dists: {
    schema: z.record(distributionId, z.string().max(64)),
    maxBytes: 2048,
    about: '`{"name@version": digest16}` of versions held completely, newest first when not all fit (~55)',
  },
  fetching: {
    schema: z.array(distributionId).max(64),
    maxBytes: 768,
    about: 'versions being fetched (their chunks can be asked for)',
  },
  data: {
    schema: z
      .string()
      .regex(/^[0-9A-Za-z.:[\]-]*:\d{1,5}$/)
      .max(60),
    maxBytes: 64,
    about:
      'where its data plane listens for chunk requests: `HOST:PORT`, or `:PORT` on the host of its libp2p address',
  },
})
export type ArtifactsAnnouncement = Announced<typeof artifactsAnnouncement>

/** What a member's metadata says it holds: complete versions (id → digest prefix) and versions it fetches. */
export function holdingsOf(member: Member): { complete: Map<string, string>; fetching: Set<string> } {
  const { dists = {}, fetching = [] } = artifactsAnnouncement.of(member)
  return { complete: new Map(Object.entries(dists)), fetching: new Set(fetching) }
}

/**
 * Holdings as they fit their budgets: `complete` and `fetching` newest first, cut
 * where the next would not fit (peers then find the older ones on other members).
 */
export function fitHoldings(
  complete: ReadonlyArray<[id: string, digest: string]>,
  fetching: readonly string[],
): { announced: Pick<ArtifactsAnnouncement, 'dists' | 'fetching'>; left: number } {
  const dists: Record<string, string> = {}
  let left = 0
  for (const [id, digest] of complete) {
    dists[id] = digest
    if (metadataBytes(dists) > artifactsAnnouncement.budget('dists')) {
      delete dists[id]
      left++
    }
  }
  const kept: string[] = []
  for (const id of fetching) {
    if (metadataBytes([...kept, id]) > artifactsAnnouncement.budget('fetching')) left++
    else kept.push(id)
  }
  return { announced: { dists, fetching: kept }, left }
}

/**
 * Where to reach a member's data plane: its `data` key, the host taken from its
 * libp2p address when the key names none; null when it announces none.
 */
export function dataAddressOf(member: Member): { host: string; port: number } | null {
  const { data } = artifactsAnnouncement.of(member)
  if (data == null) return null
  const split = data.lastIndexOf(':')
  const port = Number(data.slice(split + 1))
  let host = data.slice(0, split).replace(/^\[(.*)\]$/, '$1')
  if (host === '' || host === '0.0.0.0' || host === '::') {
    host = member.addrs.map((a) => /^\/ip[46]\/([^/]+)/.exec(a)?.[1]).find((h) => h != null) ?? ''
  }
  return host === '' || !(port > 0 && port < 65536) ? null : { host, port }
}
