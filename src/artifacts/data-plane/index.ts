/**
 * The data plane: bulk bytes of blobs between agents over a TCP port of their own,
 * beside libp2p. A closed cluster runs it over TLS 1.3 with a pre-shared key derived
 * from the cluster secret (no certificates); an open cluster over plain TCP with the
 * same framing (wire.ts documents it step by step).
 */
export {
  type ChunkRequest,
  DataPlaneClient,
  type DataPlaneClientInit,
  type DataPlaneClientStats,
  type DataPlaneTarget,
  type FetchedChunk,
  type HaveUpdate,
} from './client.js'
export {
  CLIENT_IDLE_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STALL_MS,
  MAX_QUEUED_GETS,
  SLOT_TURN_CHUNKS,
} from './constants.js'
export * from './errors.js'
export { dataPlaneKey } from './key.js'
export {
  DataPlaneServer,
  type DataPlaneServerInit,
  type DataPlaneServerStats,
  type DataPlaneSource,
} from './server.js'
