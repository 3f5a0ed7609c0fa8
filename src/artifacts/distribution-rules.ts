import { type PlacementSpec, parsePlacement } from '../manager/index.js'
import { type ComponentDescriptor, componentsOf, osgiConfigOf } from '../runtime/index.js'
import { ManifestInvalidError } from './errors.js'

/**
 * Largest `config` a version may carry, as JSON bytes. Components get it in their
 * environment (`SHOAL_CONFIG`), and Linux refuses to start a process with one
 * environment string over 128 KiB (MAX_ARG_STRLEN): half of that leaves room for
 * the rest of the environment.
 */
export const MAX_CONFIG_BYTES = 64 * 1024

/** What the rules read of a manifest (or of the draft `shoal publish` builds from a folder). */
export interface DistributionContent {
  artifacts: ReadonlyArray<{ name: string; kind: string; descriptor?: Record<string, unknown> | undefined }>
  config: unknown
  placement?: unknown
}

/** A version's components and placement, as the runtime and the manager will read them. */
export interface DistributionLayout {
  components: Map<string, ComponentDescriptor>
  placement: PlacementSpec
}

/**
 * The rules a version must meet to be rolled out, beyond the manifest's schema:
 * only components carry a descriptor, each descriptor is one the runtime can run
 * (names unique), the placement rules name those components, and the config fits
 * in a component's environment. The one check `shoal publish` (before it uploads
 * anything), the agent (when a version is published to it) and a rollout apply.
 * Throws ERR_MANIFEST_INVALID naming the field.
 */
export function checkDistribution(content: DistributionContent): DistributionLayout {
  for (const [i, artifact] of content.artifacts.entries()) {
    if (artifact.kind !== 'component' && artifact.descriptor != null)
      throw new ManifestInvalidError(
        `artifacts.${i} (${artifact.name}).descriptor: only a component has a descriptor; give it "kind": "component", or drop the descriptor`,
      )
  }
  const components = componentsOf(content.artifacts)
  const placement = parsePlacement(content.placement, [...components.keys()])
  const config = content.config
  if (config == null || typeof config !== 'object' || Array.isArray(config))
    throw new ManifestInvalidError('config: must be an object')
  // Configuration Admin's properties by PID (docs/osgi.md): refused here, not at a node's switch.
  try {
    osgiConfigOf(config)
  } catch (err) {
    throw new ManifestInvalidError((err as Error).message)
  }
  const bytes = Buffer.byteLength(JSON.stringify(config))
  if (bytes > MAX_CONFIG_BYTES)
    throw new ManifestInvalidError(
      `config: ${bytes} bytes of JSON, over the ${MAX_CONFIG_BYTES} a component's environment can carry (SHOAL_CONFIG); ship larger configuration as a "config" artifact`,
    )
  return { components, placement }
}
