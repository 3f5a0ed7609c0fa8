import { createHash } from 'node:crypto'
import type { MemberRecord, MemberState } from './member.js'

/**
 * Anti-entropy that sends only what differs (issue 19). Two views are compared
 * in three steps, each cheaper to skip than the next:
 * 1. one digest of the whole view (equal: done, the usual case);
 * 2. a hash per bucket of members (ids spread over up to MAX_BUCKETS buckets);
 * 3. for the buckets that differ, one short entry per member: id, incarnation, rank;
 * then each side sends the records the other lacks or holds older, in pages. At
 * 10,000 members a sync of two equal views is two small messages, of views that
 * differ in one member about 3.6 KB of bucket hashes and 2.4 KB of entries, where
 * the full view was 3.2 MB.
 */

/** Most buckets: at 10,000 members ~40 per bucket, 256 hashes of 11 characters per summary. */
export const MAX_BUCKETS = 256
/** Members per bucket the bucket count aims at, below MAX_BUCKETS. */
const MEMBERS_PER_BUCKET = 32
/** A page of records stays under this many bytes of JSON (the frame limit is 4 MiB). */
export const PAGE_BYTES = 1024 * 1024

/** A member in a digest: id, incarnation, and its state's rank (see RANK). */
export type DigestEntry = [id: string, incarnation: number, rank: number]

/**
 * At one incarnation a later state wins (incarnation.ts): suspect over alive, dead
 * over both, left over all. So (incarnation, rank) orders two records of a member.
 */
const RANK: Record<MemberState, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

/** The bucket count a view of `n` members offers: a power of two, so both sides agree on bucketOf. */
export function bucketCount(n: number): number {
  let count = 1
  while (count < MAX_BUCKETS && count * MEMBERS_PER_BUCKET < n) count *= 2
  return count
}

export function bucketOf(id: string, count: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193)
  hash ^= hash >>> 15
  return (hash >>> 0) % count
}

export function entryOf(record: Pick<MemberRecord, 'id' | 'incarnation' | 'state'>): DigestEntry {
  return [record.id, record.incarnation, RANK[record.state]]
}

/** The hash of each bucket of `records` (a bucket without members hashes to ''). */
export function bucketHashes(records: Iterable<MemberRecord>, count: number): string[] {
  const lines: string[][] = Array.from({ length: count }, () => [])
  for (const record of records)
    lines[bucketOf(record.id, count)]!.push(`${record.id}:${record.incarnation}:${RANK[record.state]}`)
  return lines.map((bucket) =>
    bucket.length === 0
      ? ''
      : createHash('sha256').update(bucket.sort().join('\n')).digest().subarray(0, 8).toString('base64url'),
  )
}

/** Indexes of the buckets whose hashes differ (a missing hash counts as different). */
export function differingBuckets(mine: string[], theirs: string[]): number[] {
  const out: number[] = []
  for (let i = 0; i < theirs.length; i++) if (mine[i] !== theirs[i]) out.push(i)
  return out
}

/** Digest entries of the members of `records` in `buckets` (of `count`). */
export function entriesIn(records: Iterable<MemberRecord>, buckets: number[], count: number): DigestEntry[] {
  const wanted = new Set(buckets)
  const out: DigestEntry[] = []
  for (const record of records) if (wanted.has(bucketOf(record.id, count))) out.push(entryOf(record))
  return out
}

/**
 * What to do about the other side's entries for `buckets`: the records of ours
 * it lacks or holds older (`send`), and the ids it holds newer or we lack (`want`).
 */
export function reconcile(
  mine: ReadonlyMap<string, MemberRecord>,
  theirs: DigestEntry[],
  buckets: number[],
  count: number,
): { send: MemberRecord[]; want: string[] } {
  const wanted = new Set(buckets)
  const seen = new Set<string>()
  const send: MemberRecord[] = []
  const want: string[] = []
  for (const [id, incarnation, rank] of theirs) {
    seen.add(id)
    const record = mine.get(id)
    if (record == null) {
      want.push(id)
      continue
    }
    const order = record.incarnation - incarnation || RANK[record.state] - rank
    if (order > 0) send.push(record)
    else if (order < 0) want.push(id)
  }
  for (const record of mine.values())
    if (!seen.has(record.id) && wanted.has(bucketOf(record.id, count))) send.push(record)
  return { send, want }
}

/** `records` cut into pages of at most PAGE_BYTES of JSON each (one oversized record is a page alone). */
export function pages(records: MemberRecord[], limit = PAGE_BYTES): MemberRecord[][] {
  const out: MemberRecord[][] = [[]]
  let bytes = 0
  for (const record of records) {
    const size = JSON.stringify(record).length + 1
    if (bytes + size > limit && out.at(-1)!.length > 0) {
      out.push([])
      bytes = 0
    }
    out.at(-1)!.push(record)
    bytes += size
  }
  return out
}
