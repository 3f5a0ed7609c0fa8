import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import type { Hono } from 'hono'
import { z } from 'zod'
import { NotFoundError } from '../shared/index.js'
import { segment } from './schemas/common.js'
import { type Operation, serve, text } from './schemas/operation.js'

/** A release tarball on this machine (src/providers/release-pack.ts). */
export interface ReleaseDownload {
  path: string
  name: string
  sha256: string
  size: number
}

/** Where the API finds the release a token grants: the agent's node operations. */
export interface ReleasesApi {
  /** Throws ERR_RELEASE_URL_SIGNATURE (403), ERR_RELEASE_URL_EXPIRED (410) or ERR_NOT_FOUND (404). */
  release(token: string): Promise<ReleaseDownload>
}

export const RELEASE_OPERATIONS = {
  release: {
    method: 'get',
    path: '/releases/{token}',
    operationId: 'getRelease',
    summary: "This agent's Shoal release tarball, for a node it launched",
    description:
      'Outside `/api`: no API token; the signed, expiring token in the path is the credential (docs/cloud-init.md).',
    tag: 'nodes',
    access: 'signed-url',
    params: { token: segment() },
    responses: {
      200: text(
        'The release in npm pack format; header X-Shoal-Sha256 has its hash',
        'application/gzip',
        z.string().meta({ contentMediaType: 'application/gzip' }),
      ),
    },
    errors: {
      ERR_RELEASE_URL_SIGNATURE: 'Not signed by this agent, or altered',
      ERR_NOT_FOUND: 'This agent serves no release, or not this one',
      ERR_RELEASE_URL_EXPIRED: 'Expired',
    },
  },
} satisfies Record<string, Operation>

/**
 * `GET /releases/:token`: the Shoal release tarball a node launched by this agent
 * installs (docs/cloud-init.md). The signed, expiring token in the URL is the
 * credential, like a presigned object URL: the new node holds no API token, so
 * this route sits outside `/api/*` and is registered before the token check and
 * the browser guard. It serves one file, read-only, and only while the token holds.
 */
export function releaseRoutes(app: Hono, api: () => ReleasesApi | undefined): void {
  serve(app, RELEASE_OPERATIONS.release, async (c, { params }) => {
    const releases = api()
    if (releases == null) throw new NotFoundError('this agent serves no Shoal release')
    const release = await releases.release(params.token)
    const headers = {
      'Content-Type': 'application/gzip',
      'Content-Length': String(release.size),
      'Content-Disposition': `attachment; filename="${release.name}"`,
      'Cache-Control': 'no-store',
      'X-Shoal-Sha256': release.sha256,
    }
    if (c.req.method === 'HEAD') return c.body(null, 200, headers)
    const body = Readable.toWeb(createReadStream(release.path)) as ReadableStream<Uint8Array>
    return c.body(body, 200, headers)
  })
}
