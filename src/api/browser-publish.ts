import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, normalize, sep } from 'node:path'
import type { Context } from 'hono'
import {
  ArtifactMissingError,
  type PublishTarget,
  parsePrivateKey,
  publishRelease,
} from '../artifacts/index.js'
import { BadRequestError } from '../shared/index.js'
import type { ArtifactsApi } from './artifact-routes.js'

/**
 * `POST /api/publish` (multipart: `name`, `version`, `key` = the publisher's
 * private key file, `file` parts named by their path in the release folder): the
 * dashboard's publish form. The agent publishes the upload as `shoal publish`
 * does (the same library, src/artifacts/publisher.ts), straight into its own
 * store and catalogue, from a temporary copy of the files. The key is read from
 * the request, never written to disk and never logged.
 */
export async function publishUpload(c: Context, api: ArtifactsApi): Promise<Response> {
  const form = await c.req.parseBody({ all: true }).catch(() => {
    throw new BadRequestError('the body must be multipart/form-data')
  })
  const name = single(form.name, 'name')
  const version = single(form.version, 'version')
  const keyFile = form.key
  if (!(keyFile instanceof File)) throw new BadRequestError('attach the publisher key file as "key"')
  const files = (Array.isArray(form.file) ? form.file : [form.file]).filter(
    (f): f is File => f instanceof File,
  )
  if (files.length === 0) throw new BadRequestError('attach the release files as "file" parts')
  const key = parsePrivateKey(new Uint8Array(await keyFile.arrayBuffer()), 'the uploaded key file')

  const work = await mkdtemp(join(tmpdir(), 'shoal-publish-'))
  try {
    const dir = join(work, 'release')
    const paths = files.map((file) => safeRelativePath(file.name))
    checkLayout(paths)
    for (const [i, file] of files.entries()) {
      const target = join(dir, paths[i]!)
      await mkdir(dirname(target), { recursive: true })
      await writeFile(target, Buffer.from(await file.arrayBuffer()))
    }
    const result = await publishRelease(thisAgent(api), { dir, name, version, key })
    return c.json(result, result.result === 'added' ? 201 : 200)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

/** This agent's store and catalogue as the publisher sees an agent: no HTTP call to itself. */
function thisAgent(api: ArtifactsApi): PublishTarget {
  return {
    versions: async (name) => api.history(name).map((v) => v.version),
    holds: async (sha256) => api.blob(sha256) != null,
    upload: async (artifact, bytes) => {
      await api.ingestBlob(bytes, artifact.sha256)
    },
    offer: async (signed) => {
      try {
        await api.publish(signed)
      } catch (err) {
        // Everything but the artifacts was checked: accepted.
        if (err instanceof ArtifactMissingError) return
        throw err
      }
    },
    publish: (signed) => api.publish(signed),
  }
}

function single(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new BadRequestError(`the form needs a "${field}"`)
  return value.trim()
}

/** A file's path inside the release folder; refuses absolute paths, `..`, NUL bytes and names no file system holds. */
function safeRelativePath(name: string): string {
  const path = normalize(name.replace(/\\/g, '/'))
  const segments = path.split(sep)
  if (
    path.startsWith(sep) ||
    path === '.' ||
    path.endsWith(sep) ||
    path.includes('\u0000') ||
    segments.some((s) => s === '..' || Buffer.byteLength(s) > 255)
  )
    throw new BadRequestError(`${JSON.stringify(name)} is not a file path inside the release folder`)
  return path
}

/** Every path is a file: none may also be a folder of another (`a` and `a/b`). */
function checkLayout(paths: string[]): void {
  const all = new Set(paths)
  for (const path of paths) {
    const segments = path.split(sep)
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join(sep)
      if (all.has(parent)) throw new BadRequestError(`"${parent}" is both a file and a folder in the upload`)
    }
  }
  if (all.size !== paths.length) throw new BadRequestError('the upload names a file twice')
}
