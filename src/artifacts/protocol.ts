import { z } from 'zod'
import { MAX_CHUNK_SIZE, MAX_MANIFEST_BYTES, MIN_CHUNK_SIZE } from './constants.js'

/**
 * Protocol ids and topic of the artifacts subsystem, scoped by cluster name like
 * every Shoal protocol.
 * - transfer: chunk maps and chunks of blobs, by hash;
 * - manifests: a signed manifest by distribution id;
 * - topic: announcements of new versions (small: id and digest).
 */
export function artifactProtocols(cluster: string) {
  return {
    transfer: `/shoal/${cluster}/artifacts/1.0.0`,
    manifests: `/shoal/${cluster}/manifests/1.0.0`,
    topic: `/shoal/${cluster}/distributions/1`,
  }
}
export type ArtifactProtocols = ReturnType<typeof artifactProtocols>

/** Largest frame on the transfer protocol: a chunk plus headroom. */
export const MAX_TRANSFER_FRAME = MAX_CHUNK_SIZE + 1024
export const MAX_MANIFEST_FRAME = MAX_MANIFEST_BYTES

const hash = z.string().regex(/^[0-9a-f]{64}$/)
/**
 * Bounds of a peer's request: a chunk size a manifest may declare (a size of 1
 * would have the server build a map of 2·10⁹ chunks), and an index below 2^24
 * (a 2 GiB blob in 16 KiB chunks has 2^17).
 */
const chunkSize = z.number().int().min(MIN_CHUNK_SIZE).max(MAX_CHUNK_SIZE)
export const MAX_CHUNK_INDEX = 2 ** 24 - 1
const chunkIndex = z.number().int().min(0).max(MAX_CHUNK_INDEX)

export const transferRequest = z.discriminatedUnion('t', [
  z.object({ t: z.literal('have'), blob: hash, chunkSize }),
  z.object({ t: z.literal('get'), blob: hash, chunkSize, index: chunkIndex }),
])
export type TransferRequest = z.infer<typeof transferRequest>

export const transferAnswer = z.discriminatedUnion('t', [
  /** bitmap null: the whole blob. */
  z.object({ t: z.literal('have'), size: z.number().int().min(0), bitmap: z.string().nullable() }),
  /** followed by one frame with exactly `length` bytes. */
  z.object({
    t: z.literal('chunk'),
    index: chunkIndex,
    length: z.number().int().min(0).max(MAX_CHUNK_SIZE),
  }),
  z.object({ t: z.literal('none') }),
])
export type TransferAnswer = z.infer<typeof transferAnswer>

export const manifestRequest = z.object({ id: z.string().max(200) })
/** `from`: the announcing agent, which serves the manifest (gossip messages are unsigned). */
export const announcement = z.object({
  v: z.literal(1),
  id: z.string().max(200),
  digest: hash,
  from: z.string().max(100),
})
export type Announcement = z.infer<typeof announcement>

export { decodeJson, encodeJson } from '../shared/index.js'
