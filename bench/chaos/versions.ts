/**
 * Publishable versions of the Educa sample for chaos trials: the two builds of
 * examples/educa, copies of them with a fresh padding resource (a new blob every
 * node must download), and copies with freshly packed components holding a few
 * thousand small files (a new package every node must unpack).
 */
import { randomBytes } from 'node:crypto'
import { copyFile, cp, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as tar from 'tar'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { REPO_ROOT } from './cluster.js'

export type BaseVersion = '1.0' | '1.1'

/** Files in each freshly packed component: enough that unpacking takes a visible while. */
export const INSTALL_FILES = 400

export class VersionFactory {
  private builds: Record<BaseVersion, string> | undefined
  private readonly stage: string
  private readonly out: string

  constructor(
    private readonly dir: string,
    private readonly keyFile: string,
  ) {
    this.stage = join(dir, 'stage')
    this.out = join(dir, 'versions')
  }

  /** Builds educa 1.0 and 1.1 and the shared part of the freshly packed components. */
  async init(): Promise<void> {
    const build = (await import(join(REPO_ROOT, 'examples', 'educa', 'build.mjs'))) as {
      buildEduca(out: string): Promise<Record<BaseVersion, string>>
    }
    this.builds = await build.buildEduca(join(this.dir, 'build'))
    for (const component of ['web', 'catalog']) {
      const root = join(this.stage, component)
      await copyFile(
        join(REPO_ROOT, 'examples', 'educa', 'components', component, 'server.mjs'),
        join(await mkdirp(root), 'server.mjs'),
      )
      // A node_modules-like tree: many small files in a few dozen folders.
      for (let i = 0; i < INSTALL_FILES; i++) {
        const folder = await mkdirp(join(root, 'node_modules', `pkg-${i % 50}`, 'lib'))
        await writeFile(
          join(folder, `f${i}.js`),
          `module.exports = '${randomBytes(200).toString('base64')}'\n`,
        )
      }
    }
    await mkdir(this.out, { recursive: true })
  }

  base(version: BaseVersion): string {
    if (this.builds == null) throw new Error('VersionFactory.init() first')
    return this.builds[version]
  }

  /** `base` plus `static/padding.bin` of `bytes` fresh random bytes: a new blob nobody holds. */
  async padded(version: string, base: BaseVersion, bytes: number): Promise<string> {
    const dir = join(this.out, version)
    await rm(dir, { recursive: true, force: true })
    await cp(this.base(base), dir, { recursive: true })
    await mkdir(join(dir, 'static'), { recursive: true })
    await writeFile(join(dir, 'static', 'padding.bin'), randomBytes(bytes))
    return dir
  }

  /**
   * `base` with both components packed afresh: the Educa server, a release file, a
   * nonce (so the package hash, and with it the install folder, is new) and the
   * shared tree of small files.
   */
  async freshInstall(version: string, base: BaseVersion): Promise<string> {
    const dir = join(this.out, version)
    await rm(dir, { recursive: true, force: true })
    await cp(this.base(base), dir, { recursive: true })
    for (const component of ['web', 'catalog']) {
      const root = join(this.stage, component)
      await writeFile(join(root, 'release.json'), `${JSON.stringify({ version, features: [] })}\n`)
      await writeFile(join(root, 'nonce.txt'), randomBytes(16).toString('hex'))
      await tar.c({ gzip: true, cwd: root, portable: true, file: join(dir, `${component}.tgz`) }, [
        'server.mjs',
        'release.json',
        'nonce.txt',
        'node_modules',
      ])
    }
    return dir
  }

  /** Publishes `dir` as educa@`version` through `api` (the CLI's own publish code). */
  async publish(api: string, dir: string, version: string, chunkSize: number): Promise<void> {
    await publish(new ApiClient(api), {
      dir,
      name: 'educa',
      version,
      keyFile: this.keyFile,
      chunkSize,
      progress: false,
    })
  }
}

async function mkdirp(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  return dir
}
