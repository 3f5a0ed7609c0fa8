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

/**
 * The OSGi frameworks a node can run bundles in (docs/osgi.md): Eclipse Equinox
 * 3.18 (OSGi R8; the default: Debian's Declarative Services run on it) or Apache
 * Felix 4.6.1 (R6; no Declarative Services).
 */
export const OSGI_FRAMEWORKS = ['equinox', 'felix'] as const
export type OsgiFramework = (typeof OSGI_FRAMEWORKS)[number]
export const DEFAULT_OSGI_FRAMEWORK: OsgiFramework = 'equinox'
