/**
 * Latency of one Raft storage write: a synced 1-entry persist() against an
 * unsynced one, and against the disk's own limit for the same bytes (open,
 * write, fsync, close a file; and an append + fdatasync on an open file, which
 * is what LevelDB's log does). Modes take turns in rounds so drift in the host's
 * load touches them alike.
 *
 * Standalone (not a suite of `npm run bench`):
 *   node --experimental-transform-types --no-warnings --import ./test/helpers/ts-hooks.mjs bench/raft-storage.ts
 * or after `npm run build`: node dist/bench/raft-storage.js
 * Prints the report as JSON and writes bench/results/raft-storage.json.
 */
import { mkdir, open, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { serialize } from 'node:v8'
import { Level } from 'level'
import { RaftStorage } from '../src/manager/consensus/raft-storage.js'
import { type Entry, genesisSnapshot, type HardState, type PersistBatch } from '../src/manager/raft/index.js'
import { machine, round, source, TempDirs } from './util.js'

/** Writes per mode and per round, rounds, and writes per mode before measuring. */
const PER_ROUND = 100
const ROUNDS = 10
const WARM_UP = 50
/** A small command: a few fields of cluster state. */
const PAYLOAD_BYTES = 128

type Mode = 'persistSynced' | 'persistUnsynced' | 'fileWriteFsync' | 'appendFdatasync'
const MODES: readonly Mode[] = ['persistSynced', 'persistUnsynced', 'fileWriteFsync', 'appendFdatasync']

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

export async function runRaftStorage(): Promise<{ report: Record<string, unknown>; text: string }> {
  const started = performance.now()
  const dirs = new TempDirs()
  const dir = await dirs.make('shoal-bench-raft-storage-')
  const db = new Level<string, string>(join(dir, 'state'), { valueEncoding: 'utf8' })
  // As AgentState opens the agent's database.
  await db.open({ cacheSize: 1024 * 1024, writeBufferSize: 1024 * 1024 })
  const storage = new RaftStorage(db.sublevel<string, Uint8Array>('raft', { valueEncoding: 'view' }))
  await storage.init(genesisSnapshot(['a', 'b', 'c']))
  const file = await open(join(dir, 'append.log'), 'a')

  let index = 0
  const nextBatch = (sync: boolean): PersistBatch => {
    index++
    const entry: Entry = {
      kind: 'command',
      index,
      term: 1,
      request: { client: 'bench', seq: index },
      data: new Uint8Array(PAYLOAD_BYTES).fill(index & 0xff),
    }
    const hardState: HardState = { term: 1, vote: 'a', commit: index - 1 }
    return { hardState, snapshot: null, truncateFrom: index, entries: [entry], sync }
  }
  // The bytes the store writes for such a batch: the entry's and the hard state's records.
  const sample = nextBatch(true)
  index = 0
  const bytes = Buffer.concat([serialize(sample.entries[0]), serialize(sample.hardState)])

  const once: Record<Mode, () => Promise<void>> = {
    persistSynced: () => storage.persist(nextBatch(true)),
    persistUnsynced: () => storage.persist(nextBatch(false)),
    fileWriteFsync: async () => {
      const handle = await open(join(dir, 'record.bin'), 'w')
      await handle.write(bytes)
      await handle.sync()
      await handle.close()
    },
    appendFdatasync: async () => {
      await file.write(bytes)
      await file.datasync()
    },
  }
  const samples: Record<Mode, number[]> = {
    persistSynced: [],
    persistUnsynced: [],
    fileWriteFsync: [],
    appendFdatasync: [],
  }
  for (const mode of MODES) for (let i = 0; i < WARM_UP; i++) await once[mode]()
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of MODES) {
      for (let i = 0; i < PER_ROUND; i++) {
        const t = performance.now()
        await once[mode]()
        samples[mode].push(performance.now() - t)
      }
    }
  }
  await file.close()
  await db.close()
  await dirs.removeAll()

  const results = Object.fromEntries(
    MODES.map((mode) => {
      const sorted = [...samples[mode]].sort((a, b) => a - b)
      return [
        mode,
        {
          writes: sorted.length,
          p50Ms: round(quantile(sorted, 0.5), 3),
          p99Ms: round(quantile(sorted, 0.99), 3),
          maxMs: round(sorted.at(-1) ?? Number.NaN, 3),
        },
      ]
    }),
  ) as Record<Mode, { writes: number; p50Ms: number; p99Ms: number; maxMs: number }>
  const report = {
    suite: 'raft-storage',
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: machine(),
    source: source(),
    settings: {
      perRound: PER_ROUND,
      rounds: ROUNDS,
      warmUp: WARM_UP,
      payloadBytes: PAYLOAD_BYTES,
      recordBytes: bytes.length,
    },
    results,
  }
  const text = MODES.map(
    (mode) => `${mode.padEnd(16)} p50 ${results[mode].p50Ms} ms  p99 ${results[mode].p99Ms} ms`,
  ).join('\n')
  return { report, text }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === import.meta.filename) {
  const { report } = await runRaftStorage()
  // From bench/ (run as TypeScript) or dist/bench/ (built), the results folder is the repository's.
  const root = resolve(
    import.meta.dirname,
    import.meta.dirname.endsWith(join('dist', 'bench')) ? '../..' : '..',
  )
  const results = join(root, 'bench/results')
  await mkdir(results, { recursive: true })
  await writeFile(join(results, 'raft-storage.json'), `${JSON.stringify(report, null, 2)}\n`)
  console.log(JSON.stringify(report, null, 2))
}
