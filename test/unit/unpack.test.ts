import { execFileSync } from 'node:child_process'
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import * as tar from 'tar'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { httpStatusOf } from '../../src/api/index.js'
import { PackageError } from '../../src/runtime/errors.js'
import { type UnpackLimits, unpackPackage } from '../../src/runtime/unpack.js'
import { type RawEntry, rawTar } from '../helpers/tarballs.js'

/** A pax extended header record list: `<length> <key>=<value>\n`, the length counting itself. */
function pax(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([key, value]) => {
      const rest = ` ${key}=${value}\n`
      let length = rest.length + 1
      while (`${length}${rest}`.length !== length) length++
      return `${length}${rest}`
    })
    .join('')
}

describe('unpackPackage', () => {
  let dir: string
  let out: string
  let dest: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-unpack-'))
    out = join(dir, 'out')
    dest = join(out, 'pkg')
    await mkdir(out)
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const archive = async (name: string, data: Buffer) => {
    const file = join(dir, name)
    await writeFile(file, data)
    return file
  }

  /** bin/ bin/run lib/ lib/a/ lib/a/b.js README.md current -> lib: 7 entries, 34 bytes. */
  const goodPackage = async (gzip: boolean) => {
    const src = join(dir, 'src')
    await mkdir(join(src, 'bin'), { recursive: true })
    await mkdir(join(src, 'lib', 'a'), { recursive: true })
    await writeFile(join(src, 'bin', 'run'), '#!/bin/sh\necho hi\n')
    await chmod(join(src, 'bin', 'run'), 0o755)
    await writeFile(join(src, 'lib', 'a', 'b.js'), 'export {}\n')
    await writeFile(join(src, 'README.md'), 'hello\n')
    await symlink('lib', join(src, 'current'))
    const file = join(dir, gzip ? 'good.tgz' : 'good.tar')
    await tar.create({ file, gzip, cwd: src, portable: true }, ['bin', 'lib', 'README.md', 'current'])
    return file
  }

  const expectUnpacked = async () => {
    expect(await readFile(join(dest, 'bin', 'run'), 'utf8')).toBe('#!/bin/sh\necho hi\n')
    expect(await readFile(join(dest, 'lib', 'a', 'b.js'), 'utf8')).toBe('export {}\n')
    expect(await readFile(join(dest, 'README.md'), 'utf8')).toBe('hello\n')
    expect((await stat(join(dest, 'bin', 'run'))).mode & 0o111).toBe(0o111)
    expect((await stat(join(dest, 'README.md'))).mode & 0o111).toBe(0)
    expect(await readlink(join(dest, 'current'))).toBe('lib')
    expect(await readFile(join(dest, 'current', 'a', 'b.js'), 'utf8')).toBe('export {}\n')
    expect(await readdir(out)).toEqual(['pkg'])
  }

  it('unpacks a gzip tarball with folders, an executable and a link inside', async () => {
    const file = await goodPackage(true)
    expect(await unpackPackage(file, dest)).toEqual({ files: 7, bytes: 34 })
    await expectUnpacked()
  })

  it('unpacks a plain tarball, and unpacking it again leaves the install alone', async () => {
    const file = await goodPackage(false)
    expect(await unpackPackage(file, dest)).toEqual({ files: 7, bytes: 34 })
    await writeFile(join(dest, 'marker'), 'still here')
    expect(await unpackPackage(file, dest)).toEqual({ files: 0, bytes: 0, reused: true })
    expect(await readFile(join(dest, 'marker'), 'utf8')).toBe('still here')
    await expectUnpacked()
  })

  it('lets concurrent installs of the same package both succeed', async () => {
    const file = await goodPackage(true)
    const results = await Promise.all([unpackPackage(file, dest), unpackPackage(file, dest)])
    expect(results).toEqual([
      { files: 7, bytes: 34 },
      { files: 7, bytes: 34 },
    ])
    await expectUnpacked()
  })

  it('reads long paths from pax headers, which do not count as entries', async () => {
    const long = `deep/${'n'.repeat(150)}`
    const tarball = await archive(
      'long.tar',
      rawTar([{ path: 'PaxHeader/short', type: 'ExtendedHeader', body: pax({ path: long }) }, file('short')]),
    )
    expect(await unpackPackage(tarball, dest)).toEqual({ files: 1, bytes: 1 })
    expect(await readFile(join(dest, long), 'utf8')).toBe('x')
  })

  it('creates the parent folder of dest', async () => {
    const file = await goodPackage(true)
    const deep = join(dir, 'a', 'b', 'pkg')
    await unpackPackage(file, deep)
    expect(await readFile(join(deep, 'README.md'), 'utf8')).toBe('hello\n')
  })

  it('drops setuid, setgid and world-write bits but keeps executable ones, and ignores owners', async () => {
    const file = await archive(
      'modes.tar',
      rawTar([
        { path: 'shared/', type: 'Directory', mode: 0o2777, uid: 4242 },
        { path: 'shared/suid', body: 'x', mode: 0o4777, uid: 4242 },
        { path: 'shared/plain', body: 'y', mode: 0o666, uid: 4242 },
      ]),
    )
    await unpackPackage(file, dest)
    const suid = await stat(join(dest, 'shared', 'suid'))
    expect(suid.mode & 0o7777).toBe(0o755)
    expect((await stat(join(dest, 'shared', 'plain'))).mode & 0o7777).toBe(0o644)
    expect((await stat(join(dest, 'shared'))).mode & 0o7022).toBe(0)
    // Only meaningful as root, where tar would otherwise chown to the archive's uid.
    expect(suid.uid).toBe(process.getuid?.())
  })

  it('refuses a dest that exists but is not a folder', async () => {
    const file = await goodPackage(true)
    await writeFile(dest, 'in the way')
    await expect(unpackPackage(file, dest)).rejects.toMatchObject({ code: 'ERR_UNPACK_DEST' })
    expect(await readFile(dest, 'utf8')).toBe('in the way')
  })

  const tiny: UnpackLimits = { maxBytes: 100, maxFiles: 2 }
  const file = (path: string, body = 'x'): RawEntry => ({ path, body })
  const link = (path: string, linkpath: string): RawEntry => ({ path, type: 'SymbolicLink', linkpath })
  const folder = (path: string): RawEntry => ({ path, type: 'Directory' })

  type Case = [name: string, data: () => Buffer, code: string, mentions?: string, limits?: UnpackLimits]
  const refused: Case[] = [
    ['an absolute path', () => rawTar([file('/etc/evil')]), 'ERR_PACKAGE_UNSAFE', '/etc/evil'],
    ['a Windows drive path', () => rawTar([file('C:\\evil')]), 'ERR_PACKAGE_UNSAFE', 'C:\\evil'],
    ['a Windows drive path with slashes', () => rawTar([file('C:/evil')]), 'ERR_PACKAGE_UNSAFE', 'C:/evil'],
    ['a backslash', () => rawTar([file('a\\..\\evil')]), 'ERR_PACKAGE_UNSAFE', 'a\\..\\evil'],
    ['../escape', () => rawTar([file('../escape')]), 'ERR_PACKAGE_UNSAFE', '../escape'],
    ['a/../../escape', () => rawTar([file('a/../../escape')]), 'ERR_PACKAGE_UNSAFE', 'a/../../escape'],
    [
      'a pax header renaming a file to ../escape',
      () =>
        rawTar([
          { path: 'PaxHeader/ok', type: 'ExtendedHeader', body: pax({ path: '../escape' }) },
          file('ok'),
        ]),
      'ERR_PACKAGE_UNSAFE',
      '../escape',
    ],
    ['a link to /etc/passwd', () => rawTar([link('passwd', '/etc/passwd')]), 'ERR_PACKAGE_UNSAFE', 'passwd'],
    ['a link climbing out', () => rawTar([link('a/l', '../../x')]), 'ERR_PACKAGE_UNSAFE', 'a/l'],
    [
      'a link climbing out through another link',
      () => rawTar([link('sub/up', '..'), link('x', 'sub/up/..')]),
      'ERR_PACKAGE_UNSAFE',
      '"x"',
    ],
    [
      'a hard link',
      () => rawTar([file('a'), { path: 'h', type: 'Link', linkpath: 'a' }]),
      'ERR_PACKAGE_UNSAFE',
      'h',
    ],
    [
      'a file written through a link to outside',
      () => rawTar([link('out', '/tmp'), file('out/evil')]),
      'ERR_PACKAGE_UNSAFE',
      'out',
    ],
    [
      'a file written through a link to a folder inside',
      () => rawTar([folder('sub/'), link('d', 'sub'), file('d/f')]),
      'ERR_PACKAGE_UNSAFE',
      'd/f',
    ],
    [
      'a link replacing a folder written before',
      () => rawTar([file('d/f'), link('d', 'sub')]),
      'ERR_PACKAGE_UNSAFE',
      '"d"',
    ],
    ['a link replacing the package folder', () => rawTar([link('./', 'x')]), 'ERR_PACKAGE_UNSAFE', './'],
    ['a FIFO', () => rawTar([{ path: 'fifo', type: 'FIFO' }]), 'ERR_PACKAGE_UNSAFE', 'fifo'],
    [
      'a character device',
      () => rawTar([{ path: 'tty', type: 'CharacterDevice' }]),
      'ERR_PACKAGE_UNSAFE',
      'tty',
    ],
    ['a block device', () => rawTar([{ path: 'sda', type: 'BlockDevice' }]), 'ERR_PACKAGE_UNSAFE', 'sda'],
    ['an unknown entry type', () => rawTar([{ path: 'odd', typeflag: 'Z' }]), 'ERR_PACKAGE_UNSAFE', 'odd'],
    ['too many files', () => rawTar([file('a'), file('b'), file('c')]), 'ERR_PACKAGE_TOO_LARGE', '2', tiny],
    [
      'too many bytes',
      () => rawTar([file('a', 'x'.repeat(60)), file('b', 'y'.repeat(60))]),
      'ERR_PACKAGE_TOO_LARGE',
      '100',
      tiny,
    ],
    [
      'a header claiming more than the limit',
      () => rawTar([{ path: 'big', size: 1_000_000, body: 'small' }], { endMarker: false }),
      'ERR_PACKAGE_TOO_LARGE',
      'big',
      tiny,
    ],
    [
      'a header claiming more than the archive holds',
      () => rawTar([{ path: 'big', size: 5000, body: 'small' }]),
      'ERR_PACKAGE_INVALID',
      'Truncated',
    ],
    ['garbage', () => Buffer.from('this is not a tarball at all '.repeat(40)), 'ERR_PACKAGE_INVALID'],
    [
      'garbage behind a gzip header',
      () => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(600, 7)]),
      'ERR_PACKAGE_INVALID',
    ],
    [
      'a plain tarball cut inside an entry',
      () => rawTar([file('a', 'x'.repeat(2000))]).subarray(0, 1024),
      'ERR_PACKAGE_INVALID',
    ],
    [
      'a plain tarball cut between entries',
      () => rawTar([file('a'), file('b')]).subarray(0, 1024),
      'ERR_PACKAGE_INVALID',
      'truncated',
    ],
    [
      'a gzip tarball cut short',
      () => {
        const whole = gzipSync(rawTar([file('a', 'some content'), file('b', 'more')]))
        return whole.subarray(0, whole.length - 20)
      },
      'ERR_PACKAGE_INVALID',
    ],
    ['an empty archive', () => Buffer.alloc(1024), 'ERR_PACKAGE_INVALID'],
    ['an empty gzip archive', () => gzipSync(Buffer.alloc(10240)), 'ERR_PACKAGE_INVALID'],
    ['an empty file', () => Buffer.alloc(0), 'ERR_PACKAGE_INVALID'],
    [
      'an archive holding only a pax header',
      () =>
        rawTar([{ path: 'pax_global_header', type: 'GlobalExtendedHeader', body: pax({ comment: 'x' }) }]),
      'ERR_PACKAGE_INVALID',
      'empty',
    ],
  ]

  it.each(refused)('refuses %s, writing nothing', async (_name, data, code, mentions, limits) => {
    const tarball = await archive('bad.tar', data())
    const refusal = unpackPackage(tarball, dest, limits)
    await expect(refusal).rejects.toBeInstanceOf(PackageError)
    await expect(refusal).rejects.toMatchObject({ code })
    expect(httpStatusOf(await refusal.catch((err: unknown) => err))).toBe(400)
    if (mentions) await expect(refusal).rejects.toThrow(mentions)
    expect(await readdir(out)).toEqual([])
  })

  it('refuses gzip archives of the malicious ones too', async () => {
    const tarball = await archive('bad.tgz', gzipSync(rawTar([file('ok'), link('l', '../x')])))
    await expect(unpackPackage(tarball, dest)).rejects.toMatchObject({ code: 'ERR_PACKAGE_UNSAFE' })
    expect(await readdir(out)).toEqual([])
  })

  it('checks entries again while extracting, should the archive change after the first pass', async () => {
    const fifo = join(dir, 'changing.tar')
    execFileSync('mkfifo', [fifo])
    const small = rawTar([file('a', 'x'.repeat(10))])
    const large = rawTar([file('a', 'x'.repeat(10)), file('b', 'y'.repeat(200))])
    // Each pass opens the FIFO anew and reads what the writer sends that time; the
    // second is sent once the temp folder shows that the first pass is over.
    const writer = (async () => {
      await writeFile(fifo, small)
      const deadline = Date.now() + 5000
      while (!(await readdir(out)).some((name) => name.startsWith('pkg.tmp-'))) {
        if (Date.now() > deadline) throw new Error('the extraction never started')
        await setTimeout(5)
      }
      await writeFile(fifo, large)
    })()
    await expect(unpackPackage(fifo, dest, { maxBytes: 100, maxFiles: 10 })).rejects.toMatchObject({
      code: 'ERR_PACKAGE_TOO_LARGE',
    })
    await writer
    expect(await readdir(out)).toEqual([])
  })

  it('leaves folders and links inside alone, as long as nothing is written through a link', async () => {
    const tarball = await archive(
      'links.tar',
      rawTar([
        folder('./'),
        folder('a/b/'),
        file('a/b/c.txt', 'c'),
        link('a/b/up', '../..'),
        link('a/b/sibling', '../b/c.txt'),
        link('self', '.'),
      ]),
    )
    expect(await unpackPackage(tarball, dest)).toEqual({ files: 6, bytes: 1 })
    expect(await readFile(join(dest, 'a', 'b', 'up', 'a', 'b', 'sibling'), 'utf8')).toBe('c')
    expect((await lstat(join(dest, 'self'))).isSymbolicLink()).toBe(true)
  })
})
