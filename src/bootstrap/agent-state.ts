import { Level } from 'level'
import type { IncarnationStore } from '../membership/index.js'
import { DataDirInUseError } from '../shared/index.js'

/**
 * The agent's durable state in one `level` database; each concern gets its own
 * sublevel and a small store in front of it.
 */
export class AgentState {
  private readonly db: Level<string, string>
  private closed = false
  private readonly openOptions: { cacheSize: number; writeBufferSize: number }

  constructor(
    private readonly location: string,
    private readonly dataDir: string,
  ) {
    // Small caches: the state is a few keys per distribution and blob, not a database workload.
    this.db = new Level<string, string>(location, { valueEncoding: 'utf8' })
    this.openOptions = { cacheSize: 1024 * 1024, writeBufferSize: 1024 * 1024 }
  }

  async open(): Promise<void> {
    try {
      await this.db.open(this.openOptions)
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if ((err as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN' && cause?.code === 'LEVEL_LOCKED') {
        throw new DataDirInUseError(this.dataDir, { cause: err })
      }
      throw err
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.db.close()
  }

  /** The membership incarnation, kept so a restarted node announces a higher one. */
  incarnations(): IncarnationStore {
    const meta = this.db.sublevel<string, string>('membership', { valueEncoding: 'utf8' })
    return {
      load: async () => {
        const value = await meta.get('incarnation')
        return value == null ? null : Number(value)
      },
      save: (incarnation) => meta.put('incarnation', String(incarnation)),
    }
  }

  /** A namespace of the database for one subsystem's store. */
  sublevel(name: string) {
    return this.db.sublevel<string, string>(name, { valueEncoding: 'utf8' })
  }

  /**
   * A namespace whose values are bytes (Uint8Array), for stores that encode their own
   * records (the Raft log). Its `batch(ops, { sync: true })` reaches LevelDB's synced
   * write: abstract-level's sublevel hands its options to the parent's batch, down to
   * classic-level (its typings just do not declare `sync` on a sublevel).
   */
  binarySublevel(name: string) {
    return this.db.sublevel<string, Uint8Array>(name, { valueEncoding: 'view' })
  }

  get path(): string {
    return this.location
  }
}
