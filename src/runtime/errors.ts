import { errorClass, ShoalError } from '../shared/index.js'

/** A component descriptor that breaks its schema; the message names the artifact and the field. */
export class DescriptorError extends errorClass('ERR_MANIFEST_INVALID') {
  constructor(artifact: string, detail: string) {
    super(`component ${artifact}: ${detail}`)
  }
}

/** A component package refused as it is: unsafe, too large, or not a tarball at all. */
export abstract class PackageError extends ShoalError {}

/** A package entry that would land outside its folder, or a link, device or other exotic type. */
export class PackageUnsafeError extends PackageError {
  static readonly code = 'ERR_PACKAGE_UNSAFE'
  declare readonly code: typeof PackageUnsafeError.code

  constructor(message: string) {
    super(PackageUnsafeError.code, message)
  }
}

/** A package over the unpack limits (bytes, files, path length). */
export class PackageTooLargeError extends PackageError {
  static readonly code = 'ERR_PACKAGE_TOO_LARGE'
  declare readonly code: typeof PackageTooLargeError.code

  constructor(message: string) {
    super(PackageTooLargeError.code, message)
  }
}

/** A package that is not a (gzipped) tarball, or a truncated one. */
export class PackageInvalidError extends PackageError {
  static readonly code = 'ERR_PACKAGE_INVALID'
  declare readonly code: typeof PackageInvalidError.code

  constructor(message: string, options?: ErrorOptions) {
    super(PackageInvalidError.code, message, options)
  }
}

/** Where a component is to be unpacked, something other than a folder is in the way. */
export class UnpackDestinationError extends errorClass('ERR_UNPACK_DEST') {
  constructor(dest: string) {
    super(`${dest} exists and is not a folder; remove it to reinstall`)
  }
}

/** This node cannot run the OSGi framework (no Java, no framework jar), or it did not start. */
export class OsgiUnavailableError extends errorClass('ERR_OSGI_UNAVAILABLE') {}

/** The OSGi framework did not reach the wanted bundles (the previous set was restored). */
export class OsgiBundleError extends errorClass('ERR_OSGI_BUNDLE') {}

/** A management request to the OSGi framework failed: refused, unanswered in time, or its connection closed. */
export class OsgiError extends errorClass('ERR_OSGI') {}
