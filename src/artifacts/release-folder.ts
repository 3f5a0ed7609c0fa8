import { lstat, readdir, readFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { z } from 'zod'
import { digestFile } from './chunking.js'
import { ManifestInvalidError, ReleaseFolderError } from './errors.js'
import { ARTIFACT_KINDS, type ArtifactEntry } from './manifest.js'

/** The optional file of a release folder that says what its files are (docs/distributions.md). */
export const DESCRIPTION_FILE = 'distribution.json'

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

export type ReleaseDescription = z.output<typeof descriptionSchema>

/** A release folder read and hashed: what a manifest lists, and where each artifact's bytes are. */
export interface ReleaseFolder {
  /** Sorted by name. */
  artifacts: ArtifactEntry[]
  /** Artifact name → path of its file. */
  files: Map<string, string>
  description: ReleaseDescription
}

/** The folder's `distribution.json` (an empty description when there is none). */
async function readDescription(dir: string): Promise<ReleaseDescription> {
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
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : ''
    throw new ManifestInvalidError(`${DESCRIPTION_FILE}: ${where}${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

/**
 * Every regular file under `dir` (but distribution.json) as an artifact entry,
 * hashed in `chunkSize` chunks, with the kinds and descriptors distribution.json gives.
 */
export async function readReleaseFolder(dir: string, chunkSize: number): Promise<ReleaseFolder> {
  // The folder itself first: a wrong path is an operator's mistake, not a file-system error.
  const folder = await lstat(dir).catch(() => null)
  if (folder == null)
    throw new ReleaseFolderError(
      `release folder ${dir} does not exist; pass the folder that holds the release's files`,
    )
  if (!folder.isDirectory())
    throw new ReleaseFolderError(`${dir} is not a folder; pass the folder that holds the release's files`)
  const description = await readDescription(dir)
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
