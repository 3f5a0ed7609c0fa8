import { peerIdFromString } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { MEMBER_METADATA } from '../../src/bootstrap/announcements.js'
import { MAX_ADDRS, MAX_METADATA_BYTES } from '../../src/membership/constants.js'
import type { MembershipEvents } from '../../src/membership/events.js'
import type { Claim } from '../../src/membership/member.js'
import { MemberTable } from '../../src/membership/member-table.js'
import {
  decodeGossip,
  decodeProbeAnswer,
  decodeProbeRequest,
  decodeSync,
  encode,
} from '../../src/membership/messages.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { TypedEvents } from '../../src/shared/typed-events.js'
import {
  assertCoded,
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  type Json,
  jsonText,
  mutatedBytes,
  nested,
  outcome,
  randomBytes,
  thrown,
  utf8,
} from './harness.js'

/**
 * Membership messages arrive from any peer of the cluster, on the gossip topic and
 * on the probe and sync streams. Every decoder reads the whole message before
 * anything acts on it: a bad message is ERR_MEMBERSHIP_MESSAGE and changes nothing;
 * an accepted one holds only what the member table can apply.
 */
const target = new FuzzTarget('gossip')
const CODES = ['ERR_MEMBERSHIP_MESSAGE']

const A = '12D3KooWC2G8Mq6Pj1u6CmunpwQVugXSDZEFCi38e5AJESCxKJAx'
const B = '12D3KooWRdarxNMXYKXhx3XcAaKLSRG8Q6G2wdbantTGDWt2B7P2'
const C = '16Uiu2HAmPwU1ST3eAwpSxL2YdvJEUzMbFMQmgfcY4Fm6eUKgGwjm'
const SELF = '12D3KooWHJNavF2ib6GtfWtRxyK9kChgqPro14BuWktfAcS6LB1j'

const meta: Json = {
  dists: { 'educa@1.0': '0123456789abcdef' },
  components: [
    { name: 'web', version: '1.0', state: 'ready', endpoint: 'http://10.0.0.5:40123', provides: ['web'] },
  ],
  ready: true,
}
const claims: Json = [
  { kind: 'alive', id: A, incarnation: 3, addrs: ['/ip4/10.0.0.5/tcp/4001'], meta },
  { kind: 'suspect', id: B, incarnation: 1, from: A },
  { kind: 'dead', id: C, incarnation: 7, from: B },
  { kind: 'left', id: B, incarnation: 2 },
  { kind: 'alive', id: SELF, incarnation: 0, addrs: [], meta: {} },
]
const gossip: Json = { v: 1, claims }
const probes: Json[] = [
  { t: 'ping' },
  { t: 'ping-req', target: A, addrs: ['/ip4/10.0.0.5/tcp/4001', '/ip4/127.0.0.1/tcp/4001'] },
  { t: 'claims', claims },
]
const sync: Json = {
  v: 1,
  digest: 'q1w2e3r4t5y6u7i8o9p0-_',
  members: [
    { id: A, addrs: ['/ip4/10.0.0.5/tcp/4001'], incarnation: 3, state: 'alive', meta },
    { id: C, addrs: [], incarnation: 9, state: 'dead', meta: {} },
  ],
}

const tables: MemberTable[] = []
afterEach(() => {
  for (const table of tables.splice(0)) table.clear()
})

/** Applies accepted claims to a fresh member table, as membership would: nothing may throw. */
function applyToTable(list: Claim[]): void {
  const table = new MemberTable(
    { id: SELF, addrs: [], incarnation: 4, state: 'alive', meta: {} },
    presetTimers('test').membership,
    new TypedEvents<MembershipEvents>(silentLogger),
    { declaredDead: () => {}, refute: () => {}, observersOf: () => [], stale: () => {} },
    silentLogger,
    MEMBER_METADATA,
  )
  tables.push(table)
  for (const claim of list) table.apply(claim)
  table.digest()
  table.members()
  table.clear()
}

/** Every field the decoders promise to have checked. */
function checkClaim(claim: Claim): void {
  peerIdFromString(claim.id)
  expect(Number.isSafeInteger(claim.incarnation) && claim.incarnation >= 0).toBe(true)
  if (claim.kind === 'suspect' || claim.kind === 'dead') peerIdFromString(claim.from)
  if (claim.kind === 'alive') {
    expect(claim.addrs.length).toBeLessThanOrEqual(MAX_ADDRS)
    for (const a of claim.addrs) expect(a.length).toBeLessThanOrEqual(512)
    expect(JSON.stringify(claim.meta).length).toBeLessThanOrEqual(MAX_METADATA_BYTES)
  }
}

/**
 * An accepted message encodes and decodes back to itself (it is forwarded as it came),
 * as JSON sees it: -0 and a metadata number beyond JSON's range (1e400) are written as 0 and null.
 */
function roundTrips<T>(decoded: T, decode: (bytes: Uint8Array) => T): void {
  expect(JSON.stringify(decode(encode(decoded as never)))).toBe(JSON.stringify(decoded))
}

describe('gossip fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('decodeGossip: mutated gossip is refused with a code or holds only valid, applicable claims', async () => {
    await target.check(
      fc.property(mutatedBytes(gossip), (bytes) => {
        const result = outcome(() => decodeGossip(bytes), CODES)
        if (result == null) return
        for (const claim of result.value.claims) checkClaim(claim)
        roundTrips(result.value, decodeGossip)
        applyToTable(result.value.claims)
      }),
    )
  })

  it('decodeProbeRequest: mutated ping, ping-req and claims requests', async () => {
    await target.check(
      fc.property(fc.oneof(...probes.map(mutatedBytes)), (bytes) => {
        const result = outcome(() => decodeProbeRequest(bytes), CODES)
        if (result == null) return
        const request = result.value
        if (request.t === 'ping-req') peerIdFromString(request.target)
        if (request.t === 'claims') {
          for (const claim of request.claims) checkClaim(claim)
          applyToTable(request.claims)
        }
        roundTrips(request, decodeProbeRequest)
      }),
    )
  })

  it('decodeSync: mutated digests and member records', async () => {
    await target.check(
      fc.property(mutatedBytes(sync), (bytes) => {
        const result = outcome(() => decodeSync(bytes), CODES)
        if (result == null) return
        for (const record of result.value.members ?? []) {
          checkClaim({ kind: 'alive', ...record })
          expect(['alive', 'suspect', 'dead', 'left']).toContain(record.state)
        }
        roundTrips(result.value, decodeSync)
      }),
    )
  })

  it('every decoder: random bytes and random JSON are refused with a code', async () => {
    await target.check(
      fc.property(randomBytes, (bytes) => {
        for (const decode of [decodeGossip, decodeProbeRequest, decodeProbeAnswer, decodeSync])
          outcome(() => decode(bytes), CODES)
      }),
    )
  })

  describe('regressions (counterexamples the fuzzer found)', () => {
    it('refuses metadata nested deeper than JSON.stringify can write (was a RangeError)', () => {
      const message = {
        v: 1,
        claims: [{ kind: 'alive', id: A, incarnation: 1, addrs: [], meta: { x: nested(5000) } }],
      }
      assertCoded(
        thrown(() => decodeGossip(utf8(jsonText(message)))),
        CODES,
      )
    })

    it('refuses a sync message nested deeply anywhere (was accepted, then failed on re-encoding)', () => {
      const message = { v: 1, digest: 'x', members: null, extra: nested(5000) }
      assertCoded(
        thrown(() => decodeSync(utf8(jsonText(message)))),
        CODES,
      )
    })
  })
})
