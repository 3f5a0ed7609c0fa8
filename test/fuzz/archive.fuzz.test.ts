import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_UNPACK_LIMITS, type UnpackLimits, unpackPackage } from '../../src/runtime/unpack.js'
import { type RawEntry, rawTar } from '../helpers/tarballs.js'
import { assertCoded, FUZZ_TIMEOUT_MS, FuzzTarget, outcomeAsync } from './harness.js'

/**
 * Component packages are tarballs from a publisher (signed, but a package is
 * checked as if it came from anyone). Whatever the bytes: unpackPackage either
 * installs the package inside `dest` (no link leading out, no setuid or
 * world-writable mode) or refuses it with ERR_PACKAGE_UNSAFE / _TOO_LARGE / _INVALID,
 * leaving `dest` absent; in neither case is anything written outside `dest`.
 */
const target = new FuzzTarget('archive')
const CODES = ['ERR_PACKAGE_UNSAFE', 'ERR_PACKAGE_TOO_LARGE', 'ERR_PACKAGE_INVALID']

/**
 * Each case runs in `root/case/`: the archive at `archive.tar`, the package at
 * `w/x/out/pkg` (four levels down, so `..` escapes land in the case folder where
 * they can be seen), and `@CASE@` in generated paths stands for the case folder.
 */
let root: string
let caseDir: string
let dest: string
const SKELETON = ['archive.tar', 'w', join('w', 'x'), join('w', 'x', 'out')]
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shoal-fuzz-archive-'))
  caseDir = join(root, 'case')
  dest = join(caseDir, 'w', 'x', 'out', 'pkg')
  await mkdir(dirname(dest), { recursive: true })
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

/** `arb` once in `n` cases, else undefined. */
const rarely = <T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb })

const benignSegment = fc.constantFrom('a', 'b', 'bin', 'lib', 'x.js', 'run', 'current')
const hostileSegment = fc.oneof(
  fc.constantFrom('..', '.', '', '@CASE@', 'C:', 'a\\..\\..', 'pkg', 'out'),
  fc.string({ minLength: 1, maxLength: 8 }),
  fc.integer({ min: 90, max: 300 }).map((n) => 'n'.repeat(n)),
)
const path = fc.oneof(
  { weight: 7, arbitrary: fc.array(benignSegment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.oneof(benignSegment, hostileSegment), { minLength: 1, maxLength: 5 })
      .map((s) => s.join('/')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '/@CASE@/escaped',
      '@CASE@/escaped',
      '../../../escaped',
      'a/../../../../escaped',
      './',
      '/',
      '.',
    ),
  },
)
const linkpath = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('a', 'bin', 'lib/x.js', '../a', '../../a', 'current', '.') },
  { weight: 2, arbitrary: path },
  { weight: 1, arbitrary: fc.constantFrom('..', '../..', '/etc', '/@CASE@', 'a/../..', 'a/../../..') },
)
const entry: fc.Arbitrary<RawEntry> = fc
  .record({
    path,
    type: fc.oneof(
      { weight: 12, arbitrary: fc.constant<NonNullable<RawEntry['type']>>('File') },
      { weight: 4, arbitrary: fc.constant<NonNullable<RawEntry['type']>>('Directory') },
      { weight: 3, arbitrary: fc.constant<NonNullable<RawEntry['type']>>('SymbolicLink') },
      {
        weight: 2,
        arbitrary: fc.constantFrom<NonNullable<RawEntry['type']>>(
          'Link',
          'OldFile',
          'ContiguousFile',
          'CharacterDevice',
          'BlockDevice',
          'FIFO',
          'ExtendedHeader',
          'GlobalExtendedHeader',
        ),
      },
    ),
    body: fc.oneof(
      { weight: 5, arbitrary: fc.string({ maxLength: 40 }) },
      { weight: 1, arbitrary: fc.constantFrom('12 path=../../escaped\n', '30 linkpath=/@CASE@/escaped\n') },
    ),
    size: rarely(
      fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constantFrom(2 ** 31, 2 ** 33, 8 ** 11 - 1)),
      7,
    ),
    linkpath,
    mode: fc.constantFrom(0o644, 0o755, 0o777, 0o4755, 0o6777, 0o1777, 0o7777),
    typeflag: rarely(fc.constantFrom('Z', 'V', 'M', 'g', 'x', '7', 'L', 'K', '\u0000', '1', '2', '3'), 20),
  })
  .map(({ size, typeflag, linkpath: to, ...rest }) => ({
    ...rest,
    ...(size == null ? {} : { size }),
    ...(typeflag == null ? {} : { typeflag }),
    ...(rest.type === 'SymbolicLink' || rest.type === 'Link' ? { linkpath: to } : {}),
  }))

