import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { SingleBar } from 'cli-progress'
import { z } from 'zod'
import {
  ARTIFACT_KINDS,
  type ArtifactEntry,
  DEFAULT_CHUNK_SIZE,
  type DistributionView,
  digestFile,
  ManifestInvalidError,
  publicKeyOf,
  readPrivateKey,
  type SignedManifest,
  signManifest,
} from '../artifacts/index.js'
import { parsePlacement } from '../manager/index.js'
import { componentsOf } from '../runtime/index.js'
import { ShoalError } from '../shared/errors.js'
import type { ApiClient } from './client.js'
import { formatBytes } from './table.js'

/** The optional `distribution.json` in a publish folder (docs/distributions.md). */
const descriptionSchema = z
  .object({
    artifacts: z
      .record(
        z.string(),
        z
          .object({
            kind: z.enum(ARTIFACT_KINDS).default('resource'),
            descriptor: z.record(z.string(), z.unknown()).optional(),
          })
          .strict(),
      )
      .default({}),
    config: z.record(z.string(), z.unknown()).default({}),
    placement: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()

export const DESCRIPTION_FILE = 'distribution.json'

export interface PublishOptions {
  dir: string
  name: string
  version: string
  keyFile: string
  chunkSize?: number
  /** Show a progress bar on stderr (when it is a terminal). */
  progress: boolean
  /**
   * Apply the agents' placement rules before uploading (default true). False publishes
   * what an older shoal would; the agents still refuse such a version at rollout.
   */
  preflight?: boolean
}

export interface PublishResult {
  result: 'added' | 'same'
  distribution: DistributionView
  uploaded: { artifacts: number; bytes: number }
}

/**
 * `shoal publish`: hashes every regular file of DIR, builds and signs the manifest
 * locally, uploads only the artifacts the agent lacks, then posts the manifest.
 */
export async function publish(client: ApiClient, options: PublishOptions): Promise<PublishResult> {
  const privateKey = await readPrivateKey(options.keyFile)
  const { artifacts, files, description } = await describeFolder(
    options.dir,
    options.chunkSize ?? DEFAULT_CHUNK_SIZE,
  )
  // The rules the agents apply at rollout, applied before anything is uploaded: a typo in
  // the placement would otherwise publish a version that can never be rolled out.
  if (options.preflight !== false) parsePlacement(description.placement, [...componentsOf(artifacts).keys()])
  const history =
    (await client.find<DistributionView[]>(`/api/distributions/${encodeURIComponent(options.name)}`)) ?? []
  const previous = history.filter((v) => v.version !== options.version).at(-1)
  const signed: SignedManifest = signManifest(
    {
      schema: 1,
      name: options.name,
      version: options.version,
      artifacts,
      config: description.config,
      ...(description.placement == null ? {} : { placement: description.placement }),
      supersedes: previous?.version ?? null,
      createdAt: new Date().toISOString(),
    },
    privateKey,
    publicKeyOf(privateKey),
  )

  const missing: ArtifactEntry[] = []
  for (const artifact of uniqueByHash(artifacts)) {
    if ((await client.find(`/api/artifacts/${artifact.sha256}`)) == null) missing.push(artifact)
  }
  // Offered before any upload: an agent that refuses the signature (a key it does not
  // trust) or the manifest says so now, and no blob is left behind for nothing.
  if (missing.length > 0) await offerManifest(client, signed)
  const total = missing.reduce((sum, a) => sum + a.size, 0)
  const bar =
    options.progress && process.stderr.isTTY
      ? new SingleBar({
          stream: process.stderr,
          format: 'uploading [{bar}] {percentage}% | {sent} of {size} | {file}',
          hideCursor: true,
        })
      : null
  bar?.start(total, 0, { file: '', sent: formatBytes(0), size: formatBytes(total) })
  let sent = 0
  try {
    for (const artifact of missing) {
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          sent += chunk.length
          bar?.update(sent, { file: artifact.name, sent: formatBytes(sent) })
          done(null, chunk)
        },
      })
      const stream = createReadStream(files.get(artifact.name)!).pipe(counter)
      await client.post(`/api/artifacts?sha256=${artifact.sha256}`, {
        body: Readable.toWeb(stream) as ReadableStream<Uint8Array>,
        timeoutMs: 60 * 60_000,
      })
    }
  } finally {
    bar?.stop()
  }
  const posted = await client.post<{ result: 'added' | 'same'; distribution: DistributionView }>(
    '/api/distributions',
    {
      json: signed,
    },
  )
  return { ...posted, uploaded: { artifacts: missing.length, bytes: total } }
}

/** Posts the manifest; ERR_ARTIFACT_MISSING (what is expected before the upload) means it was accepted as signed. */
async function offerManifest(client: ApiClient, signed: SignedManifest): Promise<void> {
  try {
    await client.post('/api/distributions', { json: signed })
  } catch (err) {
    if (err instanceof ShoalError && err.code === 'ERR_ARTIFACT_MISSING') return
    throw err
  }
}

function uniqueByHash(artifacts: ArtifactEntry[]): ArtifactEntry[] {
  return [...new Map(artifacts.map((a) => [a.sha256, a])).values()]
}

/** Every regular file under `dir` (but distribution.json) as an artifact entry. */
async function describeFolder(dir: string, chunkSize: number) {
  // The folder itself first: a wrong path is an operator's mistake, not a file-system error.
  const folder = await lstat(dir).catch(() => null)
  if (folder == null)
    throw new ShoalError(
      'ERR_RELEASE_FOLDER',
      `release folder ${dir} does not exist; pass the folder that holds the release's files`,
      400,
    )
  if (!folder.isDirectory())
    throw new ShoalError(
      'ERR_RELEASE_FOLDER',
      `${dir} is not a folder; pass the folder that holds the release's files`,
      400,
    )
  const text = await readFile(join(dir, DESCRIPTION_FILE), 'utf8').catch(() => null)
  let raw: unknown = {}
  try {
    raw = text == null ? {} : JSON.parse(text)
  } catch (err) {
    throw new ManifestInvalidError(`${DESCRIPTION_FILE} is not JSON: ${(err as Error).message}`)
  }
  const parsed = descriptionSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ManifestInvalidError(
      `${DESCRIPTION_FILE}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid'}`,
    )
  }
  const description = parsed.data
  const files = new Map<string, string>()
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name)
    const name = relative(dir, path).split(sep).join('/')
    if (name === DESCRIPTION_FILE) continue
    const info = await lstat(path)
    if (info.isSymbolicLink())
      throw new ManifestInvalidError(`${name} is a symbolic link; publish only regular files`)
    if (info.isFile()) files.set(name, path)
  }
  for (const name of Object.keys(description.artifacts)) {
    if (!files.has(name))
      throw new ManifestInvalidError(`${DESCRIPTION_FILE} describes ${name}, which is not in ${dir}`)
  }
  if (files.size === 0) throw new ManifestInvalidError(`${dir} holds no files to publish`)
  const artifacts: ArtifactEntry[] = []
  for (const [name, path] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const digest = await digestFile(path, chunkSize)
    const described = description.artifacts[name]
    artifacts.push({
      name,
      kind: described?.kind ?? 'resource',
      ...digest,
      ...(described?.descriptor == null ? {} : { descriptor: described.descriptor }),
    })
  }
  return { artifacts, files, description }
}
