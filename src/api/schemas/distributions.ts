import { z } from 'zod'
import {
  DISTRIBUTION_NAME,
  type DistributionView as DistributionViewType,
  type DistributorStats,
  manifestSchema,
  type PublishResult as PublishUploadResultType,
  type SignedManifest as SignedManifestType,
  VERSION,
} from '../../artifacts/index.js'
import { rolloutSchema } from '../../manager/index.js'
import type { UnpublishedView } from '../artifact-routes.js'
import { describes } from './check.js'
import { count, isoTime, Sha256 } from './common.js'
import { RolloutState, RolloutStrategy } from './rollouts.js'

/**
 * Artifacts and signed distribution versions (docs/distributions.md). The
 * manifest is the artifacts module's own schema: what the distributor checks
 * is what the document says.
 */

export const DistributionName = z
  .string()
  .regex(DISTRIBUTION_NAME, 'lowercase letters, digits, ".", "_" and "-", at most 64')
  .describe('Distribution name, e.g. `educa`')
export const DistributionVersion = z
  .string()
  .regex(VERSION, 'letters, digits, ".", "+", "_" and "-", at most 64')
  .describe('Version, e.g. `1.1`')

export const ArtifactHeld = describes<{ sha256: string; size: number }>()(
  z.object({ sha256: Sha256, size: count() }).meta({ id: 'ArtifactHeld' }),
)

export const ArtifactUploaded = describes<{ sha256: string; created: boolean; size: number }>()(
  z.object({ sha256: Sha256, created: z.boolean(), size: count() }).meta({ id: 'ArtifactUploaded' }),
)

export const Manifest = manifestSchema.meta({ id: 'Manifest' })

export const SignedManifest = describes<SignedManifestType>()(
  z
    .object({
      manifest: Manifest,
      signature: z.string().describe('ed25519 signature over the canonical JSON of `manifest`'),
    })
    .meta({ id: 'SignedManifest' }),
)

export const DistributionView = describes<DistributionViewType>()(
  z
    .object({
      id: z.string().describe('`name@version`'),
      name: z.string(),
      version: z.string(),
      complete: z.boolean().describe('This node holds every artifact, verified'),
      artifacts: count(),
      bytes: count(),
      publisher: z.string(),
      createdAt: isoTime(),
      supersedes: z.string().nullable(),
      digest: z.string(),
      holders: z.array(z.string()).describe('Members holding every artifact'),
      progress: z
        .object({ chunks: count(), total: count() })
        .describe('Chunks this node holds of the version'),
      transfer: z
        .object({
          rate: count().describe('Bytes per second received over the last 5 s'),
          sources: count().describe('Peers that sent chunks over the last 5 s'),
          eta: count().nullable().describe('Seconds left at the current rate; null while nothing arrives'),
          bytesDone: count().describe('Bytes of the version held here, verified'),
          bytesTotal: count(),
          paused: z
            .object({ code: z.string(), message: z.string() })
            .nullable()
            .describe('Why the download waits (ERR_DISK_FULL), else null'),
        })
        .nullable()
        .describe('The download under way on this node, or null when none is'),
    })
    .meta({ id: 'DistributionView' }),
)

const record = rolloutSchema.shape

/** A rollout or rollback to a version, as its history lists it. */
export const VersionRollout = z.object({
  id: record.id,
  kind: record.kind,
  from: record.from,
  strategy: RolloutStrategy,
  state: RolloutState,
  reason: record.reason,
  requestedBy: record.requestedBy,
  requestedAt: isoTime(),
  finishedAt: isoTime().nullable(),
  actions: record.actions.unwrap().describe('Approvals, pauses, resumes and aborts'),
  failures: record.failures.unwrap().describe('Node → why it failed'),
})

export const DistributionHistoryEntry = DistributionView.extend({
  rollouts: z.array(VersionRollout).describe('The rollouts and rollbacks that moved the cluster to it'),
}).meta({ id: 'DistributionHistoryEntry' })
export type DistributionHistoryEntry = z.output<typeof DistributionHistoryEntry>

export const DistributionDetail = DistributionView.extend({
  manifest: SignedManifest,
  sources: z.record(z.string(), count()).describe('Peer → bytes fetched'),
}).meta({ id: 'DistributionDetail' })
export type DistributionDetail = z.output<typeof DistributionDetail>

export const PublishResult = describes<{ result: 'added' | 'same'; distribution: DistributionViewType }>()(
  z
    .object({ result: z.enum(['added', 'same']), distribution: DistributionView })
    .meta({ id: 'PublishResult' }),
)

export const PublishUploadResult = describes<PublishUploadResultType>()(
  PublishResult.extend({
    uploaded: z
      .object({ artifacts: count(), bytes: count() })
      .describe('Artifacts the agent did not hold yet'),
  }).meta({ id: 'PublishUploadResult' }),
)

/** The publish form's fields (multipart/form-data); the agent reads and checks them (browser-publish.ts). */
const file = (description: string) =>
  z.string().meta({ contentMediaType: 'application/octet-stream', description })
export const PublishForm = z
  .object({
    name: z.string().describe('Distribution name'),
    version: z.string(),
    key: file('The private key file'),
    file: z
      .array(file('One release file'))
      .describe('The release files; each file name is its path in the release folder'),
  })
  .meta({ id: 'PublishForm' })

export const UnpublishResult = describes<UnpublishedView>()(
  z
    .object({
      result: z
        .enum(['unpublished', 'already-unpublished'])
        .describe('`already-unpublished`: an earlier request did it; nothing changed'),
      id: z.string().meta({ examples: ['educa@1.2'] }),
      name: z.string(),
      version: z.string(),
      by: z.string().meta({
        description:
          'Who unpublished it: the token holder and role, or the agent asked when there are no tokens',
        examples: ['alice (developer)'],
      }),
      at: isoTime(),
    })
    .meta({ id: 'UnpublishResult' }),
)

export const VerifyResult = describes<{ checked: number; corrupt: string[] }>()(
  z.object({ checked: count(), corrupt: z.array(Sha256) }).meta({ id: 'VerifyResult' }),
)

export const TransferStats = describes<DistributorStats>()(
  z
    .object({
      chunksFetched: count(),
      bytesFetched: count(),
      chunksServed: count(),
      bytesServed: count(),
      badChunks: count(),
      chunkRequestsFailed: count().describe('Chunk requests that got no chunk'),
      penalised: z.array(z.object({ peer: z.string(), until: isoTime(), reason: z.string() })),
      sources: z
        .record(z.string(), z.record(z.string(), count()))
        .describe('Version → peer → bytes fetched from it since start'),
      dataPlane: z
        .object({
          address: z.string().describe('HOST:PORT peers fetch chunks from (announced as `data`)'),
          connections: count().describe('Data-plane connections open now'),
          busyAnswers: count().describe('Requests answered busy: every upload slot was taken'),
          elsewhereAnswers: count().describe(
            'Requests answered elsewhere: the chunk had just been sent to another peer (get it there)',
          ),
          chunksServed: count(),
          bytesServed: count(),
          fallbacks: count().describe(
            'Chunks fetched over libp2p because a peer’s data plane was unreachable',
          ),
        })
        .nullable()
        .describe('The data plane for bulk bytes; null when it is off (`--data-listen off`)'),
    })
    .meta({ id: 'TransferStats' }),
)
