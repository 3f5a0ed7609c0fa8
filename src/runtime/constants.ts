import type { RuntimeConfig } from './runtime.js'

/**
 * Runtime defaults. Backoff doubles from 500 ms up to 30 s, as most supervisors
 * do (systemd's RestartSec, Kubernetes' CrashLoopBackOff cap of 5 min is for
 * fleets that can wait); 5 crashes in a row without a 30 s stable run is a crash
 * loop, reported `failed` instead of retried forever.
 */
export const DEFAULT_RUNTIME_CONFIG: RuntimeConfig = {
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  crashLoopLimit: 5,
  stableAfterMs: 30_000,
  startTimeoutMs: 60_000,
  unhealthyAfter: 3,
  drainTimeoutMs: 30_000,
  unpack: { maxBytes: 512 * 1024 * 1024, maxFiles: 10_000 },
  logMaxBytes: 1024 * 1024,
  logKeep: 3,
}

/** Short timers for tests: a crash loop is detected in about a second. */
export const TEST_RUNTIME_CONFIG: RuntimeConfig = {
  ...DEFAULT_RUNTIME_CONFIG,
  backoffBaseMs: 100,
  backoffMaxMs: 400,
  crashLoopLimit: 3,
  stableAfterMs: 2000,
  startTimeoutMs: 15_000,
  drainTimeoutMs: 5000,
}
