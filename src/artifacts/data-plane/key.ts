import { createHmac } from 'node:crypto'
import type { ConnectionOptions, TLSSocket, TlsOptions } from 'node:tls'
import { KEY_LABEL } from './constants.js'

/**
 * Key for the data plane: HMAC-SHA256(secret, "shoal/CLUSTER/data-plane/v1"); every
 * holder of the cluster secret computes it, nobody else. The cluster's name is in
 * it, as in every libp2p protocol id: two clusters sharing a secret file by mistake
 * still cannot fetch each other's blobs.
 */
export function dataPlaneKey(secret: Uint8Array, cluster: string): Buffer {
  return createHmac('sha256', secret).update(keyLabel(cluster)).digest()
}

export function keyLabel(cluster: string): string {
  return `shoal/${cluster}/${KEY_LABEL}`
}

/**
 * TLS 1.3 with an external pre-shared key and no certificate. The PSK only
 * authenticates: OpenSSL offers and accepts PSK with (EC)DHE key exchange only
 * (psk_dhe_ke; psk_ke would need SSL_OP_ALLOW_NO_DHE_KEX), so every connection has
 * fresh keys (X25519MLKEM768, OpenSSL 3.5's first group) and forward secrecy; records
 * are AES-128-GCM. A peer without the key fails the PSK binder check on its
 * ClientHello, and is sent nothing but an alert. There is no identity hint (TLS 1.3
 * has none); the client's identity, its peer id, travels in the clear in the
 * ClientHello, as it would in TLS 1.2's ClientKeyExchange.
 * Chosen over TLS 1.2 DHE-PSK-AES128-GCM-SHA256, which also works: one round trip
 * to the first request instead of two, and elliptic-curve instead of 2048-bit
 * finite-field Diffie-Hellman (2.3 against 3.2 ms of CPU per connection, both ends
 * together, measured on Node 24); bulk throughput is the same cipher either way.
 */
const TLS_COMMON = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256',
} as const

export function serverTlsOptions(
  key: Buffer,
  /** Whether to accept the client's identity (its peer id); it may remember it for `socket`. */
  accept: (socket: TLSSocket, identity: string) => boolean,
  handshakeTimeout: number,
): TlsOptions {
  return {
    ...TLS_COMMON,
    handshakeTimeout,
    pskCallback: (socket, identity) => (accept(socket, identity) ? key : null),
  }
}

export function clientTlsOptions(key: Buffer, identity: string): ConnectionOptions {
  return {
    ...TLS_COMMON,
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk: key, identity }),
  }
}

/** One line saying why a connection failed, for an error from TLS or the socket (OpenSSL's own run over lines). */
export function describeFailure(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  // OpenSSL names the reason after "SSL routines:<function>:"; a client's error only carries EPROTO as its code.
  const openssl = /SSL routines:[^:]*:([^:\n]+)/.exec(err.message)?.[1]
  const tag = openssl ?? code
  const what = `${code} ${openssl ?? ''}`
  if (/BINDER|DECRYPT_ERROR|BAD_RECORD_MAC|binder does not verify|decrypt error|bad record mac/i.test(what))
    return `the TLS handshake failed: the keys differ (another cluster, or a changed cluster secret?) [${tag}]`
  if (/WRONG_VERSION_NUMBER|wrong version number|packet length too long|http request/i.test(what))
    return `the other end does not speak TLS (an open cluster's agent, or not a Shoal data plane?) [${tag}]`
  if (openssl != null || code.startsWith('ERR_SSL')) return `the TLS handshake failed [${tag}]`
  return err.message.split('\n')[0]!.trim()
}