/** A tarball with plain, lying and exotic entries; plain or gzip'd, mostly whole. */
const crafted = fc.record({
  entries: fc.array(entry, { minLength: 1, maxLength: 8 }),
  endMarker: fc.oneof(
    { weight: 9, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  gzip: fc.boolean(),
  cut: rarely(fc.nat(), 10),
})

/** A valid package (folders, an executable, an inside link) with bytes flipped, cut or appended. */
const good = rawTar([
  { path: 'bin/', type: 'Directory' },
  { path: 'bin/run', body: '#!/bin/sh\necho hi\n', mode: 0o755 },
  { path: 'lib/a/b.js', body: 'export {}\n' },
  { path: 'current', type: 'SymbolicLink', linkpath: 'lib' },
])
const damaged = fc.oneof(
  fc
    .record({
      gzip: fc.boolean(),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    })
    .map(({ gzip, flips }) => {
      const bytes = Buffer.from(gzip ? gzipSync(good) : good)
      for (const [at, value] of flips) bytes[at % bytes.length] = value
      return bytes
    }),
  fc.tuple(fc.boolean(), fc.nat()).map(([gzip, cut]) => {
    const bytes = gzip ? gzipSync(good) : good
    return bytes.subarray(0, cut % bytes.length)
  }),
  fc
    .uint8Array({ maxLength: 3000 })
    .map((junk) => Buffer.concat([good.subarray(0, good.length - 1024), junk])),
  fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 2048 }).map((b) => gzipSync(b)),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), b])),
)

const limits: fc.Arbitrary<UnpackLimits> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(DEFAULT_UNPACK_LIMITS) },
  {
    weight: 1,
    arbitrary: fc.record({
      maxBytes: fc.integer({ min: 0, max: 200 }),
      maxFiles: fc.integer({ min: 0, max: 6 }),
    }),
  },
)

/** Every path under `dir` (links not followed), relative to it, with its kind. */
async function walk(dir: string): Promise<Array<{ path: string; kind: string; mode: number }>> {
  const found: Array<{ path: string; kind: string; mode: number }> = []
  const pending = [dir]
  while (pending.length > 0) {
    const folder = pending.pop()!
    for (const name of await readdir(folder)) {
      const full = join(folder, name)
      const stats = await lstat(full)
      const kind = stats.isDirectory()
        ? 'dir'
        : stats.isSymbolicLink()
          ? 'link'
          : stats.isFile()
            ? 'file'
            : 'other'
      found.push({ path: relative(dir, full), kind, mode: stats.mode })
      if (kind === 'dir') pending.push(full)
    }
  }
  return found
}

/** A case taking this long hangs (a tiny archive unpacks in milliseconds). */
const HANG_MS = 10_000

