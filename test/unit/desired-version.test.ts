import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { DESIRED_KEY, DesiredVersion, type SignedDesiredRecord } from '../../src/manager/index.js'
import type { Member, MembershipEvents } from '../../src/membership/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { TypedEvents } from '../../src/shared/typed-events.js'
import { waitFor } from '../helpers/wait.js'

/** A node's DesiredVersion over an in-memory membership whose other members we script. */
async function node() {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  const events = new TypedEvents<MembershipEvents>(silentLogger)
  let meta: Record<string, unknown> = {}
  const others: Member[] = []
  const store = new Map<string, string>()
  const desired = new DesiredVersion({
    membership: {
      id,
      events,
      members: () => others,
      updateMetadata: async (patch) => {
        meta = { ...meta, ...patch }
      },
    },
    privateKey: key,
    db: { get: async (k) => store.get(k), put: async (k, v) => void store.set(k, v) },
    logger: silentLogger,
  })
  await desired.start()
  /** Another member shows `signed` in its metadata. */
  const hear = (from: string, signed: unknown) => {
    const member: Member = {
      id: from,
      addrs: [],
      incarnation: 1,
      state: 'alive',
      meta: { [DESIRED_KEY]: signed },
      self: false,
      since: 0,
    }
    events.emit('member:update', member)
  }
  return { id, key, desired, hear, meta: () => meta, store }
}

const published = (n: Awaited<ReturnType<typeof node>>) => n.meta()[DESIRED_KEY] as SignedDesiredRecord

describe('the desired-version record', () => {
  it('is signed by its issuer, spreads through metadata, and the highest revision wins', async () => {
    const a = await node()
    const b = await node()
    const record = await a.desired.propose('educa@1.0', 'all-at-once')
    expect(record).toMatchObject({ revision: 1, issuedBy: a.id, distribution: 'educa@1.0' })
    b.hear(a.id, published(a))
    await waitFor('b to adopt', () => b.desired.current()?.distribution === 'educa@1.0')
    expect(published(b)).toEqual(published(a))

    // b records the next one; a adopts it; an older record heard later changes nothing.
    const old = published(a)
    await b.desired.propose('educa@1.1', 'all-at-once')
    a.hear(b.id, published(b))
    await waitFor('a to adopt 1.1', () => a.desired.current()?.revision === 2)
    a.hear(b.id, old)
    await new Promise((r) => setTimeout(r, 50))
    expect(a.desired.current()).toMatchObject({ distribution: 'educa@1.1', revision: 2 })
    expect(a.desired.records().map((r) => r.revision)).toEqual([2, 1])
  })

  it('ignores forged, tampered and malformed records', async () => {
    const a = await node()
    const b = await node()
    await a.desired.propose('educa@1.0', 'all-at-once')
    const good = published(a)
    const tampered = { ...good, record: { ...good.record, distribution: 'evil@6.6', revision: 9 } }
    // Signed by b's key but claiming to come from a.
    const mallory = await generateKeyPair('Ed25519')
    const forged = await signAs(mallory, { ...good.record, revision: 7 })
    b.hear(a.id, tampered)
    b.hear(a.id, forged)
    b.hear(a.id, { record: { distribution: 42 }, signature: 'x' })
    b.hear(a.id, 'nonsense')
    await new Promise((r) => setTimeout(r, 100))
    expect(b.desired.current()).toBeNull()
    b.hear(a.id, good)
    await waitFor('b to adopt the genuine record', () => b.desired.current()?.revision === 1)
  })

  it('survives a restart', async () => {
    const a = await node()
    await a.desired.propose('educa@1.0', 'all-at-once')
    const again = new DesiredVersion({
      membership: {
        id: a.id,
        events: new TypedEvents(silentLogger),
        members: () => [],
        updateMetadata: async () => {},
      },
      privateKey: a.key,
      db: { get: async (k) => a.store.get(k), put: async (k, v) => void a.store.set(k, v) },
      logger: silentLogger,
    })
    await again.start()
    expect(again.current()).toMatchObject({ distribution: 'educa@1.0', revision: 1 })
  })
})

async function signAs(key: PrivateKey, record: SignedDesiredRecord['record']): Promise<SignedDesiredRecord> {
  const { canonicalJson } = await import('../../src/shared/canonical-json.js')
  const signature = await key.sign(new TextEncoder().encode(canonicalJson(record)))
  return { record, signature: Buffer.from(signature).toString('base64') }
}
