import type { Context, Hono } from 'hono'
import { z } from 'zod'
import { type DistributionView, ManifestInvalidError, UnknownDistributionError } from '../artifacts/index.js'
import { BadRequestError, NotFoundError } from '../shared/index.js'
import { type Caller, callerOf } from './auth.js'
import { NO_MANAGER, Sha256, segment } from './schemas/common.js'
import {
  ArtifactHeld,
  ArtifactUploaded,
  type DistributionDetail,
  DistributionDetail as DistributionDetailSchema,
  type DistributionHistoryEntry,
  DistributionHistoryEntry as DistributionHistoryEntrySchema,
  DistributionName,
  DistributionVersion,
  DistributionView as DistributionViewSchema,
  PublishResult,
  SignedManifest,
  UnpublishResult,
  VerifyResult,
} from './schemas/distributions.js'
import { documentedRequest, json, type Operation, serve } from './schemas/operation.js'

/** The answer of `DELETE /api/distributions/:name/:version` (`shoal unpublish`). */
export interface UnpublishedView {
  /** `already-unpublished`: an earlier request did it, nothing changed. */
  result: 'unpublished' | 'already-unpublished'
  id: string
  name: string
  version: string
  /** Who unpublished it ("alice (developer)", or the agent's id without tokens) and when, as the cluster state keeps it. */
  by: string
  at: string
}

/** What the artifact and distribution endpoints need from the agent. */
export interface ArtifactsApi {
  blob(sha256: string): { sha256: string; size: number } | null
  ingestBlob(body: AsyncIterable<Uint8Array>, sha256: string): Promise<{ created: boolean; size: number }>
  publish(body: unknown): Promise<{ result: 'added' | 'same'; distribution: DistributionView }>
  list(): DistributionView[]
  /** The versions of `name`, in publication order (each with the rollouts to it). */
  history(name: string): DistributionHistoryEntry[]
  detail(id: string): DistributionDetail
  verify(): Promise<{ checked: number; corrupt: string[] }>
  /**
   * Removes a version that was never rolled out from every agent (through the manager);
   * ERR_VERSION_IN_USE when it runs, is wanted or is kept for rollback.
   */
  unpublish(id: string, caller?: Caller | null): Promise<UnpublishedView>
}

const MAX_MANIFEST_BODY = 64 * 1024 * 1024

export const ARTIFACT_OPERATIONS = {
  upload: {
    method: 'post',
    path: '/api/artifacts',
    operationId: 'uploadArtifact',
    summary: 'Upload one artifact (streamed to disk, kept only if it hashes to `sha256`)',
    tag: 'distributions',
    query: { sha256: Sha256.describe('The sha256 of the body, 64 lowercase hex digits') },
    body: documentedRequest(
      'application/octet-stream',
      z.string().meta({ contentMediaType: 'application/octet-stream' }),
    ),
    responses: { 200: json('Already held', ArtifactUploaded), 201: json('Stored', ArtifactUploaded) },
    errors: {
      ERR_BAD_REQUEST: 'No `?sha256=`, or no body',
      ERR_ARTIFACT_TOO_LARGE: 'Larger than the agent accepts',
      ERR_ARTIFACT_CORRUPT: 'The bytes do not hash to `sha256`, or it is no sha256',
    },
  },
  get: {
    method: 'get',
    path: '/api/artifacts/{sha256}',
    operationId: 'getArtifact',
    summary: 'Whether this agent holds an artifact (`shoal publish` skips what is there)',
    tag: 'distributions',
    params: { sha256: segment('The sha256 of the artifact, 64 lowercase hex digits') },
    responses: { 200: json('Held here', ArtifactHeld) },
    errors: { ERR_NOT_FOUND: 'Not held here' },
  },
  head: {
    method: 'head',
    path: '/api/artifacts/{sha256}',
    operationId: 'headArtifact',
    summary: 'As GET, without a body',
    tag: 'distributions',
    params: { sha256: segment('The sha256 of the artifact, 64 lowercase hex digits') },
    responses: { 200: { description: 'Held here' }, 404: { description: 'Not held here' } },
  },
  list: {
    method: 'get',
    path: '/api/distributions',
    operationId: 'listDistributions',
    summary: 'Every version this agent knows (`shoal distributions --json`)',
    tag: 'distributions',
    responses: { 200: json('Oldest first', z.array(DistributionViewSchema)) },
  },
  publish: {
    method: 'post',
    path: '/api/distributions',
    operationId: 'publishDistribution',
    summary: 'Publish a signed manifest whose artifacts this agent holds (`shoal publish`)',
    description:
      'Checked in this order: the schema, the signature and key, the distribution rules, that the version ' +
      'was not unpublished, and only then that every artifact is here: a client can post the manifest ' +
      'first and learn of any refusal before it uploads a byte.',
    tag: 'distributions',
    body: documentedRequest('application/json', SignedManifest),
    responses: {
      200: json('The same content was already published under this version', PublishResult),
      201: json('Added, and announced to the cluster', PublishResult),
    },
    errors: {
      ERR_MANIFEST_INVALID: 'Not JSON, or the manifest breaks the schema or the rules',
      ERR_MANIFEST_SIGNATURE: 'Unsigned, signed by an untrusted key, or altered',
      ERR_VERSION_UNPUBLISHED: 'The version was unpublished from this cluster',
      ERR_ARTIFACT_MISSING: 'An artifact is not on this agent',
      ERR_VERSION_EXISTS: 'The version exists with other content',
    },
    bodyLimit: {
      maxBytes: MAX_MANIFEST_BODY,
      code: ManifestInvalidError.code,
      why: 'Manifest larger than 64 MiB',
      message: `manifest larger than ${MAX_MANIFEST_BODY} bytes`,
    },
  },
  history: {
    method: 'get',
    path: '/api/distributions/{name}',
    operationId: 'getDistributionHistory',
    summary: 'The versions of one distribution, with the rollouts that moved the cluster to each',
    tag: 'distributions',
    params: { name: segment('Distribution name, e.g. `educa`') },
    responses: { 200: json('Oldest first', z.array(DistributionHistoryEntrySchema)) },
    errors: { ERR_UNKNOWN_DISTRIBUTION: 'No version of it is known' },
  },
  detail: {
    method: 'get',
    path: '/api/distributions/{name}/{version}',
    operationId: 'getDistribution',
    summary: 'One version with its signed manifest and where its bytes came from',
    tag: 'distributions',
    params: { name: segment('Distribution name, e.g. `educa`'), version: segment('Version, e.g. `1.1`') },
    responses: { 200: json('The version', DistributionDetailSchema) },
    errors: { ERR_UNKNOWN_DISTRIBUTION: 'Unknown here' },
  },
  unpublish: {
    method: 'delete',
    path: '/api/distributions/{name}/{version}',
    operationId: 'unpublishDistribution',
    summary: 'Unpublish a version never rolled out, from every agent (`shoal unpublish NAME@VERSION`)',
    description:
      'The manager records it in the cluster state (who and when); every agent drops it and the blobs ' +
      'no other version uses, frees its retention slot, and refuses to publish or fetch it again ' +
      '(`ERR_VERSION_UNPUBLISHED`). Refused for a version that runs or is being installed on a node, ' +
      'that the cluster wants, or that a rollout or rollback in the history moved to or from (kept for ' +
      'rollback). Repeating it answers `already-unpublished`.',
    tag: 'distributions',
    params: { name: DistributionName, version: DistributionVersion },
    responses: { 200: json('Unpublished: every agent drops it', UnpublishResult) },
    errors: {
      ERR_BAD_REQUEST: 'Not a distribution name and version',
      ERR_UNKNOWN_DISTRIBUTION: 'The manager does not know it',
      ERR_VERSION_IN_USE: 'It runs, is wanted or is kept for rollback; the message says where',
      ...NO_MANAGER,
    },
  },
  verify: {
    method: 'post',
    path: '/api/verify',
    operationId: 'verifyStore',
    summary: 'Re-hash every artifact this agent holds; corrupt ones are removed and fetched again',
    tag: 'distributions',
    responses: { 200: json('What was checked', VerifyResult) },
  },
} satisfies Record<string, Operation>

