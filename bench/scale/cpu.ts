/**
 * CPU a member spends on whole-view work as N grows, on this machine (the
 * simulation gives CPU for free): encoding and decoding a full state-sync message
 * (messages.ts, with its schema checks), the view digest MemberTable sends (view-digest.ts),
 * and decoding a joiner's re-broadcast of its whole view as one gossip message.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type MemberRecord, viewDigest } from '../../src/membership/index.js'
import { decodeGossip, decodeSync, encode } from '../../src/membership/messages.js'
import { agentMeta } from './cluster.js'

export interface ViewCpu {
  n: number
  syncMessageBytes: number
  encodeMs: number
  decodeMs: number
  digestMs: number
  /** A gossip message with one alive claim per member (what merge() publishes after a joiner's first sync). */
  rebroadcastBytes: number
  rebroadcastDecodeMs: number
  /** Whether the receivers' decoder accepts it (at most 1024 claims per message). */
  rebroadcastAccepted: boolean
}

export async function measureViewCpu(sizes: number[]): Promise<ViewCpu[]> {
  const largest = Math.max(...sizes)
  const ids: string[] = []
  for (let i = 0; i < largest; i++) {
    const seed = new Uint8Array(32)
    new DataView(seed.buffer).setUint32(4, i + 1)
    ids.push(peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString())
  }
  const out: ViewCpu[] = []
  for (const n of sizes) {
    const records: MemberRecord[] = ids.slice(0, n).map((id, i) => ({
      id,
      addrs: [`/ip4/10.0.${(i >> 8) & 255}.${i & 255}/tcp/4001/p2p/${id}`],
      incarnation: 3,
      state: 'alive',
      meta: agentMeta(i, ids[0]!),
    }))
    const message = { v: 1 as const, digest: 'x'.repeat(43), members: records }
    const bytes = encode(message)
    const claims = records.map(({ state: _s, ...r }) => ({ kind: 'alive' as const, ...r }))
    const gossip = encode({ v: 1, claims })
    let accepted = true
    out.push({
      n,
      syncMessageBytes: bytes.byteLength,
      encodeMs: time(() => encode(message)),
      decodeMs: time(() => decodeSync(bytes)),
      digestMs: time(() => viewDigest(records)),
      rebroadcastBytes: gossip.byteLength,
      rebroadcastDecodeMs: time(() => {
        try {
          decodeGossip(gossip)
        } catch {
          accepted = false
        }
      }),
      rebroadcastAccepted: accepted,
    })
  }
  return out
}

/** Median of 5 runs, ms. */
function time(fn: () => void): number {
  const runs: number[] = []
  for (let i = 0; i < 5; i++) {
    const start = process.hrtime.bigint()
    fn()
    runs.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  runs.sort((a, b) => a - b)
  return Math.round(runs[2]! * 10) / 10
}
