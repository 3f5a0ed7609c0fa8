/** Chunk size for new manifests: 1 MiB keeps pipelining fine-grained and a chunk cheap to re-fetch. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
/** Smallest and largest chunk size a manifest may declare. */
export const MIN_CHUNK_SIZE = 16 * 1024
export const MAX_CHUNK_SIZE = 8 * 1024 * 1024
/** Largest artifact an agent accepts unless configured otherwise (bytes). */
export const DEFAULT_MAX_ARTIFACT_BYTES = 2 * 1024 * 1024 * 1024
/** Artifacts per distribution. */
export const MAX_ARTIFACTS = 1_000
/** Serialized manifest limit (bytes); a thousand artifacts of 2 GiB in 1 MiB chunks stays well under. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
/** Versions kept per distribution name, besides active or referenced ones. */
export const DEFAULT_RETENTION = 5
/** Chunk requests in flight per node, all peers together. */
export const DEFAULT_PARALLEL_CHUNKS = 16
/** ms between two refreshes of who holds which chunks while a fetch waits. */
export const HAVE_REFRESH_MS = 300
/** ms between two polls of a peer's chunk map over libp2p (peers without a data plane; the others push HAVE notices). */
export const HAVE_POLL_MS = 2_000
/** Requests pipelined to one peer, all blobs together: at least (one answered, one queued) and at most. */
export const MIN_PIPELINE = 4
export const MAX_PIPELINE = 8
/** ms a peer that answered `busy` (no upload slot) is left alone, doubling per busy answer up to the maximum. */
export const BUSY_BACKOFF_MS = 100
export const BUSY_BACKOFF_MAX_MS = 2_000
/** Endgame: once every missing chunk is requested, a request older than this many times its expected duration is also asked of another holder. */
export const ENDGAME_SLOW_FACTOR = 2
/** ms without any progress on a chunk being answered before the data plane gives up on it. */
export const STALL_MS = 10_000
/** Upload slots: data-plane connections served at once (a request beyond them is answered busy). */
export const DEFAULT_UPLOAD_SLOTS = 4
/**
 * ms to connect to a peer's data plane (TCP, TLS handshake, preamble). Generous: on
 * a starved machine (20 agents on 2 cores) 5 s sent transfers to libp2p for 30 s,
 * which costs far more CPU per byte and starved everyone further.
 */
export const DATA_CONNECT_TIMEOUT_MS = 15_000
/** ms a peer whose data plane could not be reached is fetched from over libp2p instead. */
export const DATA_PLANE_RETRY_MS = 30_000
/** ms a download waits after the disk was found full before it tries again. */
export const DISK_FULL_RETRY_MS = 30_000
/** ms a peer that served a bad chunk is avoided for. */
export const PENALTY_MS = 5 * 60_000
/** ms for one chunk request, at the least; the rate limit adds to it. */
export const CHUNK_TIMEOUT_MS = 30_000
/** ms for a small request (manifest, have map). */
export const REQUEST_TIMEOUT_MS = 10_000
