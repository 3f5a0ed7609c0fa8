import { errorClass } from '../shared/index.js'

/** A provider could not launch, reach or terminate a node; the message names the provider and the cause. */
export class ProviderError extends errorClass('ERR_PROVIDER') {
  constructor(provider: string, message: string) {
    super(`${provider} provider: ${message}`)
  }
}

/** A provider failure that came from the EC2 API: `awsError` is the AWS error name. */
export class Ec2ProviderError extends ProviderError {
  constructor(
    readonly awsError: string | null,
    message: string,
  ) {
    super('ec2', message)
  }
}

/** The agent has no provider of that name (or not the one that launched the node). */
export class UnknownProviderError extends errorClass('ERR_UNKNOWN_PROVIDER') {}

/** An id's end that matches more than one member: give more of it. */
export class AmbiguousIdError extends errorClass('ERR_AMBIGUOUS') {
  constructor(id: string, matches: number) {
    super(`"${id}" matches ${matches} members; give more of its id`)
  }
}

/** A launched node was not ready in time, or a removed one did not leave in time. */
export class NodeTimeoutError extends errorClass('ERR_TIMEOUT') {}

/** The URL was not signed by this agent (or was altered, or by an agent since restarted). */
export class ReleaseUrlSignatureError extends errorClass('ERR_RELEASE_URL_SIGNATURE') {
  constructor() {
    super(
      'this release URL was not signed by this agent (altered, or issued before the agent restarted); launch the node again',
    )
  }
}

/** The URL was signed here but its time is up. */
export class ReleaseUrlExpiredError extends errorClass('ERR_RELEASE_URL_EXPIRED') {
  constructor(expiresAt: number) {
    super(
      `this release URL expired at ${new Date(expiresAt).toISOString()}; launch the node again for a new one (ec2.releaseUrlTtlMs sets how long URLs live)`,
    )
  }
}

/** The tarball could not be made (a package root without a build, an unreadable file). */
export class ReleasePackError extends errorClass('ERR_RELEASE_PACK') {
  constructor(message: string) {
    super(`cannot pack this agent's Shoal release: ${message}`)
  }
}
