import type { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { DISTRIBUTION_NAME, type DistributionView, VERSION } from '../artifacts/index.js'
import { ShoalError } from '../shared/index.js'
import { type Caller, callerOf } from './auth.js'

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
  list(): unknown[]
  /** The versions of `name`, in publication order (each with the rollouts to it). */
  history(name: string): DistributionView[]
  detail(id: string): unknown
  verify(): Promise<{ checked: number; corrupt: string[] }>
  /**
   * Removes a version that was never rolled out from every agent (through the manager);
   * ERR_VERSION_IN_USE when it runs, is wanted or is kept for rollback.
   */
  unpublish(id: string, caller?: Caller | null): Promise<UnpublishedView>
}

const MAX_MANIFEST_BODY = 64 * 1024 * 1024

/**
 * - `GET|HEAD /api/artifacts/:sha256`: 200 with `{sha256,size}` if this agent holds it, else 404;
 * - `POST /api/artifacts?sha256=HASH`: the bytes (streamed to disk, verified against HASH);
 * - `POST /api/distributions`: a signed manifest whose artifacts are all here;
 * - `GET /api/distributions`, `/api/distributions/:name` (history), `/api/distributions/:name/:version`;
 * - `DELETE /api/distributions/:name/:version`: unpublish a version never rolled out;
 * - `POST /api/verify`: re-hash every blob.
 */
export function artifactRoutes(app: Hono, api: () => ArtifactsApi): void {
  app.on(['GET', 'HEAD'], '/api/artifacts/:sha256', (c) => {
    const blob = api().blob(c.req.param('sha256'))
    if (blob == null)
      throw new ShoalError('ERR_NOT_FOUND', `this agent does not hold artifact ${c.req.param('sha256')}`, 404)
    return c.json(blob)
  })
  app.post('/api/artifacts', async (c) => {
    const sha256 = c.req.query('sha256')
    if (sha256 == null)
      throw new ShoalError('ERR_BAD_REQUEST', 'POST /api/artifacts needs ?sha256=HASH of the body', 400)
    const body = c.req.raw.body
    if (body == null) throw new ShoalError('ERR_BAD_REQUEST', 'the request has no body', 400)
    const result = await api().ingestBlob(body as unknown as AsyncIterable<Uint8Array>, sha256)
    return c.json({ sha256, ...result }, result.created ? 201 : 200)
  })
  app.post(
    '/api/distributions',
    bodyLimit({
      maxSize: MAX_MANIFEST_BODY,
      onError: () => {
        throw new ShoalError('ERR_MANIFEST_INVALID', `manifest larger than ${MAX_MANIFEST_BODY} bytes`, 413)
      },
    }),
    async (c) => {
      const body = await c.req.json().catch(() => {
        throw new ShoalError('ERR_MANIFEST_INVALID', 'the body is not JSON', 400)
      })
      const published = await api().publish(body)
      return c.json(published, published.result === 'added' ? 201 : 200)
    },
  )
  app.get('/api/distributions', (c) => c.json(api().list()))
  app.get('/api/distributions/:name', (c) => {
    const history = api().history(c.req.param('name'))
    if (history.length === 0)
      throw new ShoalError('ERR_UNKNOWN_DISTRIBUTION', `no version of ${c.req.param('name')} is known`, 404)
    return c.json(history)
  })
  app.get('/api/distributions/:name/:version', (c) =>
    c.json(api().detail(`${c.req.param('name')}@${c.req.param('version')}`)),
  )
  app.delete('/api/distributions/:name/:version', async (c) => {
    const name = c.req.param('name')
    const version = c.req.param('version')
    if (!DISTRIBUTION_NAME.test(name) || !VERSION.test(version))
      throw new ShoalError(
        'ERR_BAD_REQUEST',
        `${JSON.stringify(`${name}@${version}`)} is not a distribution version NAME@VERSION`,
        400,
      )
    return c.json(await api().unpublish(`${name}@${version}`, callerOf(c.req.raw)))
  })
  app.post('/api/verify', async (c) => c.json(await api().verify()))
}
