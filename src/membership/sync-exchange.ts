import type { Channel } from '../shared/index.js'
import { bucketCount, type DigestEntry, differingBuckets, entriesIn, pages, reconcile } from './delta-sync.js'
import { MembershipMessageError } from './errors.js'
import type { MemberRecord } from './member.js'
import type { MemberTable } from './member-table.js'
import { DELTA_SYNC_VERSION, type DeltaSyncMessage, decodeDeltaSync, encode } from './messages.js'

/** Pages one side may send in one exchange (a 10,000-member view with 1 KB of metadata each is ~10). */
const MAX_PAGES = 64

/** The conversation of a delta sync (delta-sync.ts) over one stream, as the side that opened it. */
export async function pullPush(
  ch: Channel,
  table: MemberTable,
  merge: (records: MemberRecord[]) => void,
): Promise<void> {
  await ch.write(encode({ t: 'digest', v: DELTA_SYNC_VERSION, digest: table.digest() }))
  const answer = await read(ch, 'same', 'buckets')
  if (answer.t === 'same') return
  const count = answer.buckets.length
  const differ = differingBuckets(table.bucketHashes(count), answer.buckets)
  await ch.write(
    encode({ t: 'entries', buckets: differ, entries: entriesIn(table.records(), differ, count) }),
  )
  const want = await readPages(ch, merge)
  const mine = table.recordsById()
  await writePages(
    ch,
    want.map((id) => mine.get(id)).filter((r) => r != null),
    [],
  )
}

/** The same conversation, as the side that was asked. */
export async function answerPullPush(
  ch: Channel,
  table: MemberTable,
  merge: (records: MemberRecord[]) => void,
): Promise<void> {
  const opening = await read(ch, 'digest')
  if (opening.digest === table.digest()) {
    await ch.write(encode({ t: 'same' }))
    return
  }
  const count = bucketCount(table.records().length)
  await ch.write(encode({ t: 'buckets', buckets: table.bucketHashes(count) }))
  const theirs = await read(ch, 'entries')
  const { send, want } = reconcile(
    table.recordsById(),
    theirs.entries as DigestEntry[],
    theirs.buckets,
    count,
  )
  await writePages(ch, send, want)
  await readPages(ch, merge)
}

/** Writes `records` in pages; the last one carries `want` and `done`. */
async function writePages(ch: Channel, records: MemberRecord[], want: string[]): Promise<void> {
  const all = pages(records)
  for (const [i, page] of all.entries()) {
    const last = i === all.length - 1
    await ch.write(encode({ t: 'records', records: page, want: last ? want : [], done: last }))
  }
}

/** Reads pages of records up to the last, merging each; resolves with what the other side wants. */
async function readPages(ch: Channel, merge: (records: MemberRecord[]) => void): Promise<string[]> {
  for (let n = 0; n < MAX_PAGES; n++) {
    const page = await read(ch, 'records')
    if (page.records.length > 0) merge(page.records)
    if (page.done) return page.want
  }
  throw new MembershipMessageError(`a sync sent more than ${MAX_PAGES} pages of records`)
}

async function read<K extends DeltaSyncMessage['t']>(
  ch: Channel,
  ...expected: K[]
): Promise<Extract<DeltaSyncMessage, { t: K }>> {
  const message = decodeDeltaSync(await ch.read())
  if (!expected.includes(message.t as K))
    throw new MembershipMessageError(
      `sync message "${message.t}" where ${expected.join(' or ')} was expected`,
    )
  return message as Extract<DeltaSyncMessage, { t: K }>
}
