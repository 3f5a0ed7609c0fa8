import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { refuseExisting, writeFileAtomic } from '../shared/index.js'
import { SecretFileError } from './errors.js'

/** libp2p's swarm key format: header lines then 64 hex digits (95 bytes in all). */
const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/

/** Writes a new cluster secret (libp2p private network key) to `file`, mode 0600. */
export async function writeNewSecret(file: string): Promise<void> {
  await refuseExisting(file)
  const key = new Uint8Array(95)
  generateKey(key)
  await writeFileAtomic(file, key, 0o600)
}

/** Reads and checks a cluster secret file; every way it can be wrong is a SecretFileError saying what to do. */
export async function readSecret(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    throw new SecretFileError(unreadable(file, err as NodeJS.ErrnoException), { cause: err })
  }
  if (!SWARM_KEY.test(new TextDecoder().decode(bytes))) {
    throw new SecretFileError(
      `${file} is not a cluster secret; pass the file "shoal secret new FILE" wrote (the same one on every node)`,
    )
  }
  return bytes
}

function unreadable(file: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return `secret file ${file} does not exist; copy the cluster's secret there, or make one for a new cluster with "shoal secret new ${file}"`
    case 'EISDIR':
      return `secret file ${file} is a folder; pass the secret file itself (made by "shoal secret new FILE")`
    case 'EACCES':
    case 'EPERM':
      return `secret file ${file} is not readable by this user; run the agent as the file's owner (mode 0600)`
    default:
      return `cannot read secret file ${file}: ${err.message}`
  }
}

/**
 * A credential every holder of the cluster secret can compute and nobody else:
 * HMAC-SHA256 of `purpose` keyed with the secret, hex. Agents present it to a load
 * balancer's admin listener (`purpose` "lb-admin") so that their dashboards can read
 * its status when it is exposed with tokens; it never travels in the clear unless
 * that listener does.
 */
export function clusterCredential(secret: Uint8Array, purpose: string): string {
  return `shoal-cluster.${createHmac('sha256', secret).update(`shoal/${purpose}/v1`).digest('hex')}`
}
