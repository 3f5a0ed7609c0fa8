import { createHmac, timingSafeEqual } from 'node:crypto'
import { ReleaseUrlExpiredError, ReleaseUrlSignatureError } from './errors.js'

/**
 * The token in a release URL (`/releases/<token>`): `<expires>.<sha256>.<mac>`, where
 * `expires` is a Unix time in seconds, `sha256` the hex digest of the tarball it
 * grants, and `mac` the base64url HMAC-SHA256 of both under the serving agent's key.
 * Whoever holds the URL may download that one file until it expires; nothing else.
 */
const TOKEN = /^(\d{1,12})\.([0-9a-f]{64})\.([A-Za-z0-9_-]{43})$/

/** A token granting the tarball `sha256` until `expiresAt` (ms since the epoch, rounded down to a second). */
export function signReleaseToken(key: Uint8Array, sha256: string, expiresAt: number): string {
  const expires = Math.floor(expiresAt / 1000)
  return `${expires}.${sha256}.${mac(key, sha256, expires).toString('base64url')}`
}

/**
 * The sha256 a token grants, if `key` signed it and it has not expired at `now`
 * (ms). The signature is checked first, in constant time, so a forged token
 * learns nothing, not even whether its time would have been up.
 */
export function verifyReleaseToken(key: Uint8Array, token: string, now: number): string {
  const match = TOKEN.exec(token)
  if (match == null) throw new ReleaseUrlSignatureError()
  const [, expiresText = '', sha256 = '', macText = ''] = match
  const expires = Number(expiresText)
  const presented = Buffer.from(macText, 'base64url')
  const expected = mac(key, sha256, expires)
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected))
    throw new ReleaseUrlSignatureError()
  if (now >= expires * 1000) throw new ReleaseUrlExpiredError(expires * 1000)
  return sha256
}

function mac(key: Uint8Array, sha256: string, expires: number): Buffer {
  return createHmac('sha256', key).update(`shoal-release/1\n${sha256}\n${expires}`).digest()
}
