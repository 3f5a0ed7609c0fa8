/**
 * Who watches whom, with a bounded degree (Rapid's K pseudo-random rings; the
 * reasons are in docs/decisions.md). Every live member has a position on each of
 * K rings, a hash of (ring, id). On each ring a member observes its successor
 * (its subject there) and is observed by its predecessor. So a member probes at
 * most K subjects and is probed by at most K observers, whatever the size of the
 * cluster, and the rings being independent, the observers of one member are
 * spread over the whole cluster (no neighbourhood can hide a member).
 *
 * Every member computes the rings from its own view. Views that differ a little
 * (a join not heard yet) give a few different edges for a while, which costs a
 * probe of the wrong member, never a verdict: verdicts need several observers
 * (suspicion.ts).
 */

/** Rings, so subjects and observers per member (Rapid uses 10; 8 keeps the degree low). */
export const MONITORING_RINGS = 8

/** A member's place on every ring: 32-bit FNV-1a of "ring:id", cached (ids are long-lived). */
const positions = new Map<string, Uint32Array>()
/** The cache only grows with ids ever seen; past this it is dropped (a 10,000-member view fits). */
const MAX_CACHED = 100_000

export function ringPositions(id: string): Uint32Array {
  let cached = positions.get(id)
  if (cached != null) return cached
  if (positions.size >= MAX_CACHED) positions.clear()
  cached = new Uint32Array(MONITORING_RINGS)
  for (let ring = 0; ring < MONITORING_RINGS; ring++) cached[ring] = fnv1a(`${ring}:${id}`)
  positions.set(id, cached)
  return cached
}

export interface RingNeighbours {
  /** Distinct members this member probes (its successor on each ring), ring order. */
  subjects: string[]
  /** Distinct members that probe this member (its predecessor on each ring), ring order. */
  observers: string[]
}

/**
 * `self`'s subjects and observers among `live` (ids of the members not known dead
 * or gone; `self` may be among them or not). One pass over `live` per call.
 */
export function ringNeighbours(
  live: Iterable<string>,
  self: string,
  rings = MONITORING_RINGS,
): RingNeighbours {
  const mine = ringPositions(self)
  const successor: Array<string | null> = new Array(rings).fill(null)
  const predecessor: Array<string | null> = new Array(rings).fill(null)
  const ahead = new Array<number>(rings).fill(Infinity)
  const behind = new Array<number>(rings).fill(Infinity)
  for (const id of live) {
    if (id === self) continue
    const theirs = ringPositions(id)
    for (let ring = 0; ring < rings; ring++) {
      // Distances around the ring, both ways; a tie (a hash collision) goes to the smaller id.
      const forward = (theirs[ring]! - mine[ring]!) >>> 0 || 2 ** 32
      const backward = (mine[ring]! - theirs[ring]!) >>> 0 || 2 ** 32
      if (forward < ahead[ring]! || (forward === ahead[ring] && id < successor[ring]!)) {
        ahead[ring] = forward
        successor[ring] = id
      }
      if (backward < behind[ring]! || (backward === behind[ring] && id < predecessor[ring]!)) {
        behind[ring] = backward
        predecessor[ring] = id
      }
    }
  }
  return { subjects: distinct(successor), observers: distinct(predecessor) }
}

function distinct(ids: Array<string | null>): string[] {
  const out: string[] = []
  for (const id of ids) if (id != null && !out.includes(id)) out.push(id)
  return out
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  // A final avalanche: peer ids share long prefixes, and plain FNV's low bits cluster.
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}
