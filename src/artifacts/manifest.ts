import { createHash, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { canonicalJson, withinDepth } from '../shared/index.js'
import { MAX_ARTIFACTS, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './constants.js'
import { ManifestInvalidError, ManifestSignatureError } from './errors.js'
import { keyId, signBytes, type TrustedKey, verifyBytes } from './signing.js'

export const ARTIFACT_KINDS = ['component', 'config', 'resource'] as const
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number]

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)')
export const DISTRIBUTION_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/
const name = z.string().regex(DISTRIBUTION_NAME, 'lowercase letters, digits, ".", "_" and "-", at most 64')
const version = z.string().regex(VERSION, 'letters, digits, ".", "+", "_" and "-", at most 64')
const SEGMENT = /^[A-Za-z0-9._@+-][A-Za-z0-9._@+ -]*$/

/** An artifact's name is a relative path inside the distribution's folder; it may never leave it. */
const artifactPath = z.string().superRefine((value, ctx) => {
  const segments = value.split('/')
  const problem =
    value.length === 0 || value.length > 255
      ? 'must be 1-255 characters'
      : value.startsWith('/') || /^[A-Za-z]:/.test(value)
        ? 'is an absolute path'
        : value.includes('\\')
          ? 'contains a backslash'
          : segments.some((s) => s === '..')
            ? 'escapes the distribution folder ("..")'
            : segments.some((s) => s === '' || s === '.' || !SEGMENT.test(s))
              ? 'has an empty, "." or unusual path segment'
              : segments.length > 16
                ? 'is nested more than 16 folders deep'
                : null
  if (problem != null) ctx.addIssue({ code: 'custom', message: `artifact name "${value}" ${problem}` })
})

const artifact = z
  .object({
    name: artifactPath,
    kind: z.enum(ARTIFACT_KINDS),
    sha256: hex64,
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    chunkSize: z.number().int().min(MIN_CHUNK_SIZE).max(MAX_CHUNK_SIZE),
    chunks: z.array(hex64),
    descriptor: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .refine((a) => a.chunks.length === Math.ceil(a.size / a.chunkSize), {
    message: 'chunk list does not match size / chunkSize',
  })

export const manifestSchema = z
  .object({
    schema: z.literal(1),
    name,
    version,
    artifacts: z
      .array(artifact)
      .min(1)
      .max(MAX_ARTIFACTS)
      .refine((list) => new Set(list.map((a) => a.name)).size === list.length, {
        message: 'artifact names repeat',
      }),
    config: z.record(z.string(), z.unknown()),
    placement: z.record(z.string(), z.unknown()).optional(),
    supersedes: version.nullable(),
    createdAt: z.iso.datetime(),
    publisher: z.string().regex(/^[0-9a-f]{16}$/),
  })
  .strict()

/**
 * Deepest nesting a manifest may have (its config, placement and descriptors are
 * free-form). Canonical JSON, which signatures and digests are computed over,
 * recurses and overflows the stack a few thousand levels down.
 */
export const MAX_MANIFEST_DEPTH = 64

export type Manifest = z.infer<typeof manifestSchema>
export type ArtifactEntry = Manifest['artifacts'][number]

/** A manifest with its ed25519 signature over the manifest's canonical JSON. */
export interface SignedManifest {
  manifest: Manifest
  signature: string
}

export const distributionId = (m: { name: string; version: string }): string => `${m.name}@${m.version}`

/** Digest of the exact signed manifest: what gossip announces and metadata lists. */
export function manifestDigest(manifest: Manifest): string {
  return createHash('sha256').update(canonicalJson(manifest)).digest('hex')
}

/**
 * Digest of what a version contains (artifacts, config, placement), without who
 * published it when: publishing the same content again under the same version is a no-op.
 */
export function contentDigest(manifest: Manifest): string {
  const { artifacts, config, placement } = manifest
  return createHash('sha256')
    .update(canonicalJson({ artifacts, config, placement: placement ?? null }))
    .digest('hex')
}

export function signManifest(
  manifest: Omit<Manifest, 'publisher'>,
  privateKey: KeyObject,
  publicKey: KeyObject,
): SignedManifest {
  const full = parseManifest({ ...manifest, publisher: keyId(publicKey) })
  return { manifest: full, signature: signBytes(privateKey, new TextEncoder().encode(canonicalJson(full))) }
}

/** Checks a manifest against the schema; ERR_MANIFEST_INVALID names the first problem. */
export function parseManifest(input: unknown): Manifest {
  if (!withinDepth(input, MAX_MANIFEST_DEPTH))
    throw new ManifestInvalidError(`invalid manifest: nested more than ${MAX_MANIFEST_DEPTH} levels deep`)
  const problem = notCanonical(input)
  if (problem != null) throw new ManifestInvalidError(`invalid manifest: ${problem}`)
  const parsed = manifestSchema.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : ''
    throw new ManifestInvalidError(
      `invalid manifest: ${where}${issue?.message ?? 'does not match the schema'}`,
    )
  }
  return parsed.data
}

/**
 * Accepts a signed manifest only if it is well-formed, names a publisher key this
 * agent trusts, and the signature over its canonical JSON verifies.
 */
export function verifySignedManifest(input: unknown, trusted: TrustedKey[]): SignedManifest {
  if (typeof input !== 'object' || input == null || !('manifest' in input)) {
    throw new ManifestInvalidError('invalid manifest: expected {"manifest": {...}, "signature": "..."}')
  }
  const { manifest: raw, signature } = input as { manifest: unknown; signature?: unknown }
  if (typeof signature !== 'string' || signature.length === 0) {
    throw new ManifestSignatureError('the manifest is not signed; sign it with "shoal publish --key FILE"')
  }
  const manifest = parseManifest(raw)
  const key = trusted.find((k) => k.id === manifest.publisher)
  if (key == null) {
    throw new ManifestSignatureError(
      trusted.length === 0
        ? 'this agent trusts no publisher key; start it with --trust KEY.pub'
        : `${distributionId(manifest)} is signed by key ${manifest.publisher}, which this cluster does not trust`,
    )
  }
  // Over what is kept (the parsed manifest), so it verifies again wherever it is served next.
  if (!verifyBytes(key.key, new TextEncoder().encode(canonicalJson(manifest)), signature)) {
    throw new ManifestSignatureError(
      `the signature of ${distributionId(manifest)} does not verify with key ${key.id}: forged or altered`,
    )
  }
  return { manifest, signature }
}

/**
 * What keeps `value` from being signed and kept as it is, or null: a number JSON
 * cannot carry (`1e400` parses to Infinity; canonical JSON refuses it) or a
 * "__proto__" key (the schema's records drop it, so what is kept would differ
 * from what was signed).
 */
function notCanonical(value: unknown): string | null {
  const stack = [value]
  while (stack.length > 0) {
    const next = stack.pop()
    if (typeof next === 'number' && !Number.isFinite(next)) return `has a number out of range (${next})`
    if (next == null || typeof next !== 'object') continue
    if (!Array.isArray(next) && Object.hasOwn(next, '__proto__')) return 'uses the reserved key "__proto__"'
    for (const child of Array.isArray(next) ? next : Object.values(next)) stack.push(child)
  }
  return null
}
