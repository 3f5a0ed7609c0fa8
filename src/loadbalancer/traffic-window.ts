// The traffic window lives in src/shared (the manager judges by it too); kept here for imports in flight.
export {
  bucketBoundMs,
  bucketValueMs,
  KEEP_SECONDS,
  LATENCY_BUCKETS,
  latencyBucket,
  TrafficRecorder,
  type TrafficSecond,
} from '../shared/index.js'
