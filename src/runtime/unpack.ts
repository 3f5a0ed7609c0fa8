import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, mkdir, rename, rm } from 'node:fs/promises'
import { dirname, posix } from 'node:path'
import { Transform } from 'node:stream'
import * as tar from 'tar'
import { messageOf } from '../shared/index.js'
import {
  PackageError,
  PackageInvalidError,
  PackageTooLargeError,
  PackageUnsafeError,
  UnpackDestinationError,
} from './errors.js'

export interface UnpackLimits {
  /** Sum of the sizes of all entries. */
  maxBytes: number
  /** Number of entries: files, folders and links alike. */
  maxFiles: number
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 512 * 1024 * 1024, maxFiles: 10_000 }

/** `files` counts every entry (the number `maxFiles` limits), `bytes` their sizes. */
export interface UnpackedPackage {
  files: number
  bytes: number
  /** The folder existed: nothing was read or written. */
  reused?: boolean
}

/** Hard links, devices, FIFOs and every exotic type are refused. */
const ALLOWED_TYPES: ReadonlySet<string> = new Set([
  'File',
  'OldFile',
  'ContiguousFile',
  'Directory',
  'SymbolicLink',
])

/** Like a umask of 022 plus no setuid, setgid or sticky bit; executable bits stay. */
const MODE_MASK = 0o755

const DRIVE_LETTER = /^[a-zA-Z]:/

/**
 * Unpacks a component package (a gzip'd or plain tarball file) into `dest`, atomically.
 *
 * A first pass reads the whole archive without writing anything and refuses it at
 * the first unsafe entry, or when it is too large or not a tarball. Only then is it
 * extracted into `${dest}.tmp-<random>`, which is renamed to `dest` once complete, so
 * `dest` either does not exist or holds the whole package.
 *
 * Callers name `dest` by the package's content hash, so an existing `dest` is an
 * earlier install of the same package that completed: it is left as it is.
 */
export async function unpackPackage(
  tarball: string,
  dest: string,
  limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
): Promise<UnpackedPackage> {
  // Folders are named by content hash: one that exists was unpacked from these bytes already.
  if (await isInstalled(dest)) return { files: 0, bytes: 0, reused: true }
  const totals = await checkPackage(tarball, limits)

  await mkdir(dirname(dest), { recursive: true })
  const temp = `${dest}.tmp-${randomBytes(6).toString('hex')}`
  try {
    await mkdir(temp)
    await extract(tarball, temp, limits)
    await rename(temp, dest).catch(async (err: unknown) => {
      // Another install of the same package renamed its copy first: as good as ours.
      if (!(await isInstalled(dest))) throw err
    })
  } finally {
    // Only left over on failure or when the other install won. Retries because
    // tar may still finish a write it had started when it was aborted.
    await rm(temp, { recursive: true, force: true, maxRetries: 3 })
  }
  return totals
}

/** Reads the whole archive once, writing nothing, and refuses it at the first bad entry. */
async function checkPackage(tarball: string, limits: UnpackLimits): Promise<UnpackedPackage> {
  const checker = new PackageChecker(limits)
  const parser = new tar.Parser({ strict: true, onReadEntry: (entry) => entry.resume() })
  watchEntries(parser, checker)
  let sawEndMarker = false
  parser.on('eof', () => {
    sawEndMarker = true
  })

  await readArchive(tarball, parser).catch((err: unknown) => {
    // Errors opening or reading the file are ours, not the package's.
    if (err instanceof PackageError || (err instanceof Error && 'syscall' in err)) throw err
    throw invalid(`package is not a valid tarball: ${messageOf(err)}`, err)
  })
  if (checker.entries === 0) throw invalid('package is an empty archive')
  // tar stops quietly when a plain archive is cut between two entries.
  if (!sawEndMarker) throw invalid('package is truncated: no end-of-archive marker')
  return { files: checker.entries, bytes: checker.bytes }
}

