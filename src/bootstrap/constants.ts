/** Where the admin API listens unless --api says otherwise (loopback: see docs/operations.md). */
export const DEFAULT_API = '127.0.0.1:7070'
/** libp2p listen address unless --listen says otherwise; 7946 is memberlist's port, kept as a nod. */
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7946'
/** File names inside the data folder. */
export const PEER_KEY_FILE = 'peer.key'
export const STATE_DIR = 'state'
export const RUN_FILE = 'agent.json'
/** Re-exported for config.ts; its home is shared/ because providers checks cluster names too. */
export { CLUSTER_NAME } from '../shared/index.js'
