/** Largest membership message (a full-state sync of ~1,000 members with metadata fits). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/** Largest metadata a member may publish about itself, serialized. */
export const MAX_METADATA_BYTES = 16 * 1024
export const MAX_ADDRS = 32
export const PROTOCOL_VERSION = '1.0.0'
/** Sync rounds after start that run every 2 probe intervals instead of every sync interval. */
export const CATCH_UP_SYNCS = 4

/** Failed joins in a row through one bootstrap address before the agent logs that it cannot reach it. */
export const BOOTSTRAP_WARN_AFTER = 3
