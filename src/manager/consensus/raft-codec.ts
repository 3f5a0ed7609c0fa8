/**
 * The wire format of the Raft core's messages (raft/messages.ts): one JSON object
 * per frame, every byte field (vote and configuration signatures, command data,
 * snapshot data) as a standard, padded base64 string. Decoding checks every
 * field before the core sees it: types, integers (indexes, terms and ticks are
 * safe integers ≥ 0), node ids up to MAX_NODE_ID_CHARS, bounded arrays, and no
 * field or message type the format does not name. A refusal is a RaftMessageError.
 *
 * Configuration records and certificates have their own converters too: the
 * cluster state published to non-voters embeds them.
 */
import { z } from 'zod'
import { withinDepth } from '../../shared/index.js'
import type { Certificate, ConfigRecord, Message } from '../raft/index.js'
import { RaftMessageError } from './errors.js'

/**
 * Largest frame (bytes). A snapshot travels in one frame and the cluster state is
 * at most MAX_STATE_BYTES (4 MiB, manager/constants.ts): its base64 is 5.4 MiB,
 * and the rest of a snapshot message (64 configuration records) is far below the
 * remaining 2.6 MiB.
 */
export const MAX_RAFT_FRAME_BYTES = 8 * 1024 * 1024
/** A node id is a libp2p peer id (52 characters for ed25519); anything longer is not one. */
export const MAX_NODE_ID_CHARS = 100
/** A client id of a request id (the state machine's sessions); Shoal's are a peer id and a nonce. */
export const MAX_CLIENT_CHARS = 200
/** Entries per append: the core sends at most 64 (DEFAULT_MAX_ENTRIES_PER_MESSAGE). */
export const MAX_ENTRIES = 10_000
/** Votes per certificate, and voters per configuration (Shoal runs 3 or 5 voters). */
export const MAX_VOTES = 64
/** Learners per configuration: every manager-capable node may follow the log. */
export const MAX_LEARNERS = 10_000
/** Configuration records per chain or snapshot history (the core keeps 64). */
export const MAX_CHAIN = 1000
/** Deepest nesting a frame may have: a snapshot message, the deepest, nests 8 levels. */
const MAX_DEPTH = 16

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

function fromBase64(text: string): Uint8Array {
  const buffer = Buffer.from(text, 'base64')
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

const bytes = z.base64().transform(fromBase64)
/** An index, a term or a tick count. */
const count = z.int().min(0)
const nodeId = z.string().min(1).max(MAX_NODE_ID_CHARS)

const vote = z.strictObject({ voter: nodeId, signature: bytes })

/** A certificate as JSON (signatures in base64); parses to a `Certificate`. */
export const certificateSchema = z.strictObject({
  term: count,
  leader: nodeId,
  votes: z.array(vote).max(MAX_VOTES),
})

const clusterConfig = z.strictObject({
  voters: z.array(nodeId).max(MAX_VOTES),
  learners: z.array(nodeId).max(MAX_LEARNERS),
})

/** A configuration record as JSON (signature in base64); parses to a `ConfigRecord`. */
export const configRecordSchema = z.strictObject({
  index: count,
  term: count,
  config: clusterConfig,
  certificate: certificateSchema.nullable(),
  signature: bytes.nullable(),
})

export type CertificateJson = z.input<typeof certificateSchema>
export type ConfigRecordJson = z.input<typeof configRecordSchema>

const chain = z.array(configRecordSchema).max(MAX_CHAIN)

const configChange = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('add-learner'), node: nodeId }),
  z.strictObject({ op: z.literal('add-voter'), node: nodeId }),
  z.strictObject({ op: z.literal('demote'), node: nodeId }),
  z.strictObject({ op: z.literal('remove'), node: nodeId }),
])

const entry = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('command'),
    index: count,
    term: count,
    request: z.strictObject({ client: z.string().min(1).max(MAX_CLIENT_CHARS), seq: count }).nullable(),
    data: bytes,
  }),
  z.strictObject({
    kind: z.literal('config'),
    index: count,
    term: count,
    config: clusterConfig,
    change: configChange,
    certificate: certificateSchema,
    signature: bytes,
  }),
  z.strictObject({
    kind: z.literal('term-start'),
    index: count,
    term: count,
    certificate: certificateSchema,
  }),
])

const snapshot = z.strictObject({
  meta: z.strictObject({ index: count, term: count, config: configRecordSchema, history: chain }),
  data: bytes,
})

