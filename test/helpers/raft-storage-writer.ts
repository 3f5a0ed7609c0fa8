/**
 * The crash test's writer (test/unit/raft-storage.test.ts), a child process:
 *   node --experimental-transform-types --import ./test/helpers/ts-hooks.mjs \
 *     test/helpers/raft-storage-writer.ts DIR SEED
 * Initialises a Raft store in DIR, then persists RaftBatches(SEED) one after the
 * other and prints the number of each batch once its persist() resolved, until
 * it is killed.
 */
import { Level } from 'level'
import { RaftStorage } from '../../src/manager/consensus/raft-storage.js'
import { GENESIS, RaftBatches } from './raft-batches.js'

const [dir, seed] = process.argv.slice(2)
if (dir === undefined || seed === undefined) throw new Error('usage: raft-storage-writer.ts DIR SEED')
// As AgentState opens it, and its binarySublevel('raft').
const db = new Level<string, string>(dir, { valueEncoding: 'utf8' })
await db.open({ cacheSize: 1024 * 1024, writeBufferSize: 1024 * 1024 })
const storage = new RaftStorage(db.sublevel<string, Uint8Array>('raft', { valueEncoding: 'view' }))
if ((await storage.load()) != null) throw new Error(`${dir} already holds Raft state`)
await storage.init(GENESIS)
const batches = new RaftBatches(Number(seed))
for (let n = 1; n <= 1_000_000; n++) {
  await storage.persist(batches.next())
  // Pipes are synchronous on Linux: the line is out before the next batch starts.
  process.stdout.write(`${n}\n`)
}
