import type { RuntimeConfig } from './runtime.js'
import { DEFAULT_UNPACK_LIMITS } from './unpack.js'

/**
 * The runtime's limits that no preset changes. Its timers (restart backoff, crash
 * loop, start and drain timeouts) come from the preset table, src/shared/presets.ts.
 */
export const DEFAULT_RUNTIME_LIMITS: Pick<RuntimeConfig, 'unpack' | 'logMaxBytes' | 'logKeep'> = {
  unpack: { ...DEFAULT_UNPACK_LIMITS },
  logMaxBytes: 1024 * 1024,
  logKeep: 3,
}