const envelope = { from: nodeId, to: nodeId, term: count }
const fromLeader = { ...envelope, certificate: certificateSchema, chain: chain.nullable(), sentAt: count }

const messageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('pre-vote'),
    ...envelope,
    lastLogIndex: count,
    lastLogTerm: count,
    chain,
  }),
  z.strictObject({ type: z.literal('pre-vote-response'), ...envelope, granted: z.boolean() }),
  z.strictObject({
    type: z.literal('vote'),
    ...envelope,
    lastLogIndex: count,
    lastLogTerm: count,
    chain,
    transfer: z.boolean(),
  }),
  z.strictObject({
    type: z.literal('vote-response'),
    ...envelope,
    granted: z.boolean(),
    signature: bytes.nullable(),
  }),
  z.strictObject({
    type: z.literal('append'),
    ...fromLeader,
    prevLogIndex: count,
    prevLogTerm: count,
    entries: z.array(entry).max(MAX_ENTRIES),
    commit: count,
  }),
  z.strictObject({
    type: z.literal('append-response'),
    ...envelope,
    success: z.boolean(),
    index: count,
    hint: z.strictObject({ conflictIndex: count, conflictTerm: count.nullable() }).nullable(),
    sentAt: count,
  }),
  z.strictObject({ type: z.literal('heartbeat'), ...fromLeader, commit: count }),
  z.strictObject({ type: z.literal('heartbeat-response'), ...envelope, sentAt: count }),
  z.strictObject({ type: z.literal('snapshot'), ...fromLeader, snapshot }),
  z.strictObject({ type: z.literal('timeout-now'), ...fromLeader }),
  z.strictObject({ type: z.literal('unverified'), ...envelope, configIndex: count }),
])

// The schemas' outputs are the core's types: a drift between the two fails the build here.
messageSchema satisfies z.ZodType<Message>
certificateSchema satisfies z.ZodType<Certificate>
configRecordSchema satisfies z.ZodType<ConfigRecord>

/** Byte fields become base64 (read before toJSON, so a Buffer is bytes too, not `{type, data}`). */
function bytesAsBase64(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key]
  return raw instanceof Uint8Array ? toBase64(raw) : value
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** One message as a frame's bytes (no size check: the transport drops a frame over its limit). */
export function encodeMessage(message: Message): Uint8Array {
  return encoder.encode(JSON.stringify(message, bytesAsBase64))
}

/** A frame's bytes as a message, every field checked; throws RaftMessageError. */
export function decodeMessage(frame: Uint8Array, maxBytes = MAX_RAFT_FRAME_BYTES): Message {
  if (frame.byteLength > maxBytes)
    throw new RaftMessageError(`raft message: ${frame.byteLength} bytes, over the limit of ${maxBytes}`)
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(frame))
  } catch (err) {
    throw new RaftMessageError('raft message: not UTF-8 JSON', { cause: err })
  }
  return parse(messageSchema, json, 'raft message')
}

function parse<T>(schema: z.ZodType<T>, json: unknown, what: string): T {
  if (!withinDepth(json, MAX_DEPTH))
    throw new RaftMessageError(`${what}: nested more than ${MAX_DEPTH} levels deep`)
  const parsed = schema.safeParse(json)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const path = issue == null || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`
  throw new RaftMessageError(`${what}${path}: ${issue?.message ?? 'invalid'}`)
}

export function certificateToJson(certificate: Certificate): CertificateJson {
  return {
    term: certificate.term,
    leader: certificate.leader,
    votes: certificate.votes.map((v) => ({ voter: v.voter, signature: toBase64(v.signature) })),
  }
}

/** A certificate from parsed JSON (the cluster state), every field checked; throws RaftMessageError. */
export function certificateFromJson(json: unknown): Certificate {
  return parse(certificateSchema, json, 'certificate')
}

export function configRecordToJson(record: ConfigRecord): ConfigRecordJson {
  return {
    index: record.index,
    term: record.term,
    config: { voters: [...record.config.voters], learners: [...record.config.learners] },
    certificate: record.certificate == null ? null : certificateToJson(record.certificate),
    signature: record.signature == null ? null : toBase64(record.signature),
  }
}

/** A configuration record from parsed JSON (the cluster state), every field checked; throws RaftMessageError. */
export function configRecordFromJson(json: unknown): ConfigRecord {
  return parse(configRecordSchema, json, 'configuration record')
}
