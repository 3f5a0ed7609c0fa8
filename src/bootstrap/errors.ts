import { errorClass, OptionError } from '../shared/index.js'

/**
 * What stops an agent or an observer at start, each saying what to do. None reaches
 * the API (they happen before it listens); the CLI prints the message and exits 1,
 * or 2 for an option (an `OptionError`).
 */

/** The cluster secret file is missing, unreadable or not a secret. */
export class SecretFileError extends errorClass('ERR_SECRET_FILE') {}

/** This node's key file (`peer.key`) exists but this user cannot read it. */
export class PeerKeyUnreadableError extends errorClass('ERR_PEER_KEY_UNREADABLE') {}

/** This node's key file is not a libp2p private key. */
export class PeerKeyInvalidError extends errorClass('ERR_PEER_KEY_INVALID') {
  constructor(file: string, options?: ErrorOptions) {
    super(
      `${file} is not a libp2p private key; restore it from a backup or remove it to start as a new node`,
      options,
    )
  }
}

/** libp2p cannot listen on a listen address (not this machine's, a privileged port, …). */
export class ListenAddressError extends errorClass('ERR_LISTEN_ADDRESS') {}

/** A `--bootstrap` address no node can dial: an `OptionError` (exit 2), found before anything is made. */
export class BadBootstrapError extends OptionError {
  static readonly code = 'ERR_BAD_BOOTSTRAP'
  declare readonly code: typeof BadBootstrapError.code

  constructor(addr: string, problem: string) {
    super(`--bootstrap "${addr}" ${problem}`, BadBootstrapError.code)
  }
}
