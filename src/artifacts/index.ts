/**
 * Artifacts: the content-addressed blob store, signed distribution manifests and
 * the rules a version must meet, publishing a release folder (the CLI's and the
 * dashboard's), version history with retention and unpublishing, and the
 * peer-to-peer transfer of blobs.
 */
import { join } from 'node:path'
import type { Logger } from '../shared/index.js'
import { BlobStore, type StoreDb, type StoreReport } from './blob-store.js'
import { Catalogue } from './catalogue.js'
import {
  DEFAULT_MAX_ARTIFACT_BYTES,
  DEFAULT_PARALLEL_CHUNKS,
  DEFAULT_RETENTION,
  DEFAULT_UPLOAD_SLOTS,
} from './constants.js'
import { type DataPlaneSettings, Distributor, type DistributorComponents } from './distributor.js'
import { readTrustedKey } from './signing.js'

export { type ArtifactsAnnouncement, artifactsAnnouncement } from './announcement.js'
export { ChunkMap } from './chunk-map.js'
export { digestFile, type FileDigest } from './chunking.js'
export { DEFAULT_CHUNK_SIZE } from './constants.js'
export { dataPlaneKey } from './data-plane/index.js'
export {
  checkDistribution,
  type DistributionContent,
  type DistributionLayout,
  MAX_CONFIG_BYTES,
} from './distribution-rules.js'
export type {
  DataPlaneSettings,
  DistributionView,
  DistributorEvents,
  DistributorStats,
  MembershipView,
} from './distributor.js'
export { Distributor } from './distributor.js'
export * from './errors.js'
export {
  ARTIFACT_KINDS,
  type ArtifactEntry,
  type ArtifactKind,
  DISTRIBUTION_NAME,
  distributionId,
  type Manifest,
  manifestSchema,
  parseManifest,
  type SignedManifest,
  signManifest,
  VERSION,
  verifySignedManifest,
} from './manifest.js'
export {
  type PublishRelease,
  type PublishResult,
  type PublishTarget,
  publishRelease,
} from './publisher.js'
export {
  DESCRIPTION_FILE,
  type ReleaseDescription,
  type ReleaseFolder,
  readReleaseFolder,
} from './release-folder.js'
export {
  keyId,
  parsePrivateKey,
  publicKeyOf,
  readPrivateKey,
  readTrustedKey,
  type TrustedKey,
  writeNewKeyPair,
} from './signing.js'
export type { BlobStore, Catalogue, StoreReport }

/** Plain-data configuration of the artifacts subsystem (see docs/configuration.md). */
export interface ArtifactsConfig {
  /** Largest artifact accepted, bytes. Default 2 GiB. */
  maxArtifactBytes: number
  /** Versions kept per distribution name. Default 5. */
  retention: number
  /** Chunk requests in flight per node. Default 16. */
  parallelChunks: number
  /** Upload (serving) limit, bytes/s; 0 = unlimited (default). */
  uploadRate: number
  /** Download limit, bytes/s; 0 = unlimited (default). */
  downloadRate: number
  /** ms a blob waits for any source before its download is retried later. Default 20 s. */
  idleTimeoutMs: number
  /** Peers served chunks at once over the data plane; a request beyond them is answered busy. Default 4. */
  uploadSlots: number
}

export const DEFAULT_ARTIFACTS_CONFIG: ArtifactsConfig = {
  maxArtifactBytes: DEFAULT_MAX_ARTIFACT_BYTES,
  retention: DEFAULT_RETENTION,
  parallelChunks: DEFAULT_PARALLEL_CHUNKS,
  uploadRate: 0,
  downloadRate: 0,
  idleTimeoutMs: 20_000,
  uploadSlots: DEFAULT_UPLOAD_SLOTS,
}

export interface Artifacts {
  store: BlobStore
  catalogue: Catalogue
  distributor: Distributor
  report: StoreReport
  close(): Promise<void>
}

/**
 * Opens the store (checking it: see BlobStore.open) and the catalogue, loads the
 * trust list, and builds the distributor (not started).
 */
export async function openArtifacts(
  init: {
    cluster: string
    dataDir: string
    trust: string[]
    config: ArtifactsConfig
    /** Versions retention must keep (in use or named by the cluster's rollouts). */
    protectedVersions?: () => Set<string>
    /** The data plane for bulk bytes; absent or null: chunks travel over libp2p only. */
    dataPlane?: DataPlaneSettings | null
  },
  components: Omit<DistributorComponents, 'store' | 'catalogue' | 'trusted' | 'logger'> & {
    db: StoreDb
    catalogueDb: StoreDb
    logger: Logger
  },
): Promise<Artifacts> {
  const trusted = await Promise.all(init.trust.map((file) => readTrustedKey(file)))
  const log = components.logger.child('artifacts')
  const store = new BlobStore(join(init.dataDir, 'blobs'), components.db, log, init.config.maxArtifactBytes)
  const report = await store.open()
  if (report.dropped.length > 0 || report.recovered.length > 0) {
    log.warn('blob store repaired at start', {
      dropped: report.dropped.length,
      recovered: report.recovered.length,
    })
  }
  const catalogue = new Catalogue(components.catalogueDb)
  await catalogue.open()
  const distributor = new Distributor(
    {
      cluster: init.cluster,
      ...init.config,
      dataPlane: init.dataPlane ?? null,
      ...(init.protectedVersions == null ? {} : { protectedVersions: init.protectedVersions }),
    },
    {
      network: components.network,
      membership: components.membership,
      store,
      catalogue,
      trusted,
      logger: components.logger,
    },
  )
  return {
    store,
    catalogue,
    distributor,
    report,
    close: async () => {
      await distributor.stop()
      await store.close()
    },
  }
}
