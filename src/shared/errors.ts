/**
 * Errors a caller can act on carry a stable `code`. Tests assert on codes, the API
 * maps them to HTTP statuses and `{"error":{"code","message"}}`, the CLI prints the
 * message and exits non-zero.
 */
export class ShoalError extends Error {
  readonly code: string
  /** HTTP status the API answers with when this error reaches it. */
  readonly status: number

  constructor(code: string, message: string, status = 500, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ShoalError'
    this.code = code
    this.status = status
  }
}

export class ConfigError extends ShoalError {
  constructor(message: string) {
    super('ERR_CONFIG', message, 400)
    this.name = 'ConfigError'
  }
}

/**
 * A malformed option value (a command-line flag, or the `AgentOptions` field it
 * fills): nothing was started, and the CLI exits 2 as for any usage error.
 */
export class OptionError extends ShoalError {
  constructor(message: string, code = 'ERR_CONFIG') {
    super(code, message, 400)
    this.name = 'OptionError'
  }
}

/** A TCP port this process was to listen on is held by another process. */
export class PortInUseError extends ShoalError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_PORT_IN_USE', message, 409, options)
    this.name = 'PortInUseError'
  }
}

export class DataDirInUseError extends ShoalError {
  constructor(dir: string, options?: ErrorOptions) {
    super(
      'ERR_DATA_DIR_IN_USE',
      `data folder ${dir} is in use by another agent; stop it or pass a different --data`,
      409,
      options,
    )
    this.name = 'DataDirInUseError'
  }
}

export class NotFoundError extends ShoalError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', message, 404)
    this.name = 'NotFoundError'
  }
}

/** The message of an unknown thrown value, for logs and error bodies. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
