import { FrameError } from '../../shared/index.js'

/**
 * A Raft frame (or a configuration record or certificate embedded in the cluster
 * state) that is not what the wire format allows: not JSON, a field of the wrong
 * type or out of range, an array over its bound, bad base64, an unknown message
 * type. The peer that sent it costs a log line; the message is never stepped.
 */
export class RaftMessageError extends FrameError {
  static readonly code = 'ERR_RAFT_MESSAGE'
  declare readonly code: typeof RaftMessageError.code

  constructor(message: string, options?: ErrorOptions) {
    super(RaftMessageError.code, message, options)
  }
}
