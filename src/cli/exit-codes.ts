import { CommanderError } from 'commander'
import { messageOf, OptionError, PortInUseError, ShoalError } from '../shared/index.js'
import {
  AgentError,
  AgentUnreachableError,
  NotAnAgentError,
  OperationFailedError,
  UNEXPECTED,
  UsageError,
  WaitTimeoutError,
} from './errors.js'

/**
 * What `shoal` exits with: scripts branch on these (docs/cli.md, `shoal --help`).
 * Every failure reaches `exitCodeOf` through the one handler in main.ts.
 */
export const EXIT = {
  /** The command did what it was asked; with --wait, the rollout or node operation succeeded. */
  ok: 0,
  /** It ran and failed: a rollout failed, was rolled back, aborted or superseded; a node operation failed; verify found corrupt blobs; a local file was bad. */
  failed: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. Nothing was sent. */
  usage: 2,
  /** No agent answered at --api / SHOAL_API: connection refused, no such host, timed out, or something else answered (ERR_NOT_AN_AGENT). */
  unreachable: 3,
  /** The agent refused the request (HTTP 4xx): bad or missing token, unknown rollout or distribution, conflicting state. */
  rejected: 4,
  /** The agent failed to do it (HTTP 5xx): no manager or quorum, provider error, internal error. */
  agentError: 5,
  /** --wait / --watch gave up after --timeout; the work may still be going on. */
  timeout: 6,
} as const

/** The exit codes as `shoal --help` and docs/cli.md list them. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success (with --wait: the rollout or node operation succeeded)
  1  the operation failed (rollout failed, rolled back, aborted or superseded;
     node operation failed; verify found corrupt blobs; a bad local file)
  2  usage error: unknown command or option, missing or malformed argument
  3  cannot reach the agent (--api / SHOAL_API): refused, unresolvable, timed out,
     or the address is not an agent's API (a load balancer, a metrics port)
  4  rejected by the agent (HTTP 4xx): token, unknown id or name, conflicting state
  5  the agent failed (HTTP 5xx): no manager or quorum, provider error
  6  --wait or --watch gave up after --timeout (the work may still be going on)`

export function exitCodeOf(err: unknown): number {
  // Commander's own usage errors, and --help / --version (exit code 0).
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
  if (err instanceof UsageError || err instanceof OptionError) return EXIT.usage
  if (err instanceof AgentUnreachableError || err instanceof NotAnAgentError) return EXIT.unreachable
  if (err instanceof AgentError) return err.status >= 500 ? EXIT.agentError : EXIT.rejected
  if (err instanceof WaitTimeoutError) return EXIT.timeout
  return EXIT.failed
}

/**
 * A system error a listener raised with no Shoal error around it (the load
 * balancer's or metrics port taken), as the operator's problem; other errors as they are.
 */
export function operatorError(err: unknown): unknown {
  const sys = err as NodeJS.ErrnoException & { address?: string; port?: number }
  if (
    sys instanceof Error &&
    !(sys instanceof ShoalError) &&
    sys.code === 'EADDRINUSE' &&
    sys.syscall === 'listen'
  )
    return new PortInUseError(
      `cannot listen on ${sys.address ?? ''}:${sys.port ?? ''}: the port is in use by another process; stop it or choose another port`,
      { cause: err },
    )
  return err
}

/**
 * One line, never a stack trace: what a library wrote across several lines
 * (causes, "    at …" frames) is folded into one, frames left out.
 */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .filter((line) => !/^\s+at /.test(line))
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ')
}

/** The `{"error": {...}}` object printed with --json, shaped like the API's errors. */
export function errorObject(err: unknown): { error: Record<string, unknown> } {
  if (err instanceof CommanderError) {
    const message =
      err.code === 'commander.help' ? 'a command is missing; see --help' : err.message.replace(/^error: /, '')
    return { error: { code: UsageError.code, message } }
  }
  const code =
    err instanceof ShoalError
      ? err.code
      : typeof (err as { code?: unknown })?.code === 'string'
        ? (err as { code: string }).code
        : UNEXPECTED
  return {
    error: {
      code,
      message: oneLine(messageOf(err)),
      ...(err instanceof AgentError ? { status: err.status } : {}),
      ...(err instanceof OperationFailedError ? err.detail : {}),
    },
  }
}

/**
 * Reports a failure on stderr and answers the exit code: `error: MESSAGE (CODE)`,
 * or with --json the error object on one line. Commander has already printed
 * its own usage errors (unless --json silenced it).
 */
export function reportError(thrown: unknown, json: boolean): number {
  const err = operatorError(thrown)
  const exitCode = exitCodeOf(err)
  if (exitCode === EXIT.ok) return exitCode
  if (json) {
    process.stderr.write(`${JSON.stringify(errorObject(err))}\n`)
  } else if (!(err instanceof CommanderError)) {
    const { code, message } = errorObject(err).error
    process.stderr.write(`error: ${String(message)} (${String(code)})\n`)
  }
  return exitCode
}
