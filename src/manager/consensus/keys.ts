/**
 * The Raft core's signatures with the nodes' libp2p keys. The core is pure and
 * calls these synchronously; libp2p's ed25519 keys sign and verify through
 * node:crypto synchronously (a key type that answers with a promise is refused).
 * A peer id embeds its ed25519 public key, so any node's votes can be checked
 * from its id alone.
 */
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { NodeId, Signer, Verifier } from '../raft/index.js'

export function keySigner(privateKey: PrivateKey): Signer {
  if (privateKey.type !== 'Ed25519')
    throw new TypeError(`the manager signs votes with an Ed25519 key; this node's key is ${privateKey.type}`)
  return {
    sign(bytes) {
      const signature = privateKey.sign(bytes)
      if (signature instanceof Uint8Array) return signature
      throw new TypeError('the node key signed asynchronously; the Raft core needs a synchronous signature')
    },
  }
}

/** Verifies with the public key each node id embeds (cached: ids recur in every certificate). */
export function peerIdVerifier(): Verifier {
  const keys = new Map<NodeId, PublicKey | null>()
  const keyOf = (node: NodeId): PublicKey | null => {
    let key = keys.get(node)
    if (key === undefined) {
      try {
        key = peerIdFromString(node).publicKey ?? null
      } catch {
        key = null
      }
      if (key?.type !== 'Ed25519') key = null
      if (keys.size > 10_000) keys.clear()
      keys.set(node, key)
    }
    return key
  }
  return {
    verify(node, bytes, signature) {
      const key = keyOf(node)
      if (key == null) return false
      try {
        const ok = key.verify(bytes, signature)
        return ok === true
      } catch {
        return false
      }
    },
  }
}
