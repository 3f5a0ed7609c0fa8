/**
 * What both ends send first, once per connection (after the TLS handshake in a
 * closed cluster): names the protocol and its version, so a stray client (HTTP,
 * an older agent, TLS to a plain server) is told apart from a bad frame at once.
 */
export const PREAMBLE = Buffer.from('shoal-data/1\n', 'latin1')
/** Largest JSON header (bytes): every message is a few short fields; more is refused. */
export const MAX_HEADER_BYTES = 4 * 1024
/**
 * Largest chunk bitmap a `map` answer carries (bytes): 2^23 chunks, an 8 TiB blob in
 * 1 MiB chunks; the bitmap is a body, not a header field, because a 2 GiB blob in
 * 16 KiB chunks already needs 16 KiB of it.
 */
export const MAX_BITMAP_BYTES = 1024 * 1024
/** Default ms without a byte while a request is being answered before the connection is declared stalled. */
export const DEFAULT_STALL_MS = 10_000
/** Default ms for TCP connect, TLS handshake and the server's preamble together. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
/** ms a client connection with nothing pending and no watch stays open (kept alive for the next request). */
export const CLIENT_IDLE_MS = 30_000
/**
 * ms a server connection may be silent (no byte either way) with nothing queued and
 * no watch before it is closed: four times the client's idle close, so a live client
 * always closes first.
 */
export const SERVER_IDLE_MS = 120_000
/**
 * ms a server waits for a client to take in a chunk it is sending (the socket to
 * drain) before it drops the connection, which would otherwise keep its upload slot.
 */
export const SEND_STALL_MS = 30_000
/** ms of silence before TCP keepalive probes a connection (both ends), so a vanished peer is noticed. */
export const KEEPALIVE_MS = 30_000
/** ms a client has to finish the TLS handshake. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Connections a server accepts at once; more are refused by the kernel's backlog. */
export const MAX_CONNECTIONS = 512
/** `get` requests one connection may have queued on the server; more are answered `busy`. */
export const MAX_QUEUED_GETS = 32
/** Chunks a connection is served in one turn of its slot before it yields when others were turned away. */
export const SLOT_TURN_CHUNKS = 32
/** Watches one connection may hold. */
export const MAX_WATCHES = 4_096
/** Bytes a server lets pile up unsent on one connection before it stops reading that client's requests. */
export const MAX_WRITE_BACKLOG = 16 * 1024 * 1024
/** Longest TLS-PSK identity accepted (a libp2p peer id is 52 characters). */
export const MAX_IDENTITY_LENGTH = 128
/** Label the data-plane key is derived under (HMAC-SHA256 of it with the cluster secret). */
export const KEY_LABEL = 'data-plane/v1'
