import { type ErrorCode, errorClass, ShoalError } from '../shared/index.js'

/**
 * The CLI's own failures. Each maps to an exit code in exit-codes.ts; the agent's
 * answers come back as AgentError with the code and status from the wire.
 */

/** A bad command line found after parsing (exit code 2). */
export class UsageError extends errorClass('ERR_USAGE') {}

/** --wait or --watch ran out of time (exit code 6). */
export class WaitTimeoutError extends errorClass('ERR_TIMEOUT') {}

/** The operation ended and failed (exit code 1); `detail` joins the JSON error (e.g. the rollout). */
export abstract class OperationFailedError extends ShoalError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(code, message)
  }
}

/** A followed rollout ended other than `done`; the JSON error carries the rollout. */
export class RolloutFailedError extends OperationFailedError {
  static readonly code = 'ERR_ROLLOUT_FAILED'
  declare readonly code: typeof RolloutFailedError.code

  constructor(message: string, detail: Record<string, unknown>) {
    super(RolloutFailedError.code, message, detail)
  }
}

/** A followed node operation (add, copy, remove) failed; the JSON error carries the operation. */
export class NodeOperationFailedError extends OperationFailedError {
  static readonly code = 'ERR_NODE_OPERATION'
  declare readonly code: typeof NodeOperationFailedError.code

  constructor(message: string, detail: Record<string, unknown> = {}) {
    super(NodeOperationFailedError.code, message, detail)
  }
}

/** The demo's agents or its load balancer did not come up in time. */
export class DemoTimeoutError extends errorClass('ERR_DEMO_TIMEOUT') {}

/**
 * The agent answered with an error: the code and message from the wire, and the
 * HTTP status (exit code 4 or 5). Test its code with `hasCode(err, TheClass)`.
 */
export class AgentError extends ShoalError {
  constructor(
    code: ErrorCode,
    message: string,
    /** The HTTP status it answered with. */
    readonly status: number,
  ) {
    super(code, message)
  }
}

/** No answer from the agent: refused, unresolvable or timed out (exit code 3). */
export class AgentUnreachableError extends errorClass('ERR_AGENT_UNREACHABLE') {
  constructor(baseUrl: string, cause: unknown) {
    const detail = (cause as Error).cause ?? (cause as Error).message ?? String(cause)
    super(
      `cannot reach an agent at ${baseUrl} (${String(detail)}); is "shoal agent" running? Point to it with --api or SHOAL_API`,
    )
  }
}

/**
 * The address answers, but not as a Shoal agent's API: a load balancer, a metrics
 * port, an application. Nothing was sent with the token (exit code 3, like no agent there).
 */
export class NotAnAgentError extends errorClass('ERR_NOT_AN_AGENT') {
  constructor(baseUrl: string, what: string) {
    super(
      `${baseUrl} ${what}; pass --api with an agent's API address (shoal agent --api, default http://127.0.0.1:7070)`,
    )
  }
}

/** The code of an answer that was not `{"error":{"code"}}` (HTTP status only). */
export const HTTP_ERROR = 'ERR_HTTP' satisfies ErrorCode

/** The code printed for a thrown value that is not an error with a code. */
export const UNEXPECTED = 'ERR_UNEXPECTED' satisfies ErrorCode
