/**
 * Providers: starting and stopping nodes (`local` agent processes by default),
 * the durable records of launched nodes, and the node operations any agent
 * carries out (`shoal node add|copy|remove`).
 */
export {
  HANDLE_KEY,
  PROVIDER_KEY,
  type ProvidersAnnouncement,
  providersAnnouncement,
} from './announcement.js'
export { type ConfiguredProviders, type LoadProvidersOptions, loadProviders } from './config.js'
export { discoverOnEc2, type Ec2DiscoveryInit } from './ec2-discovery.js'
export {
  AmbiguousIdError,
  Ec2ProviderError,
  NodeTimeoutError,
  ProviderError,
  ReleasePackError,
  ReleaseUrlExpiredError,
  ReleaseUrlSignatureError,
  UnknownProviderError,
} from './errors.js'
export { LocalProvider, type LocalProviderInit } from './local.js'
export {
  NodeOperations,
  type NodeOperationsComponents,
  type NodeOperationsInit,
  type NodeState,
  type Operation,
} from './operations.js'
export type {
  LaunchedNode,
  LaunchState,
  NodeSpec,
  Provider,
} from './provider.js'
export { LaunchRecords } from './records.js'
export type { ReleaseFile } from './release-pack.js'
export { type ReleaseOffer, Releases, type ReleasesInit } from './releases.js'
export { type RetireComponents, type RetireInit, Retirement } from './retire.js'
export { type StaticHost, StaticProvider, type StaticProviderInit } from './static.js'
