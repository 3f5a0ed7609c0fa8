/**
 * What the simulated network charges in bytes and round trips for what libp2p does
 * on a real wire: yamux 12-byte headers, noise's 16-byte tag and 2-byte length,
 * multistream-select lines, gossipsub's protobuf. `calibrate.ts` measures the ones
 * that matter on real libp2p nodes; the scale suite runs the simulation with the
 * values it measured in the same run (the defaults are an earlier measurement).
 */
export interface WireCosts {
  /** Bytes the dialler sends to set up a connection: pnet nonce, multistream, noise XX, yamux, identify, gossipsub hello. */
  connectDialer: number
  /** Bytes the listener sends for the same. */
  connectListener: number
  /** Round trips before a new connection carries streams (TCP, pnet, noise XX, muxer selection). */
  connectRtts: number
  /** Bytes the initiator sends to open a stream and select its protocol, not counting the protocol id. */
  streamOpenInitiator: number
  /** Bytes the responder sends to accept a stream and echo the selection, not counting the protocol id. */
  streamOpenResponder: number
  /** Bytes each side sends to close its half of a stream. */
  streamClose: number
  /** Bytes added to every message written on a stream: length prefix, yamux header, noise tag and length. */
  frame: number
  /** Bytes on top of the data and the topic for one gossipsub message on one hop. */
  gossipMessage: number
  /** Bytes per message id in IHAVE, IWANT and IDONTWANT control messages. */
  messageId: number
  /** Bytes of a control message with no ids (GRAFT, PRUNE, empty IHAVE), not counting the topic. */
  control: number
  /** Bytes each side of a connection sends per keep-alive period (yamux ping and pong). */
  keepAlive: number
  /** Yamux keep-alive period, ms. */
  keepAliveMs: number
}

/** Measured by calibrate.ts on 2026-11-29 (libp2p 2.10, yamux 7, noise 16, gossipsub 14); the suite measures again each run. */
export const DEFAULT_COSTS: WireCosts = {
  connectDialer: 1_622,
  connectListener: 1_620,
  connectRtts: 4,
  streamOpenInitiator: 171,
  streamOpenResponder: 141,
  streamClose: 30,
  frame: 31,
  gossipMessage: 39,
  messageId: 34,
  control: 38,
  keepAlive: 116,
  keepAliveMs: 30_000,
}

/** Bytes each side sends for one request/answer exchange on an open connection (one message each way). */
export function exchangeBytes(
  costs: WireCosts,
  protocol: string,
  request: number,
  answer: number,
): { initiator: number; responder: number } {
  const id = protocol.length + 1
  return {
    initiator: costs.streamOpenInitiator + id + request + costs.frame + costs.streamClose,
    responder: costs.streamOpenResponder + id + answer + costs.frame + costs.streamClose,
  }
}
