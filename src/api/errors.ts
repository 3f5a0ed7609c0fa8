import { type ErrorCode, errorClass } from '../shared/index.js'

/** The API's own refusals; their statuses, with every other code's, are in http-status.ts. */

/** No token, or one this agent does not know (with a tokens file). */
export class UnauthorizedError extends errorClass('ERR_UNAUTHORIZED') {}

/** The token's role may not call this operation. */
export class ForbiddenError extends errorClass('ERR_FORBIDDEN') {}

/** Without tokens, a Host header that is not a loopback name (DNS rebinding). */
export class ForbiddenHostError extends errorClass('ERR_FORBIDDEN_HOST') {}

/** A mutating request sent by a page of another site. */
export class ForbiddenOriginError extends errorClass('ERR_FORBIDDEN_ORIGIN') {}

/** The API's address is held by another process. */
export class ApiAddressInUseError extends errorClass('ERR_API_ADDRESS_IN_USE') {
  constructor(where: string, options?: ErrorOptions) {
    super(`API address ${where} is in use; pass another --api`, options)
  }
}

/**
 * The code of a body over a route's limit (`bodyLimit` in the route table), 413.
 * POST /api/distributions answers ERR_MANIFEST_INVALID instead, as it always has.
 */
export const TOO_LARGE = 'ERR_TOO_LARGE' satisfies ErrorCode
