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

/**
 * A whole blob's file is shorter than the store recorded (damaged behind the
 * agent's back). The store drops the blob, so the distributor fetches it again.
 */
export class BlobTruncatedError extends errorClass('ERR_BLOB_TRUNCATED') {
  constructor(
    readonly blob: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      `blob ${blob.slice(0, 12)}… is truncated on disk (${actual} of ${expected} bytes readable); it was dropped and will be fetched again`,
    )
  }
}

/** The disk holding the blob store has no room (ENOSPC, EDQUOT) for what is being written. */
export class DiskFullError extends errorClass('ERR_DISK_FULL') {
  constructor(
    readonly dir: string,
    /** Bytes free for this user on the store's file system, -1 when unknown. */
    readonly free: number,
    /** Bytes the write still needs (the rest of the download, or at least the failed write of an upload). */
    readonly needed: number,
    what: string,
    options?: ErrorOptions,
  ) {
    super(
      `the disk holding ${dir} is full: ${free < 0 ? 'unknown space' : formatBytes(free)} free, ${formatBytes(needed)} more needed for ${what}`,
      options,
    )
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MB`
  if (n >= 1024) return `${Math.round(n / 1024)} KB`
  return `${n} bytes`
}
