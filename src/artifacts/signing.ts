import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { refuseExisting, writeFileAtomic } from '../shared/index.js'
import { KeyInvalidError } from './errors.js'

/** A publisher's public key and its short id (what manifests name as `publisher`). */
export interface TrustedKey {
  id: string
  key: KeyObject
  file: string
}

/** The key id: the first 16 hex digits of the sha256 of the raw 32-byte ed25519 public key. */
export function keyId(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'jwk' }).x
  if (raw == null) throw new KeyInvalidError('not an ed25519 public key')
  return createHash('sha256').update(Buffer.from(raw, 'base64url')).digest('hex').slice(0, 16)
}

/** `shoal key new FILE`: FILE holds the private key (PKCS#8 PEM, mode 0600), FILE.pub the public key. */
export async function writeNewKeyPair(file: string): Promise<{ id: string; publicFile: string }> {
  await refuseExisting(file, `${file}.pub`)
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  await writeFileAtomic(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600)
  await writeFileAtomic(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), 0o644)
  return { id: keyId(publicKey), publicFile: `${file}.pub` }
}

export async function readPrivateKey(file: string): Promise<KeyObject> {
  const bytes = await readFile(file).catch((err: Error) => {
    throw new KeyInvalidError(`${file} cannot be read (${err.message})`)
  })
  return parsePrivateKey(bytes, file)
}

/**
 * An ed25519 private key from the bytes of a key file (PKCS#8 PEM, as "shoal key
 * new" writes it); `label` names it in the error, which never quotes the bytes.
 */
export function parsePrivateKey(bytes: Uint8Array, label: string): KeyObject {
  try {
    const key = createPrivateKey(Buffer.from(bytes))
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType} key`)
    return key
  } catch (err) {
    throw new KeyInvalidError(
      `${label} is not an ed25519 private key (${(err as Error).message}); create one with "shoal key new FILE"`,
    )
  }
}

export async function readTrustedKey(file: string): Promise<TrustedKey> {
  try {
    const key = createPublicKey(await readFile(file))
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType} key`)
    return { id: keyId(key), key, file }
  } catch (err) {
    throw new KeyInvalidError(`--trust ${file} is not an ed25519 public key (${(err as Error).message})`)
  }
}

export function publicKeyOf(privateKey: KeyObject): KeyObject {
  return createPublicKey(privateKey)
}

export function signBytes(privateKey: KeyObject, data: Uint8Array): string {
  return sign(null, data, privateKey).toString('base64')
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: string): boolean {
  try {
    return verify(null, data, publicKey, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}
