import type { LaunchedNode } from './provider.js'

interface RecordsDb {
  get(key: string): Promise<string | undefined>
  put(key: string, value: string): Promise<void>
  values(): AsyncIterable<string>
}

/**
 * The nodes this agent launched, by handle, kept durably: `shoal nodes` lists
 * those still launching (not members yet) and what became of each.
 */
export class LaunchRecords {
  private readonly cache = new Map<string, LaunchedNode>()

  constructor(private readonly db: RecordsDb) {}

  async open(): Promise<void> {
    for await (const value of this.db.values()) {
      const record = JSON.parse(value) as LaunchedNode
      this.cache.set(record.handle, record)
    }
  }

  list(): LaunchedNode[] {
    return [...this.cache.values()].sort((a, b) => a.launchedAt.localeCompare(b.launchedAt))
  }

  get(handle: string): LaunchedNode | undefined {
    return this.cache.get(handle)
  }

  async save(record: LaunchedNode): Promise<void> {
    this.cache.set(record.handle, record)
    await this.db.put(record.handle, JSON.stringify(record))
  }
}
