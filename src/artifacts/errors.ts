import { errorClass } from '../shared/index.js'

/**
 * The manager's UnknownDistributionError, here too: this agent's store refuses an
 * unknown version with the same class (its home is src/manager/errors.ts, below artifacts).
 */
export { UnknownDistributionError } from '../manager/index.js'

/** The manifest is unsigned, signed by an untrusted key, or the signature does not verify. */
export class ManifestSignatureError extends errorClass('ERR_MANIFEST_SIGNATURE') {}

/** The manifest does not follow the schema (fields, names, paths, sizes). */
export class ManifestInvalidError extends errorClass('ERR_MANIFEST_INVALID') {}

export class VersionExistsError extends errorClass('ERR_VERSION_EXISTS') {
  constructor(id: string) {
    super(`${id} is already published with other content; publish a new version instead`)
  }
}

/** The agent lacks artifacts the manifest lists: upload them first. */
export class ArtifactMissingError extends errorClass('ERR_ARTIFACT_MISSING') {
  constructor(readonly missing: string[]) {
    super(
      `the agent does not hold ${missing.length} artifact(s) of this manifest (${missing
        .slice(0, 3)
        .map((h) => h.slice(0, 12))
        .join(', ')}…); upload them first`,
    )
  }
}

export class ArtifactTooLargeError extends errorClass('ERR_ARTIFACT_TOO_LARGE') {
  constructor(size: number, limit: number) {
    super(`artifact of ${size} bytes exceeds this agent's limit of ${limit} bytes`)
  }
}

/** Bytes did not hash to what they were announced as. */
export class ArtifactCorruptError extends errorClass('ERR_ARTIFACT_CORRUPT') {}

/** No reachable peer holds the chunks still missing; the fetch is retried later. */
export class NoSourceError extends errorClass('ERR_NO_SOURCE') {
  constructor(hash: string, missing: number) {
    super(`no reachable peer holds the ${missing} missing chunk(s) of ${hash.slice(0, 12)}; will retry`)
  }
}

/** `shoal publish` got a path that does not exist or is not a folder. */
export class ReleaseFolderError extends errorClass('ERR_RELEASE_FOLDER') {}

/** A key file that cannot be read or holds no ed25519 key of the kind wanted. */
export class KeyInvalidError extends errorClass('ERR_KEY_INVALID') {}
