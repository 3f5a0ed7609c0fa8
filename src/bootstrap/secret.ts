import { readFile } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { ShoalError } from '../shared/errors.js'
import { refuseExisting, writeFileAtomic } from '../shared/files.js'

/** libp2p's swarm key format: header lines then 64 hex digits (95 bytes in all). */
const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/

/** Writes a new cluster secret (libp2p private network key) to `file`, mode 0600. */
export async function writeNewSecret(file: string): Promise<void> {
  await refuseExisting(file)
  const key = new Uint8Array(95)
  generateKey(key)
  await writeFileAtomic(file, key, 0o600)
}

/** Reads and checks a cluster secret file. */
export async function readSecret(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    throw new ShoalError('ERR_SECRET_FILE', `cannot read secret file ${file}: ${(err as Error).message}`, 400)
  }
  if (!SWARM_KEY.test(new TextDecoder().decode(bytes))) {
    throw new ShoalError(
      'ERR_SECRET_FILE',
      `${file} is not a cluster secret; create one with "shoal secret new FILE"`,
      400,
    )
  }
  return bytes
}
