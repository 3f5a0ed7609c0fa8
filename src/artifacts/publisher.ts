import type { KeyObject } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { type Readable, Transform } from 'node:stream'
import { DEFAULT_CHUNK_SIZE } from './constants.js'
import { checkDistribution } from './distribution-rules.js'
import type { DistributionView } from './distributor.js'
import type { ArtifactEntry, SignedManifest } from './manifest.js'
import { signManifest } from './manifest.js'
import { readReleaseFolder } from './release-folder.js'
import { publicKeyOf } from './signing.js'

/**
 * The agent a release is published to: over its HTTP API (`shoal publish`), or
 * the agent's own store and catalogue (the dashboard's upload, which it serves).
 */
export interface PublishTarget {
  /** Versions of `name` the agent knows, in publication order. */
  versions(name: string): Promise<string[]>
  /** Whether the agent already holds the artifact with this hash. */
  holds(sha256: string): Promise<boolean>
  /** Stores one artifact's bytes (the agent checks them against the hash). */
  upload(artifact: ArtifactEntry, bytes: Readable): Promise<void>
  /**
   * Hands the signed manifest over before its artifacts: resolves when the agent
   * would accept it once it holds them (signature, schema, distribution rules),
   * throws what it refuses.
   */
  offer(signed: SignedManifest): Promise<void>
  /** Publishes the signed manifest once the agent holds every artifact. */
  publish(signed: SignedManifest): Promise<{ result: 'added' | 'same'; distribution: DistributionView }>
}

export interface PublishRelease {
  /** The release folder: every regular file becomes an artifact; distribution.json says what they are. */
  dir: string
  name: string
  version: string
  /** The publisher's ed25519 private key (the agents trust its public half). */
  key: KeyObject
  /** Chunk size of the artifacts' chunk lists. Default 1 MiB. */
  chunkSize?: number
  /**
   * Check the distribution rules here before anything is sent (default true).
   * False sends what an older shoal would; the agent then refuses it itself.
   */
  preflight?: boolean
  /** Called before the first upload (sent 0) and as bytes go out. */
  onProgress?: (progress: { sent: number; total: number; file: string }) => void
}

export interface PublishResult {
  result: 'added' | 'same'
  distribution: DistributionView
  uploaded: { artifacts: number; bytes: number }
}

/**
 * Publishes a release folder as `name@version`: hashes its files, checks the
 * distribution rules, signs the manifest, offers it to the agent (which checks
 * the signature and the rules before any byte is sent), uploads only the
 * artifacts the agent lacks, then publishes the manifest.
 */
export async function publishRelease(target: PublishTarget, options: PublishRelease): Promise<PublishResult> {
  const { artifacts, files, description } = await readReleaseFolder(
    options.dir,
    options.chunkSize ?? DEFAULT_CHUNK_SIZE,
  )
  const content = { artifacts, config: description.config, placement: description.placement }
  // A typo would otherwise publish a version that can never be rolled out.
  if (options.preflight !== false) checkDistribution(content)
  const previous = (await target.versions(options.name)).filter((v) => v !== options.version).at(-1)
  const signed = signManifest(
    {
      schema: 1,
      name: options.name,
      version: options.version,
      artifacts,
      config: description.config,
      ...(description.placement == null ? {} : { placement: description.placement }),
      supersedes: previous ?? null,
      createdAt: new Date().toISOString(),
    },
    options.key,
    publicKeyOf(options.key),
  )

  const missing: ArtifactEntry[] = []
  for (const artifact of new Map(artifacts.map((a) => [a.sha256, a])).values()) {
    if (!(await target.holds(artifact.sha256))) missing.push(artifact)
  }
  // Offered before any upload: what the agent refuses (a key it does not trust, a
  // broken rule) is refused now, and no blob is left behind for nothing.
  if (missing.length > 0) await target.offer(signed)
  const total = missing.reduce((sum, a) => sum + a.size, 0)
  let sent = 0
  options.onProgress?.({ sent, total, file: '' })
  for (const artifact of missing) {
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        sent += chunk.length
        options.onProgress?.({ sent, total, file: artifact.name })
        done(null, chunk)
      },
    })
    await target.upload(artifact, createReadStream(files.get(artifact.name)!).pipe(counter))
  }
  const published = await target.publish(signed)
  return { ...published, uploaded: { artifacts: missing.length, bytes: total } }
}
