import { chmod, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { messageOf, writeFileAtomic } from '../shared/index.js'
import { PEER_KEY_FILE } from './constants.js'
import { PeerKeyInvalidError, PeerKeyUnreadableError } from './errors.js'

/**
 * The node's libp2p key, kept in the data folder so a restarted node keeps its
 * peer id. Created on first start (ed25519, mode 0600); one restored from a
 * backup with looser permissions is brought back to 0600 (docs/security.md).
 */
export async function loadOrCreatePeerKey(dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE)
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PeerKeyUnreadableError(
        `cannot read this node's key ${file} (${(err as NodeJS.ErrnoException).code ?? messageOf(err)}); run the agent as the data folder's owner, or pass another --data`,
        { cause: err },
      )
    const key = await generateKeyPair('Ed25519')
    await writeFileAtomic(file, privateKeyToProtobuf(key), 0o600)
    return key
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new PeerKeyInvalidError(file, { cause: err })
  }
  await keepPrivate(file)
  return key
}

/** Takes group and other access away from `file`; best effort (a read-only or foreign file stays as it is). */
async function keepPrivate(file: string): Promise<void> {
  try {
    const { mode } = await stat(file)
    if ((mode & 0o077) !== 0) await chmod(file, mode & 0o700)
  } catch {
    // Not ours to change: the key still works, as before.
  }
}
