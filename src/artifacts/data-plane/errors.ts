import { errorClass } from '../../shared/index.js'

/** The target has no free upload slot (or this connection used its turn): try another holder, or later. */
export class DataPlaneBusyError extends errorClass('ERR_DATA_BUSY') {}

/**
 * The target sent that chunk to another peer moments ago and sends each chunk once
 * while it is that fresh (super-seeding): get it from that peer once it announces
 * it, or ask the target for another chunk.
 */
export class ChunkElsewhereError extends errorClass('ERR_CHUNK_ELSEWHERE') {}

/** The target does not hold the chunk asked for (or could not read it). */
export class ChunkUnavailableError extends errorClass('ERR_CHUNK_UNAVAILABLE') {}

/**
 * No data-plane connection to the target: connect refused or timed out, TLS handshake
 * failed (another key, or a closed cluster against an open one), or no Shoal data
 * plane answered. The caller falls back to libp2p streams.
 */
export class DataPlaneUnreachableError extends errorClass('ERR_DATA_UNREACHABLE') {}

/** The connection was up and went down (closed, reset, or a bad frame) before the answer came. */
export class DataPlaneConnectionLostError extends errorClass('ERR_DATA_CONNECTION_LOST') {}

/** A request was being answered and no byte came for `stallMs`: the connection was dropped. */
export class DataPlaneStalledError extends errorClass('ERR_DATA_STALLED') {}

/** The data plane could not listen on the address given (other than a port in use: PortInUseError). */
export class DataPlaneListenError extends errorClass('ERR_DATA_LISTEN') {}
