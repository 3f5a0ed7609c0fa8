import { errorClass } from '../shared/index.js'

/**
 * HAProxy refused a command, or its runtime API could not be reached. `unreachable`
 * tells the two apart: the first is about the request, the second about the socket.
 */
export class HaproxyError extends errorClass('ERR_HAPROXY') {
  readonly unreachable: boolean

  constructor(
    message: string,
    { unreachable = false, cause }: { unreachable?: boolean; cause?: unknown } = {},
  ) {
    super(message, cause == null ? undefined : { cause })
    this.unreachable = unreachable
  }
}
