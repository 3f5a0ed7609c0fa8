import { type ErrorCode, FrameError, ShoalError } from '../shared/index.js'

/**
 * This node tried to announce metadata the contract refuses: an undeclared key, a
 * bad value (MetadataInvalidError) or too many bytes (MetadataTooLargeError).
 */
export abstract class MetadataError extends ShoalError {
  constructor(
    code: ErrorCode,
    /** The key at fault; null when the whole metadata is over the limit. */
    readonly key: string | null,
    message: string,
  ) {
    super(code, message)
  }
}

/** A metadata key no subsystem declares, or a value its owner's schema refuses. */
export class MetadataInvalidError extends MetadataError {
  static readonly code = 'ERR_METADATA_INVALID'
  declare readonly code: typeof MetadataInvalidError.code

  constructor(key: string, message: string) {
    super(MetadataInvalidError.code, key, message)
  }
}

/** A metadata key over its byte budget, or the whole metadata over what a member may announce. */
export class MetadataTooLargeError extends MetadataError {
  static readonly code = 'ERR_METADATA_TOO_LARGE'
  declare readonly code: typeof MetadataTooLargeError.code

  constructor(key: string | null, message: string) {
    super(MetadataTooLargeError.code, key, message)
  }
}

/** A peer's membership message (gossip, probe, sync) that does not follow the protocol. */
export class MembershipMessageError extends FrameError {
  static readonly code = 'ERR_MEMBERSHIP_MESSAGE'
  declare readonly code: typeof MembershipMessageError.code

  constructor(message: string) {
    super(MembershipMessageError.code, message)
  }
}
