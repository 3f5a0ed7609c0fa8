import { createHash } from 'node:crypto'
import type { MemberRecord } from './member.js'

/**
 * A digest of who is in which incarnation and state (metadata and addresses left
 * out); two views with the same digest need no full exchange in a state sync.
 * Order-independent: the lines are sorted before hashing.
 */
export function viewDigest(records: Iterable<Pick<MemberRecord, 'id' | 'incarnation' | 'state'>>): string {
  const lines = Array.from(records, (record) => `${record.id}:${record.incarnation}:${record.state}`).sort()
  return createHash('sha256').update(lines.join('\n')).digest('base64url')
}
