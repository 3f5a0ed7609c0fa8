/**
 * Defaults of the providers (docs/providers.md). Each is the value used when the
 * providers file leaves the option out.
 */

/**
 * ms a release URL stays valid after it is written into a node's user-data. It must
 * cover the boot up to cloud-init's final stage and the Node.js download before
 * Shoal is fetched (a few minutes on EC2); an hour leaves room for slow private
 * clouds and retries, and a leaked URL still dies the same day.
 */
export const RELEASE_URL_TTL_MS = 60 * 60_000

/** The shortest `releaseUrlTtlMs` accepted: less would expire before a normal boot reaches the download. */
export const MIN_RELEASE_URL_TTL_MS = 60_000

/** Where, under an agent's data folder, the release tarball it serves is cached. */
export const RELEASE_CACHE_DIR = 'releases'

/** The retire protocol (src/providers/retire.ts): a request or its answer, bytes. */
export const RETIRE_MAX_BYTES = 1024

/** ms a member answering a retire request has for the whole exchange. */
export const RETIRE_SERVE_TIMEOUT_MS = 5000

/** ms the asking agent waits for the dial and the member's acknowledgement. */
export const RETIRE_ASK_TIMEOUT_MS = 10_000
