import { randomBytes } from 'node:crypto'
import { mkdtemp, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NotFoundError } from '../shared/index.js'
import { ReleasePackError } from './errors.js'
import { findPackageRoot, packRelease, type ReleaseFile } from './release-pack.js'
import { signReleaseToken, verifyReleaseToken } from './release-url.js'

export interface ReleasesInit {
  /** Folder the tarball is cached in (`<data>/releases`); null: a private temporary folder, made on first use. */
  cacheDir: string | null
  /** The installed `shoal` package to serve; default: the one this code runs from. */
  packageRoot?: string
  /** ms a URL from `offer` stays valid (constants.ts: RELEASE_URL_TTL_MS). */
  urlTtlMs: number
  /** The clock URLs expire by (ms since the epoch); tests move it. */
  now?: () => number
}

/** What a launched node is told: where to download this agent's release, and the hash to check. */
export interface ReleaseOffer {
  url: string
  sha256: string
  version: string
  /** File name to save it under (`shoal-<version>.tgz`). */
  name: string
  /** ms since the epoch. */
  expiresAt: number
}

/**
 * The Shoal release this agent runs, handed to nodes it launches: the npm registry
 * has no `shoal` package, so a new node downloads the launcher's own, packed from
 * its installed package root, over the launcher's API (`GET /releases/<token>`).
 * A URL grants that one tarball until it expires; it is signed (HMAC-SHA256) with
 * a key made when the agent starts and never written anywhere, so URLs die with
 * the agent process at the latest.
 */
export class Releases {
  private readonly key = randomBytes(32)
  private readonly now: () => number
  private packing: Promise<ReleaseFile> | undefined

  constructor(private readonly init: ReleasesInit) {
    this.now = init.now ?? Date.now
  }

  /** This agent's release: packed on first use (or found in the cache), then kept. */
  current(): Promise<ReleaseFile> {
    this.packing ??= this.pack().catch((err: unknown) => {
      // The next launch tries again (after a build, say).
      this.packing = undefined
      throw err
    })
    return this.packing
  }

  /** A URL under `baseUrl` (this agent's API as the new node reaches it) for the release. */
  async offer(baseUrl: string): Promise<ReleaseOffer> {
    const release = await this.current()
    const expiresAt = this.now() + this.init.urlTtlMs
    const token = signReleaseToken(this.key, release.sha256, expiresAt)
    return {
      url: `${baseUrl.replace(/\/+$/, '')}/releases/${token}`,
      sha256: release.sha256,
      version: release.version,
      name: release.name,
      expiresAt: Math.floor(expiresAt / 1000) * 1000,
    }
  }

  /**
   * The file a URL's token grants. Throws ERR_RELEASE_URL_SIGNATURE (not signed by
   * this agent), ERR_RELEASE_URL_EXPIRED, or ERR_NOT_FOUND (no longer served here).
   */
  async open(token: string): Promise<ReleaseFile> {
    const sha256 = verifyReleaseToken(this.key, token, this.now())
    const release = this.packing == null ? null : await this.packing.catch(() => null)
    const present =
      release == null
        ? false
        : await stat(release.path).then(
            (s) => s.isFile(),
            () => false,
          )
    // Removed from the cache behind our back: the next launch packs it again.
    if (release != null && !present) this.packing = undefined
    if (release == null || release.sha256 !== sha256 || !present)
      throw new NotFoundError(
        `this agent no longer serves release sha256:${sha256.slice(0, 12)}…; launch the node again`,
      )
    return release
  }

  private async pack(): Promise<ReleaseFile> {
    const root = this.init.packageRoot ?? findPackageRoot()
    if (root == null) throw new ReleasePackError('no package.json named "shoal" above this module')
    const dir = this.init.cacheDir ?? (await mkdtemp(join(tmpdir(), 'shoal-release-')))
    return packRelease(root, dir)
  }
}
