import type { StoreDb } from './blob-store.js'
import { VersionExistsError } from './errors.js'
import { contentDigest, distributionId, manifestDigest, type SignedManifest } from './manifest.js'

/** A distribution version this node knows, with its verified, signed manifest. */
export interface CatalogueEntry {
  id: string
  signed: SignedManifest
  digest: string
  content: string
  /** Local time this node first accepted it (ISO). */
  receivedAt: string
}

/**
 * Every distribution version this node has accepted, in level (`d:<name>@<version>`),
 * mirrored in memory. Versions are immutable: the same id with other content is refused.
 */
export class Catalogue {
  private readonly entries = new Map<string, CatalogueEntry>()
  /** Versions retention dropped: not fetched again when peers still list them. */
  private readonly retired = new Set<string>()

  constructor(private readonly db: StoreDb) {}

  async open(): Promise<void> {
    for await (const [, value] of this.db.iterator({ gte: 'd:', lt: 'd;' })) {
      const entry = JSON.parse(value) as CatalogueEntry
      this.entries.set(entry.id, entry)
    }
    for await (const key of this.db.keys({ gte: 'r:', lt: 'r;' })) this.retired.add(key.slice(2))
  }

  isRetired(id: string): boolean {
    return this.retired.has(id)
  }

  get(id: string): CatalogueEntry | undefined {
    return this.entries.get(id)
  }

  /** Every known version, grouped by name, each name's versions in publication order. */
  list(): CatalogueEntry[] {
    return [...this.entries.values()].sort(
      (a, b) => a.signed.manifest.name.localeCompare(b.signed.manifest.name) || byPublication(a, b),
    )
  }

  history(name: string): CatalogueEntry[] {
    return this.list().filter((e) => e.signed.manifest.name === name)
  }

  /** Adds a verified manifest: 'added', or 'same' when this exact content is already there. */
  async add(signed: SignedManifest): Promise<{ result: 'added' | 'same'; entry: CatalogueEntry }> {
    const id = distributionId(signed.manifest)
    const content = contentDigest(signed.manifest)
    const existing = this.entries.get(id)
    if (existing != null) {
      if (existing.content !== content) throw new VersionExistsError(id)
      return { result: 'same', entry: existing }
    }
    const entry: CatalogueEntry = {
      id,
      signed,
      digest: manifestDigest(signed.manifest),
      content,
      receivedAt: new Date().toISOString(),
    }
    // Publishing a retired version again brings it back.
    await this.db.batch([
      { type: 'put', key: `d:${id}`, value: JSON.stringify(entry) },
      { type: 'del', key: `r:${id}` },
    ])
    this.retired.delete(id)
    this.entries.set(id, entry)
    return { result: 'added', entry }
  }

  /** Drops a version for good (retention): its manifest goes, its id is remembered. */
  async retire(id: string): Promise<void> {
    this.entries.delete(id)
    this.retired.add(id)
    await this.db.batch([
      { type: 'del', key: `d:${id}` },
      { type: 'put', key: `r:${id}`, value: '1' },
    ])
  }
}

/** Publication order: the publisher's creation time, then the version string. */
export function byPublication(a: CatalogueEntry, b: CatalogueEntry): number {
  return (
    a.signed.manifest.createdAt.localeCompare(b.signed.manifest.createdAt) ||
    a.signed.manifest.version.localeCompare(b.signed.manifest.version, undefined, { numeric: true })
  )
}