/** Unpacks `bytes` in the case folder, checks the promises above and empties it again. */
async function unpackCase(bytes: Uint8Array, limit: UnpackLimits): Promise<void> {
  const archive = join(caseDir, 'archive.tar')
  await writeFile(archive, bytes)
  let code = 'accepted'
  try {
    let timer: NodeJS.Timeout | undefined
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`unpackPackage did not finish in ${HANG_MS} ms`)), HANG_MS)
    })
    const result = await outcomeAsync(
      () =>
        Promise.race([
          unpackPackage(archive, dest, limit).catch((err: unknown) => {
            code = (err as { code?: string }).code ?? 'uncoded'
            throw err
          }),
          hang,
        ]).finally(() => clearTimeout(timer)),
      CODES,
    )
    target.tally(code)
    const all = await walk(caseDir)
    const outside = all.filter(
      (f) => !SKELETON.includes(f.path) && !f.path.startsWith(join('w', 'x', 'out', 'pkg')),
    )
    expect(outside, 'nothing is written outside dest').toEqual([])
    expect(await readdir(root), 'nothing is written beside the case folder').toEqual(['case'])
    if (result == null) {
      expect(await readdir(dirname(dest)), 'a refused package leaves dest absent').toEqual([])
      return
    }
    expect(result.value.files).toBeGreaterThan(0)
    for (const f of await walk(dest)) {
      expect(f.kind, `${f.path} is a file, folder or link`).not.toBe('other')
      // Links have no mode of their own on Linux (always 0777).
      if (f.kind !== 'link') expect(f.mode & 0o7022, `${f.path} mode ${f.mode.toString(8)}`).toBe(0)
      else {
        const link = join(dest, f.path)
        const to = resolve(dirname(link), await readlink(link))
        expect(to === dest || to.startsWith(dest + sep), `${f.path} -> ${to} stays inside`).toBe(true)
      }
    }
  } finally {
    // Back to the skeleton for the next case, whatever a failing one left behind (fast-check replays while shrinking).
    for (const name of await readdir(root))
      if (name !== 'case') await rm(join(root, name), { recursive: true, force: true })
    for (const f of await walk(caseDir))
      if (!SKELETON.includes(f.path)) await rm(join(caseDir, f.path), { recursive: true, force: true })
  }
}

describe('archive fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('unpackPackage: crafted tarballs (traversal, links, devices, lying sizes, pax) install inside dest or are refused', async () => {
    await target.check(
      fc.asyncProperty(crafted, limits, async ({ entries, endMarker, gzip, cut }, limit) => {
        const placed = entries.map((e) => ({
          ...e,
          path: e.path.replaceAll('@CASE@', caseDir),
          ...(e.linkpath == null ? {} : { linkpath: e.linkpath.replaceAll('@CASE@', caseDir) }),
          ...(e.body == null ? {} : { body: e.body.replaceAll('@CASE@', caseDir) }),
        }))
        let bytes: Buffer
        try {
          bytes = rawTar(placed, { endMarker })
        } catch {
          return // tar cannot even encode such a header; nothing to unpack
        }
        if (gzip) bytes = gzipSync(bytes)
        if (cut != null) bytes = bytes.subarray(0, cut % (bytes.length + 1))
        await unpackCase(bytes, limit)
      }),
      0.5,
    )
  })

  it('unpackPackage: damaged and random bytes are refused as invalid or unpacked inside dest', async () => {
    await target.check(
      fc.asyncProperty(damaged, limits, (bytes, limit) => unpackCase(bytes, limit)),
      0.5,
    )
  })

  describe('regressions (counterexamples the fuzzer found)', () => {
    const refusedAs = async (entries: RawEntry[], code: string) => {
      await writeFile(join(caseDir, 'archive.tar'), rawTar(entries))
      const err = await unpackPackage(join(caseDir, 'archive.tar'), dest).catch((e: unknown) => e)
      assertCoded(err, [code])
      expect(await readdir(dirname(dest))).toEqual([])
    }

    it('refuses a file over a folder written before (was ENOTEMPTY from tar, uncoded, mid-extraction)', async () => {
      await refusedAs(
        [
          { path: 'a/a', body: '' },
          { path: 'a', body: 'x' },
        ],
        'ERR_PACKAGE_UNSAFE',
      )
    })

    it('refuses a link to a folder of its own path or below it (tar 7 waited forever: the install hung)', async () => {
      await refusedAs([{ path: 'b', type: 'SymbolicLink', linkpath: 'b/a' }], 'ERR_PACKAGE_UNSAFE')
      await refusedAs([{ path: 'a/b', type: 'SymbolicLink', linkpath: 'a' }], 'ERR_PACKAGE_UNSAFE')
      // tar compares case-folded paths.
      await refusedAs([{ path: 'B', type: 'SymbolicLink', linkpath: 'b/x' }], 'ERR_PACKAGE_UNSAFE')
    })

    it('refuses a folder or a file under a file written before', async () => {
      await refusedAs(
        [
          { path: 'a', body: 'x' },
          { path: 'a/b', body: 'y' },
        ],
        'ERR_PACKAGE_UNSAFE',
      )
      await refusedAs(
        [
          { path: 'a', body: 'x' },
          { path: 'a/', type: 'Directory' },
        ],
        'ERR_PACKAGE_UNSAFE',
      )
    })
  })
})
