import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { decodeJson, encodeJson } from '../shared/index.js'
import { MAX_ADDRS, MAX_METADATA_BYTES } from './constants.js'
import { MAX_BUCKETS } from './delta-sync.js'
import { MembershipMessageError } from './errors.js'
import type { Claim, MemberRecord } from './member.js'

/**
 * Wire format of the membership protocols: JSON documents, one per
 * length-prefixed frame on direct streams, one per gossipsub message. Every field
 * from the network is checked here before anything acts on it.
 */
export const WIRE_VERSION = 1

const peerId = z.string().refine(
  (value) => {
    try {
      peerIdFromString(value)
      return true
    } catch {
      return false
    }
  },
  { message: 'not a peer id' },
)
const incarnation = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const addrs = z.array(z.string().max(512)).max(MAX_ADDRS)
const metadata = z
  .record(z.string(), z.unknown())
  .refine((value) => JSON.stringify(value).length <= MAX_METADATA_BYTES, { message: 'metadata too large' })

const claim = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('alive'), id: peerId, incarnation, addrs, meta: metadata }),
  z.object({
    kind: z.literal('suspect'),
    id: peerId,
    incarnation,
    from: peerId,
    refused: z.boolean().optional(),
  }),
  z.object({ kind: z.literal('dead'), id: peerId, incarnation, from: peerId }),
  z.object({ kind: z.literal('left'), id: peerId, incarnation }),
  z.object({
    kind: z.literal('patch'),
    id: peerId,
    incarnation,
    base: incarnation,
    set: metadata,
    drop: z.array(z.string().max(128)).max(64),
  }),
])

const record = z.object({
  id: peerId,
  addrs,
  incarnation,
  state: z.enum(['alive', 'suspect', 'dead', 'left']),
  meta: metadata,
})

/** One member's keys of reach `watchers` (member-details.ts). */
const detail = z.object({ id: peerId, inc: incarnation, dv: incarnation, meta: metadata })
/** Details a watcher serves per page (a non-watcher's refresh), in JSON bytes. */
export const DETAILS_PAGE_BYTES = 512 * 1024

/** A gossip message: a batch of claims. */
const gossip = z.object({
  v: z.literal(WIRE_VERSION),
  claims: z.array(claim).max(1024),
  /** Set on a repeat: gossip names messages by their bytes, so an identical repeat would be refused as seen. */
  r: z.literal(1).optional(),
})

/** Requests and answers on the direct (probe) protocol. */
const probeRequest = z.discriminatedUnion('t', [
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('ping-req'), target: peerId, addrs }),
  z.object({ t: z.literal('claims'), claims: z.array(claim).max(1024) }),
  /** The answerer's own record (a view that could not apply its patch asks for it). */
  z.object({ t: z.literal('record') }),
  /** A member's details, sent to a watcher (detail-relay.ts). */
  z.object({ t: z.literal('detail'), detail }),
  /** A watcher's details changed after `after` (its sequence, for watch epoch `epoch`); `own`: only the answerer's. */
  z.object({
    t: z.literal('details'),
    after: z.number().int().min(0),
    epoch: z.number().int().min(0),
    own: z.boolean().optional(),
  }),
])
const probeAnswer = z.discriminatedUnion('t', [
  z.object({ t: z.literal('ack') }),
  z.object({ t: z.literal('nack') }),
  z.object({ t: z.literal('record'), record }),
  z.object({
    t: z.literal('details'),
    epoch: z.number().int().min(0),
    upTo: z.number().int().min(0),
    more: z.boolean(),
    details: z.array(detail).max(100_000),
  }),
])

/** The state sync exchange: digests first, full records only when they differ. */
const syncMessage = z.object({
  v: z.literal(WIRE_VERSION),
  digest: z.string().max(128),
  members: z.array(record).max(100_000).nullable(),
})

/** The delta sync (delta-sync.ts), one message per frame, in this order. */
export const DELTA_SYNC_VERSION = 2
const digestEntry = z.tuple([peerId, incarnation, z.number().int().min(0).max(3)])
const bucketIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_BUCKETS - 1)
const deltaSync = z.discriminatedUnion('t', [
  z.object({ t: z.literal('digest'), v: z.literal(DELTA_SYNC_VERSION), digest: z.string().max(128) }),
  z.object({ t: z.literal('same') }),
  z.object({
    t: z.literal('buckets'),
    buckets: z
      .array(z.string().max(16))
      .min(1)
      .max(MAX_BUCKETS)
      .refine((b) => (b.length & (b.length - 1)) === 0, { message: 'bucket count is not a power of two' }),
  }),
  z.object({
    t: z.literal('entries'),
    buckets: z.array(bucketIndex).max(MAX_BUCKETS),
    entries: z.array(digestEntry).max(100_000),
  }),
  z.object({
    t: z.literal('records'),
    records: z.array(record).max(100_000),
    want: z.array(peerId).max(100_000),
    done: z.boolean(),
  }),
])

export type DeltaSyncMessage = z.infer<typeof deltaSync>

export type GossipMessage = z.infer<typeof gossip>
export type ProbeRequest = z.infer<typeof probeRequest>
export type ProbeAnswer = z.infer<typeof probeAnswer>
export type SyncMessage = z.infer<typeof syncMessage>

const decodeWith = <T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T =>
  decodeJson(schema, bytes, what, MembershipMessageError)

export function encode(
  message: GossipMessage | ProbeRequest | ProbeAnswer | SyncMessage | DeltaSyncMessage,
): Uint8Array {
  return encodeJson(message)
}

export const decodeGossip = (bytes: Uint8Array): GossipMessage =>
  decodeWith(gossip, bytes, 'gossip message') as GossipMessage
export const decodeProbeRequest = (bytes: Uint8Array): ProbeRequest =>
  decodeWith(probeRequest, bytes, 'probe request') as ProbeRequest
export const decodeProbeAnswer = (bytes: Uint8Array): ProbeAnswer =>
  decodeWith(probeAnswer, bytes, 'probe answer') as ProbeAnswer
export const decodeSync = (bytes: Uint8Array): SyncMessage => decodeWith(syncMessage, bytes, 'sync message')
export const decodeDeltaSync = (bytes: Uint8Array): DeltaSyncMessage =>
  decodeWith(deltaSync, bytes, 'delta sync message') as DeltaSyncMessage

export type { Claim, MemberRecord }
