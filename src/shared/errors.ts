/**
 * One error model. A failure a caller can act on is a named class with a stable
 * `code`, declared in the `errors.ts` of the folder that raises it and exported
 * through its index.ts. The class fixes its code (on the class and on every
 * instance); callers test `instanceof`, never the code's string, and for an error
 * that came over the wire (an agent's HTTP answer, a manager's refusal), where
 * `instanceof` cannot work, `hasCode(err, TheClass)`. The message says what
 * happened and what to do. Errors carry no HTTP status: the API maps each code
 * to one in a single table (src/api/http-status.ts), which the OpenAPI document uses too.
 *
 *   export class VersionExistsError extends errorClass('ERR_VERSION_EXISTS') {
 *     constructor(id: string) {
 *       super(`${id} is already published with other content; publish a new version instead`)
 *     }
 *   }
 *   // a failure whose message the caller writes: no constructor needed
 *   export class ManifestInvalidError extends errorClass('ERR_MANIFEST_INVALID') {}
 *   throw new ManifestInvalidError('files[2].path: not a relative path')
 *
 * A family a caller catches as one (`FrameError`, membership's `MetadataError`) is
 * a base class that takes the code, and members that fix it:
 *
 *   export class FrameTooLargeError extends FrameError {
 *     static readonly code = 'ERR_FRAME_TOO_LARGE'
 *     declare readonly code: typeof FrameTooLargeError.code
 *     constructor(message: string, options?: ErrorOptions) {
 *       super(FrameTooLargeError.code, message, options)
 *     }
 *   }
 */

/** A stable error code: `ERR_` and capitals (what `{"error":{"code"}}` carries). */
export type ErrorCode = `ERR_${string}`

/**
 * The base of every error with a code; never thrown as it is (test/unit/error-model.test.ts
 * fails on a `new ShoalError` in src/). A named class extends it through `errorClass`,
 * which fixes the code; a family's base extends it directly.
 */
export class ShoalError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** A named error class: its code is on the class too (`VersionExistsError.code`). */
export interface ErrorClass<C extends ErrorCode = ErrorCode> {
  readonly code: C
  readonly prototype: ShoalError & { readonly code: C }
}

/**
 * The base class of the named error with code `code`. Its constructor takes the
 * message (and `{ cause }`); a subclass that builds its message declares its own.
 */
export function errorClass<const C extends ErrorCode>(code: C) {
  abstract class Named extends ShoalError {
    static readonly code: C = code
    declare readonly code: C

    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options)
    }
  }
  return Named
}

/**
 * Whether `err` carries the code of one of `named`. For errors that came over the
 * wire (`AgentError` in the CLI, `RemoteError`), whose class is not the one that was
 * thrown; anywhere else use `instanceof`.
 */
export function hasCode(err: unknown, ...named: readonly ErrorClass[]): boolean {
  return err instanceof ShoalError && named.some((c) => c.code === err.code)
}

/** The codes of the named error classes a module exports (each class's `static code`): `CodesOf<typeof errors>`. */
export type CodesOf<M> = {
  [K in keyof M]: M[K] extends { readonly code: infer C extends ErrorCode; readonly prototype: ShoalError }
    ? C
    : never
}[keyof M]

/**
 * An error another agent answered with (a manager refusing a command): its code
 * and message as that agent sent them. Its code is the wire's, so test it with
 * `hasCode`; the API answers it with the status of that code, as the other agent would.
 */
export class RemoteError extends ShoalError {
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options)
  }
}

/** The code of a failure no class names (a bug, logged where it happens); the API answers it with 500. */
export const INTERNAL = 'ERR_INTERNAL' satisfies ErrorCode

/** A setting (configuration file, environment, flag) out of range or malformed. */
export class ConfigError extends errorClass('ERR_CONFIG') {}

/**
 * A malformed option value (a command-line flag, or the `AgentOptions` field it
 * fills): nothing was started, and the CLI exits 2 as for any usage error. A family:
 * `new OptionError(message)` is ERR_CONFIG; a member with its own code passes it
 * (`class BadBootstrapError extends OptionError { static readonly code = 'ERR_BAD_BOOTSTRAP' … }`).
 */
export class OptionError extends ShoalError {
  constructor(message: string, code: ErrorCode = ConfigError.code) {
    super(code, message)
  }
}

/** A TCP port this process was to listen on is held by another process. */
export class PortInUseError extends errorClass('ERR_PORT_IN_USE') {}

/** A second agent on the same data folder. */
export class DataDirInUseError extends errorClass('ERR_DATA_DIR_IN_USE') {
  constructor(dir: string, options?: ErrorOptions) {
    super(`data folder ${dir} is in use by another agent; stop it or pass a different --data`, options)
  }
}

/** What a request names (a rollout, a component, a file) does not exist here. */
export class NotFoundError extends errorClass('ERR_NOT_FOUND') {}

/** A request's argument is malformed or out of range; the message names it and the range. */
export class BadRequestError extends errorClass('ERR_BAD_REQUEST') {}

/** A key or secret file would be overwritten; they never are. */
export class FileExistsError extends errorClass('ERR_FILE_EXISTS') {
  constructor(path: string) {
    super(`${path} already exists; remove it first or pick another name`)
  }
}

/** The peer closed a stream before a whole frame arrived. */
export class StreamClosedError extends errorClass('ERR_STREAM_CLOSED') {}

/** The message of an unknown thrown value, for logs and error bodies. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
