import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, normalize, sep } from 'node:path'
import type { Context } from 'hono'
import { ApiClient } from '../cli/client.js'
import { publish } from '../cli/publish.js'
import { ShoalError } from '../shared/errors.js'

/**
 * `POST /api/publish` (multipart: `name`, `version`, `key` = the publisher's
 * private key file, `file` parts named by their path in the release folder): the
 * dashboard's publish form. The agent runs exactly what `shoal publish` runs,
 * against itself with the caller's token, from a temporary copy of the upload;
 * the key lives in that folder only for the request and is never logged.
 */
export async function publishUpload(c: Context, self: string): Promise<Response> {
  const form = await c.req.parseBody({ all: true }).catch(() => {
    throw new ShoalError('ERR_BAD_REQUEST', 'the body must be multipart/form-data', 400)
  })
  const name = single(form.name, 'name')
  const version = single(form.version, 'version')
  const key = form.key
  if (!(key instanceof File))
    throw new ShoalError('ERR_BAD_REQUEST', 'attach the publisher key file as "key"', 400)
  const files = (Array.isArray(form.file) ? form.file : [form.file]).filter(
    (f): f is File => f instanceof File,
  )
  if (files.length === 0)
    throw new ShoalError('ERR_BAD_REQUEST', 'attach the release files as "file" parts', 400)

  const work = await mkdtemp(join(tmpdir(), 'shoal-publish-'))
  try {
    const keyFile = join(work, 'publisher.key')
    await writeFile(keyFile, Buffer.from(await key.arrayBuffer()), { mode: 0o600 })
    const dir = join(work, 'release')
    for (const file of files) {
      const target = join(dir, safeRelativePath(file.name))
      await mkdir(dirname(target), { recursive: true })
      await writeFile(target, Buffer.from(await file.arrayBuffer()))
    }
    const bearer = /^Bearer\s+(\S+)/i.exec(c.req.header('authorization') ?? '')?.[1]
    // Its own address, never the request's Host header (which would send the upload and token elsewhere).
    const agent = new ApiClient(self, bearer)
    const result = await publish(agent, { dir, name, version, keyFile, progress: false })
    return c.json(result, result.result === 'added' ? 201 : 200)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

function single(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new ShoalError('ERR_BAD_REQUEST', `the form needs a "${field}"`, 400)
  return value.trim()
}

/** A file's path inside the release folder; refuses absolute paths and `..`. */
function safeRelativePath(name: string): string {
  const path = normalize(name.replace(/\\/g, '/'))
  if (path.startsWith(sep) || path.startsWith('..') || path.split(sep).includes('..') || path === '.')
    throw new ShoalError('ERR_BAD_REQUEST', `"${name}" is not a path inside the release folder`, 400)
  return path
}
