/**
 * Stand-in signatures for the simulation and the unit tests: a node signs with a
 * secret only it holds (a keyed hash), and the verifier, playing the role of the
 * public keys a libp2p peer id embeds, checks with that node's secret. Fast and
 * deterministic; a forger that calls only its own signer cannot sign for others,
 * which is all the core's certificate logic relies on.
 */
import type { NodeId, Signer, Verifier } from '../../src/manager/raft/index.js'

function fnv1a(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0
  for (const b of bytes) {
    h ^= b
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

function secretOf(node: NodeId): number {
  return fnv1a(new TextEncoder().encode(`secret:${node}`), 0x811c9dc5)
}

function mac(node: NodeId, bytes: Uint8Array): Uint8Array {
  const s = secretOf(node)
  const out = new Uint8Array(8)
  new DataView(out.buffer).setUint32(0, fnv1a(bytes, s))
  new DataView(out.buffer).setUint32(4, fnv1a(bytes, s ^ 0x5bd1e995))
  return out
}

export function fakeSigner(node: NodeId): Signer {
  return { sign: (bytes) => mac(node, bytes) }
}

export const fakeVerifier: Verifier = {
  verify(node, bytes, signature) {
    const expected = mac(node, bytes)
    return signature.length === expected.length && expected.every((b, i) => b === signature[i])
  },
}
