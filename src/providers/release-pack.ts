import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { create as createTar } from 'tar'
import { ReleasePackError } from './errors.js'

/** A release tarball of Shoal on this machine, as a launched node downloads it. */
export interface ReleaseFile {
  /** Where it is (in the agent's release cache). */
  path: string
  /** The name it is downloaded under: `shoal-<version>.tgz`. */
  name: string
  version: string
  /** Hex sha256 of the file. */
  sha256: string
  size: number
}

/** The mtime of every entry (npm pack uses the same date), so equal files give an equal tarball. */
const ENTRY_MTIME = new Date('1985-10-26T08:15:00.000Z')

/** Names npm pack leaves out wherever they are (npm-packlist's defaults). */
const IGNORED = new Set([
  'node_modules',
  '.git',
  '.hg',
  '.svn',
  'CVS',
  '.DS_Store',
  '.npmrc',
  '.lock-wscript',
  'config.gypi',
  'npm-debug.log',
  'package-lock.json',
])
const IGNORED_PATTERN = /^(\._.*|\..*\.swp|\.wafpickle-\d+)$/
/** Files npm pack adds from the package root whatever `files` says. */
const ALWAYS = /^(readme|license|licence)(\..*)?$/i

/** The folder of the `shoal` package this code runs from (its package.json names it "shoal"). */
export function findPackageRoot(from = dirname(fileURLToPath(import.meta.url))): string | null {
  for (let current = from; ; current = dirname(current)) {
    try {
      const pkg = JSON.parse(readFileSync(join(current, 'package.json'), 'utf8')) as { name?: unknown }
      if (pkg.name === 'shoal') return current
    } catch {
      // no package.json here: keep climbing
    }
    if (dirname(current) === current) return null
  }
}

/**
 * Packs the package at `root` as `npm pack` would (package.json, README and
 * LICENSE, and what its `files` field lists, under `package/`), into `cacheDir`.
 * The cached file is named by the version and a fingerprint of the packed files'
 * names, sizes and mtimes: an unchanged package is found, not packed again; a
 * rebuilt one gets a new tarball and the old ones are removed. The tarball is
 * written to a temporary file, hashed as it is written, synced, then renamed.
 */
export async function packRelease(root: string, cacheDir: string): Promise<ReleaseFile> {
  const pkg = await readPackage(root)
  const files = await packedFiles(root, pkg.files)
  for (const bin of pkg.bins)
    if (!files.some((f) => f.path === normalize(bin)))
      throw new ReleasePackError(`${join(root, bin)} is missing; build Shoal first (npm run build)`)
  const fingerprint = createHash('sha256')
  for (const f of files) fingerprint.update(`${f.path}\0${f.size}\0${f.mtimeMs}\n`)
  const cacheName = `shoal-${pkg.version}-${fingerprint.digest('hex').slice(0, 12)}.tgz`
  const path = join(cacheDir, cacheName)
  const name = `shoal-${pkg.version}.tgz`

  const cached = await hashFile(path).catch(() => null)
  if (cached != null) return { path, name, version: pkg.version, ...cached }

  await mkdir(cacheDir, { recursive: true, mode: 0o700 })
  const temp = join(cacheDir, `.${randomBytes(6).toString('hex')}.tmp`)
  const hash = createHash('sha256')
  let size = 0
  const handle = await open(temp, 'wx', 0o644)
  try {
    const pack = createTar(
      { gzip: true, cwd: root, prefix: 'package', portable: true, mtime: ENTRY_MTIME, noDirRecurse: true },
      files.map((f) => f.path.split(sep).join('/')),
    )
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
      await handle.write(chunk)
    }
    await handle.sync()
  } catch (err) {
    await handle.close()
    await rm(temp, { force: true })
    throw new ReleasePackError(err instanceof Error ? err.message : String(err))
  }
  await handle.close()
  await rename(temp, path)
  // Older tarballs (an earlier build of the same version): their URLs died with the agent that signed them.
  for (const entry of await readdir(cacheDir))
    if (entry !== cacheName && /^shoal-.*\.tgz$/.test(entry)) await rm(join(cacheDir, entry), { force: true })
  return { path, name, version: pkg.version, sha256: hash.digest('hex'), size }
}

async function readPackage(
  root: string,
): Promise<{ version: string; files: string[] | null; bins: string[] }> {
  let pkg: { name?: unknown; version?: unknown; files?: unknown; bin?: unknown }
  try {
    pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
  } catch (err) {
    throw new ReleasePackError(`${join(root, 'package.json')}: ${(err as Error).message}`)
  }
  if (pkg.name !== 'shoal' || typeof pkg.version !== 'string' || !/^[0-9A-Za-z.+-]+$/.test(pkg.version))
    throw new ReleasePackError(`${join(root, 'package.json')} is not the shoal package with a version`)
  const files =
    Array.isArray(pkg.files) && pkg.files.every((f) => typeof f === 'string') ? (pkg.files as string[]) : null
  const bins =
    typeof pkg.bin === 'string'
      ? [pkg.bin]
      : typeof pkg.bin === 'object' && pkg.bin != null
        ? Object.values(pkg.bin).filter((b): b is string => typeof b === 'string')
        : []
  return { version: pkg.version, files, bins }
}

interface PackedFile {
  /** Relative to the package root, with the platform's separator. */
  path: string
  size: number
  mtimeMs: number
}

/** The regular files to pack, sorted: what `files` lists (folders recursively; all of root without it). */
async function packedFiles(root: string, listed: string[] | null): Promise<PackedFile[]> {
  const found = new Map<string, PackedFile>()
  const add = async (rel: string): Promise<void> => {
    const info = await lstat(join(root, rel)).catch(() => null)
    // Missing entries are skipped, as npm pack does; links and devices are never packed.
    if (info == null) return
    if (info.isDirectory()) {
      for (const entry of await readdir(join(root, rel))) {
        if (IGNORED.has(entry) || IGNORED_PATTERN.test(entry)) continue
        await add(rel === '' ? entry : join(rel, entry))
      }
    } else if (info.isFile()) found.set(rel, { path: rel, size: info.size, mtimeMs: info.mtimeMs })
  }
  if (listed == null) await add('')
  else {
    for (const entry of await readdir(root)) if (ALWAYS.test(entry)) await add(entry)
    for (const entry of listed) {
      // Shoal's own `files` names plain paths; a glob would need npm's matcher to be packed the same.
      if (/[*?[\]{}!]/.test(entry))
        throw new ReleasePackError(
          `package.json "files" entry "${entry}" is a pattern, which is not supported`,
        )
      const rel = normalize(entry).replace(/[\\/]+$/, '')
      if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`))
        throw new ReleasePackError(`package.json "files" entry "${entry}" is outside the package`)
      await add(rel === '.' || rel === '' ? '' : rel)
    }
  }
  await add('package.json')
  return [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** sha256 and size of a file, read as a stream. */
async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const { size } = await stat(path)
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return { sha256: hash.digest('hex'), size }
}
