/**
 * Shared: small building blocks every subsystem uses (errors, logger, typed events,
 * JSON frames and stream RPC, files, ports, units, the version, the timer presets).
 * They depend on nothing else in src/.
 */
export * from './canonical-json.js'
export * from './cluster-name.js'
export * from './errors.js'
export * from './files.js'
export * from './http-listener.js'
export * from './instance-key.js'
export * from './json-frames.js'
export * from './lifecycle.js'
export * from './logger.js'
export * from './ports.js'
export * from './presets.js'
export * from './random-pick.js'
export * from './stream-rpc.js'
export {
  figuresOf,
  type GatheredTraffic,
  mergeSeconds,
  percentile,
  type TrafficFigures,
  type TrafficSource,
} from './traffic-figures.js'
export {
  bucketBoundMs,
  bucketValueMs,
  KEEP_SECONDS,
  LATENCY_BUCKETS,
  latencyBucket,
  TrafficRecorder,
  type TrafficSecond,
} from './traffic-window.js'
export * from './typed-events.js'
export * from './units.js'
export * from './version.js'