/**
 * Extracts into `temp`. Every entry goes past a fresh checker again, so a file that
 * changed since it was checked cannot slip anything through, and the bytes actually
 * written are counted too.
 */
async function extract(tarball: string, temp: string, limits: UnpackLimits): Promise<void> {
  let written = 0
  const unpack = new tar.Unpack({
    cwd: temp,
    strict: true,
    // tar preserves the archive's owners by default when running as root.
    preserveOwner: false,
    onReadEntry: (entry) => {
      if (entry.mode !== undefined) entry.mode &= MODE_MASK
    },
    // tar only pipes file contents through this stream, whatever its declared type.
    transform: () =>
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          written += chunk.length
          if (written <= limits.maxBytes) return done(null, chunk)
          unpack.abort(tooLarge(`package content exceeds ${limits.maxBytes} bytes`))
          done()
        },
      }) as unknown as tar.ReadEntry,
  })
  watchEntries(unpack, new PackageChecker(limits))
  await readArchive(tarball, unpack).catch((err: unknown) => {
    // The checker refuses the layouts that make these; should one slip through, it is the package's fault.
    if (PACKAGE_LAYOUT_ERRORS.has((err as NodeJS.ErrnoException).code ?? ''))
      throw invalid(`package cannot be unpacked: ${messageOf(err)}`, err)
    throw err
  })
}

/** What extracting a package whose entries clash (a file over a folder, a folder under a file) fails with. */
const PACKAGE_LAYOUT_ERRORS: ReadonlySet<string> = new Set(['ENOTEMPTY', 'ENOTDIR', 'EEXIST', 'EISDIR'])

/** Streams the archive file into a tar parser until it has seen the end, or fails. */
async function readArchive(tarball: string, parser: tar.Parser): Promise<void> {
  const input = createReadStream(tarball)
  try {
    await new Promise<void>((resolve, reject) => {
      input.on('error', reject)
      parser.on('error', reject)
      parser.on('close', resolve)
      input.pipe(parser)
    })
  } finally {
    input.destroy()
  }
}

/** Runs every entry past `checker` before tar acts on it, aborting at the first refusal. */
function watchEntries(parser: tar.Parser, checker: PackageChecker): void {
  const admit = (entry: tar.ReadEntry): boolean => {
    try {
      checker.admit(entry)
      return true
    } catch (err) {
      parser.abort(err as Error)
      return false
    }
  }
  // The filter sees each entry before tar writes or lists it; when reading, entries are ReadEntry.
  parser.filter = (_path, entry) => admit(entry as tar.ReadEntry)
  // Entries tar skips by itself (unknown types, oversized pax headers) never reach the filter.
  parser.on('ignoredEntry', admit)
}

/**
 * Checks entries in archive order and remembers what later entries are checked
 * against. A folder never shares a path with a link or a file, whatever the order:
 * nothing is ever written through a link or into a file, and neither replaces a
 * folder (tar would fail half-way, unable to remove a folder that has content).
 */
class PackageChecker {
  entries = 0
  bytes = 0
  private readonly folders = new Set<string>()
  private readonly links = new Set<string>()
  private readonly files = new Set<string>()

  constructor(private readonly limits: UnpackLimits) {}

  /** Throws a PackageError when `entry` may not be unpacked. */
  admit(entry: tar.ReadEntry): void {
    const name = `package entry "${entry.path}"`
    if (++this.entries > this.limits.maxFiles) {
      throw tooLarge(`package has more than ${this.limits.maxFiles} entries`)
    }
    if (!ALLOWED_TYPES.has(entry.type)) {
      throw unsafe(`${name} is of type ${entry.type}; only files, folders and symbolic links are allowed`)
    }
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) {
      throw invalid(`${name} has an invalid size ${entry.size}`)
    }
    this.bytes += entry.size
    if (this.bytes > this.limits.maxBytes) {
      throw tooLarge(`package content exceeds ${this.limits.maxBytes} bytes at ${name}`)
    }

