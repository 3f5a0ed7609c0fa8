import { ShoalError } from '../shared/index.js'

/** The manifest is unsigned, signed by an untrusted key, or the signature does not verify. */
export class ManifestSignatureError extends ShoalError {
  constructor(message: string) {
    super('ERR_MANIFEST_SIGNATURE', message, 403)
    this.name = 'ManifestSignatureError'
  }
}

/** The manifest does not follow the schema (fields, names, paths, sizes). */
export class ManifestInvalidError extends ShoalError {
  constructor(message: string) {
    super('ERR_MANIFEST_INVALID', message, 400)
    this.name = 'ManifestInvalidError'
  }
}

export class VersionExistsError extends ShoalError {
  constructor(id: string) {
    super(
      'ERR_VERSION_EXISTS',
      `${id} is already published with other content; publish a new version instead`,
      409,
    )
    this.name = 'VersionExistsError'
  }
}

export class ArtifactMissingError extends ShoalError {
  constructor(readonly missing: string[]) {
    super(
      'ERR_ARTIFACT_MISSING',
      `the agent does not hold ${missing.length} artifact(s) of this manifest (${missing
        .slice(0, 3)
        .map((h) => h.slice(0, 12))
        .join(', ')}…); upload them first`,
      409,
    )
    this.name = 'ArtifactMissingError'
  }
}

export class ArtifactTooLargeError extends ShoalError {
  constructor(size: number, limit: number) {
    super(
      'ERR_ARTIFACT_TOO_LARGE',
      `artifact of ${size} bytes exceeds this agent's limit of ${limit} bytes`,
      413,
    )
    this.name = 'ArtifactTooLargeError'
  }
}

/** Bytes did not hash to what they were announced as. */
export class ArtifactCorruptError extends ShoalError {
  constructor(message: string) {
    super('ERR_ARTIFACT_CORRUPT', message, 422)
    this.name = 'ArtifactCorruptError'
  }
}

export class UnknownDistributionError extends ShoalError {
  constructor(id: string) {
    super('ERR_UNKNOWN_DISTRIBUTION', `no distribution ${id} is known to this agent`, 404)
    this.name = 'UnknownDistributionError'
  }
}
