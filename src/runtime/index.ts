/**
 * Runtime: installs the components of the version this node should run, runs
 * them as supervised processes with health checks, publishes their states and
 * endpoints in member metadata, and switches versions crash-safely.
 */
export {
  type AnnouncedInstance,
  DEFAULT_WEIGHT,
  instancesOf,
  type PublishedComponent,
  type RuntimeAnnouncement,
  runtimeAnnouncement,
} from './announcement.js'
export { DEFAULT_RUNTIME_LIMITS } from './constants.js'
export {
  type ComponentDescriptor,
  componentDescriptorSchema,
  componentsOf,
  parseDescriptor,
} from './descriptor.js'
export {
  DescriptorError,
  OsgiBundleError,
  OsgiError,
  OsgiUnavailableError,
  PackageError,
  PackageInvalidError,
  PackageTooLargeError,
  PackageUnsafeError,
  UnpackDestinationError,
} from './errors.js'
export { osgiConfigOf } from './osgi/osgi-config.js'
export type { DsComponentStatus } from './osgi/osgi-ds.js'
export {
  Runtime,
  type RuntimeComponents,
  type RuntimeConfig,
  type RuntimeEvents,
  type RuntimeInit,
  type RuntimePhase,
  type RuntimeStatus,
  type SwitchTiming,
} from './runtime.js'
export { type Endpoint, endpointsOf } from './services.js'
export { COMPONENT_STATES, type ComponentState, type ComponentStatus } from './supervisor.js'
export { DEFAULT_UNPACK_LIMITS, type UnpackLimits } from './unpack.js'
