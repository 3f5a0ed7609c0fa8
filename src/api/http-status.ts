import type * as artifacts from '../artifacts/index.js'
import type * as loadbalancer from '../loadbalancer/index.js'
import type * as manager from '../manager/index.js'
import type * as membership from '../membership/index.js'
import type * as providers from '../providers/index.js'
import type * as runtime from '../runtime/index.js'
import type * as shared from '../shared/index.js'
import { type CodesOf, type ErrorCode, type INTERNAL, ShoalError } from '../shared/index.js'
import type * as api from './errors.js'
import type { TOO_LARGE } from './errors.js'

/**
 * Every code a named error class of the folders the API serves declares (each
 * folder's errors.ts, through its index.ts), and the API's own.
 */
export type KnownErrorCode =
  | CodesOf<typeof shared>
  | CodesOf<typeof membership>
  | CodesOf<typeof runtime>
  | CodesOf<typeof manager>
  | CodesOf<typeof artifacts>
  | CodesOf<typeof loadbalancer>
  | CodesOf<typeof providers>
  | CodesOf<typeof api>
  | typeof INTERNAL
  | typeof TOO_LARGE

export type HttpStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 500 | 502 | 503 | 504 | 507

/**
 * The one table from error code to HTTP status. The API's error handler answers
 * `{"error":{"code","message"}}` with it, and the OpenAPI document lists each
 * operation's codes under the status it gives them (src/api/openapi.ts). Domain
 * errors carry no status. The compiler holds it to the classes: a new error class
 * exported by a folder's index.ts fails the build until its code has a row.
 * docs/api.md renders it (test/unit/error-model.test.ts keeps the two equal).
 */
export const HTTP_STATUS = {
  // 400: the request is wrong; fix it
  ERR_BAD_REQUEST: 400,
  ERR_CONFIG: 400,
  ERR_MANIFEST_INVALID: 400,
  ERR_PACKAGE_UNSAFE: 400,
  ERR_PACKAGE_TOO_LARGE: 400,
  ERR_PACKAGE_INVALID: 400,
  ERR_KEY_INVALID: 400,
  ERR_RELEASE_FOLDER: 400,
  ERR_UNKNOWN_PROVIDER: 400,
  ERR_AMBIGUOUS: 400,
  ERR_BAD_ANALYSIS: 400,
  ERR_BAD_FRAME: 400,
  ERR_FRAME_TOO_LARGE: 400,
  ERR_MEMBERSHIP_MESSAGE: 400,
  // 401, 403: who asks, or what it is signed with
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_FORBIDDEN_HOST: 403,
  ERR_FORBIDDEN_ORIGIN: 403,
  ERR_MANIFEST_SIGNATURE: 403,
  ERR_RELEASE_URL_SIGNATURE: 403,
  // 404: what it names is not known
  ERR_NOT_FOUND: 404,
  ERR_UNKNOWN_DISTRIBUTION: 404,
  ERR_UNKNOWN_NODE: 404,
  // 409: it conflicts with the state things are in
  ERR_VERSION_EXISTS: 409,
  ERR_VERSION_UNPUBLISHED: 409,
  ERR_VERSION_IN_USE: 409,
  ERR_ARTIFACT_MISSING: 409,
  ERR_ROLLOUT_FINISHED: 409,
  ERR_NOT_WAITING: 409,
  ERR_NOT_PAUSED: 409,
  ERR_ALREADY_RUNNING: 409,
  ERR_NO_RAFT_LOG: 409,
  ERR_NO_PREVIOUS: 409,
  ERR_FILE_EXISTS: 409,
  ERR_PORT_IN_USE: 409,
  ERR_DATA_DIR_IN_USE: 409,
  ERR_API_ADDRESS_IN_USE: 409,
  // 410, 413, 422
  ERR_RELEASE_URL_EXPIRED: 410,
  ERR_ARTIFACT_TOO_LARGE: 413,
  ERR_TOO_LARGE: 413,
  ERR_ARTIFACT_CORRUPT: 422,
  // 500: the agent failed at it
  ERR_INTERNAL: 500,
  ERR_METADATA_INVALID: 500,
  ERR_METADATA_TOO_LARGE: 500,
  ERR_UNPACK_DEST: 500,
  ERR_OSGI: 500,
  ERR_OSGI_BUNDLE: 500,
  ERR_OSGI_UNAVAILABLE: 500,
  ERR_RELEASE_PACK: 500,
  ERR_BLOB_TRUNCATED: 500,
  // 502, 503, 504: something it depends on failed
  ERR_PROVIDER: 502,
  ERR_HAPROXY: 502,
  ERR_STREAM_CLOSED: 502,
  ERR_NO_MANAGER: 503,
  ERR_NO_QUORUM: 503,
  ERR_NO_SOURCE: 503,
  ERR_TIMEOUT: 504,
  // 507: this agent's disk is full; free space
  ERR_DISK_FULL: 507,
} as const satisfies Record<KnownErrorCode, HttpStatus>

/** Every class's code is a literal: a class whose code the compiler cannot see would escape the table. */
const _everyCodeIsALiteral: ErrorCode extends KnownErrorCode ? never : true = true

/** Whether `code` has a row in the table. */
export function isKnownCode(code: string): code is KnownErrorCode {
  return Object.hasOwn(HTTP_STATUS, code)
}

/** The status of `code`: its row's, 500 for a code no class of these folders declares. */
export function httpStatusOfCode(code: string): HttpStatus {
  return isKnownCode(code) ? HTTP_STATUS[code] : 500
}

/** The status the API answers `err` with: its code's row; 500 for anything without one. */
export function httpStatusOf(err: unknown): HttpStatus {
  return err instanceof ShoalError ? httpStatusOfCode(err.code) : 500
}

/** The table as docs/api.md shows it: a row per status, its codes in the table's order. */
export function httpStatusTable(): string {
  const rows = new Map<number, string[]>()
  for (const [code, status] of Object.entries(HTTP_STATUS))
    rows.set(status, [...(rows.get(status) ?? []), code])
  return [
    '| status | codes |',
    '|---|---|',
    ...[...rows]
      .sort(([a], [b]) => a - b)
      .map(([status, codes]) => `| ${status} | ${codes.map((c) => `\`${c}\``).join(', ')} |`),
  ].join('\n')
}
