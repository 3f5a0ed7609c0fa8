import { type ErrorCode, ShoalError } from '../shared/index.js'

/**
 * The one table from error code to HTTP status: the API's error handler answers
 * with it (`{"error":{"code","message"}}`) and the OpenAPI document lists each
 * operation's codes under the status it gives them. Domain errors carry no status.
 */
export const HTTP_STATUS = {
  ERR_BAD_REQUEST: 400,
  ERR_CONFIG: 400,
  ERR_NOT_FOUND: 404,
  ERR_PORT_IN_USE: 409,
  ERR_DATA_DIR_IN_USE: 409,
  ERR_INTERNAL: 500,
} as const satisfies Record<ErrorCode, number>

export type HttpStatus = (typeof HTTP_STATUS)[keyof typeof HTTP_STATUS]

/** The status the API answers `err` with: its code's, 500 for anything unnamed. */
export function httpStatusOf(err: unknown): number {
  if (!(err instanceof ShoalError)) return 500
  return (HTTP_STATUS as Record<string, number>)[err.code] ?? err.status ?? 500
}