    const segments = relativeSegments(entry.path)
    if (!segments) throw unsafe(`${name} is absolute, Windows-style or climbs out with ".."`)
    const path = segments.join('/')
    if (path === '' && entry.type !== 'Directory') throw unsafe(`${name} replaces the package folder`)

    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/')
      if (this.links.has(parent)) throw unsafe(`${name} goes through the symbolic link "${parent}"`)
      if (this.files.has(parent)) throw unsafe(`${name} is inside "${parent}", which is a file`)
      this.folders.add(parent)
    }
    if (entry.type === 'Directory') {
      if (this.links.has(path)) throw unsafe(`${name} is both a folder and a symbolic link`)
      if (this.files.has(path)) throw unsafe(`${name} is both a folder and a file`)
      this.folders.add(path)
    } else if (entry.type === 'SymbolicLink') {
      if (this.folders.has(path)) throw unsafe(`${name} is both a folder and a symbolic link`)
      if (!linkStaysInside(segments, entry.linkpath ?? '')) {
        throw unsafe(`${name} is a symbolic link to "${entry.linkpath}", outside the package`)
      }
      if (linkStallsTar(segments, entry.linkpath ?? '')) {
        throw unsafe(
          `${name} is a symbolic link to "${entry.linkpath}", a folder of its own path or below it`,
        )
      }
      this.links.add(path)
    } else {
      if (this.folders.has(path)) throw unsafe(`${name} is both a folder and a file`)
      this.files.add(path)
    }
  }
}

/** The segments of a relative path, or undefined when it is absolute, Windows-style or has `..`. */
function relativeSegments(path: string): string[] | undefined {
  if (path.startsWith('/') || path.includes('\\') || DRIVE_LETTER.test(path)) return undefined
  const segments = path.split('/').filter((s) => s !== '' && s !== '.')
  return segments.includes('..') ? undefined : segments
}

/**
 * Whether a link at `linkSegments` pointing to `target` resolves inside the package.
 * `..` may only lead the target: it then climbs the link's own folders, which are real
 * folders because nothing lives under a link. A `..` after a name could climb from
 * wherever another link leads (`x -> sub/up/..` with `sub/up -> ..` escapes), so it is
 * refused rather than resolved.
 */
function linkStaysInside(linkSegments: string[], target: string): boolean {
  if (target.startsWith('/') || target.includes('\\') || DRIVE_LETTER.test(target)) return false
  const parts = target.split('/').filter((s) => s !== '' && s !== '.')
  const firstName = parts.findIndex((s) => s !== '..')
  const climbs = firstName === -1 ? parts.length : firstName
  if (parts.slice(climbs).includes('..')) return false
  return climbs <= linkSegments.length - 1
}

/**
 * Whether tar (7.x) would wait forever on this link instead of unpacking it: it
 * reserves a link's own path and its target text together (case-folded and
 * normalised, as below) and never starts an entry when one of those paths is a
 * folder of the other (`b -> b/a`, `a/b -> A`), so the install would hang.
 */
function linkStallsTar(linkSegments: string[], target: string): boolean {
  const fold = (s: string) => s.normalize('NFD').toLocaleLowerCase('en').toLocaleUpperCase('en')
  const own = linkSegments.map(fold)
  const to = posix
    .normalize(target)
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .map(fold)
  const isFolderOf = (outer: string[], inner: string[]) =>
    outer.length > 0 && outer.length < inner.length && outer.every((s, i) => s === inner[i])
  return isFolderOf(own, to) || isFolderOf(to, own)
}

/** Whether `dest` holds a completed install; anything there but a folder is an error. */
async function isInstalled(dest: string): Promise<boolean> {
  const stats = await lstat(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (!stats) return false
  if (!stats.isDirectory()) {
    throw new UnpackDestinationError(dest)
  }
  return true
}

function unsafe(message: string): PackageError {
  return new PackageUnsafeError(message)
}

function invalid(message: string, cause?: unknown): PackageError {
  return new PackageInvalidError(message, { cause })
}

function tooLarge(message: string): PackageError {
  return new PackageTooLargeError(message)
}