/**
 * - `GET|HEAD /api/artifacts/:sha256`: 200 with `{sha256,size}` if this agent holds it, else 404;
 * - `POST /api/artifacts?sha256=HASH`: the bytes (streamed to disk, verified against HASH);
 * - `POST /api/distributions`: a signed manifest whose artifacts are all here;
 * - `GET /api/distributions`, `/api/distributions/:name` (history), `/api/distributions/:name/:version`;
 * - `DELETE /api/distributions/:name/:version`: unpublish a version never rolled out;
 * - `POST /api/verify`: re-hash every blob.
 */
export function artifactRoutes(app: Hono, api: () => ArtifactsApi): void {
  const held = (c: Context, sha256: string) => {
    const blob = api().blob(sha256)
    if (blob == null) throw new NotFoundError(`this agent does not hold artifact ${sha256}`)
    return c.json(blob)
  }
  serve(app, ARTIFACT_OPERATIONS.get, (c, { params }) => held(c, params.sha256))
  serve(app, ARTIFACT_OPERATIONS.head, (c, { params }) => held(c, params.sha256))
  serve(app, ARTIFACT_OPERATIONS.upload, async (c) => {
    const sha256 = c.req.query('sha256')
    if (sha256 == null) throw new BadRequestError('POST /api/artifacts needs ?sha256=HASH of the body')
    const body = c.req.raw.body
    if (body == null) throw new BadRequestError('the request has no body')
    const result = await api().ingestBlob(body as unknown as AsyncIterable<Uint8Array>, sha256)
    return c.json({ sha256, ...result }, result.created ? 201 : 200)
  })
  serve(app, ARTIFACT_OPERATIONS.publish, async (c) => {
    // The distributor checks the manifest (artifacts/manifest.ts, the schema the document shows).
    const body = await c.req.json().catch(() => {
      throw new ManifestInvalidError('the body is not JSON')
    })
    const published = await api().publish(body)
    return c.json(published, published.result === 'added' ? 201 : 200)
  })
  serve(app, ARTIFACT_OPERATIONS.list, (c) => c.json(api().list()))
  serve(app, ARTIFACT_OPERATIONS.history, (c, { params }) => {
    const history = api().history(params.name)
    if (history.length === 0) throw new UnknownDistributionError(params.name)
    return c.json(history)
  })
  serve(app, ARTIFACT_OPERATIONS.detail, (c, { params }) =>
    c.json(api().detail(`${params.name}@${params.version}`)),
  )
  serve(app, ARTIFACT_OPERATIONS.unpublish, async (c, { params }) =>
    c.json(await api().unpublish(`${params.name}@${params.version}`, callerOf(c.req.raw))),
  )
  serve(app, ARTIFACT_OPERATIONS.verify, async (c) => c.json(await api().verify()))
}
