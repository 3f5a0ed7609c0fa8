/** Starting an agent: configuration, identity, durable state, the libp2p node, start/stop order. */
export { Agent, type AgentHooks, type StopOptions } from './agent.js'
export { MEMBER_METADATA } from './announcements.js'
export {
  type AgentConfig,
  type AgentOptions,
  parseHostPort,
  resolveAgentConfig,
} from './config.js'
export { DEFAULT_API, RUN_FILE } from './constants.js'
export {
  BadBootstrapError,
  ListenAddressError,
  PeerKeyInvalidError,
  PeerKeyUnreadableError,
  SecretFileError,
} from './errors.js'
export { Observer, type ObserverOptions } from './observer.js'
export type { RunInfo } from './run-file.js'
export { clusterCredential, readSecret, writeNewSecret } from './secret.js'
export type { WireTraffic } from './wire-meter.js'
