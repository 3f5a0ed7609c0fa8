import type { ComponentDescriptor } from '../descriptor.js'
import type { ComponentStatus } from '../supervisor.js'
import type { WantedBundle } from './bundle-plan.js'
import type { OsgiComponentState } from './osgi-host.js'

/** Start level of a bundle whose descriptor names none. */
export const DEFAULT_START_LEVEL = 10

/** A component that runs as a bundle in the node's OSGi framework, not as a process. */
export function isOsgi(descriptor: ComponentDescriptor): boolean {
  return 'osgi' in descriptor.start
}

function startLevelOf(descriptor: ComponentDescriptor): number {
  const start = descriptor.start as { osgi?: { startLevel?: number } }
  return start.osgi?.startLevel ?? DEFAULT_START_LEVEL
}

interface ArtifactLike {
  kind: string
  sha256: string
  descriptor?: Record<string, unknown> | undefined
}

/** The bundles of a version placed on this node: each jar straight from the store (verified, immutable). */
export function wantedBundles(
  id: string,
  artifacts: readonly ArtifactLike[],
  descriptors: ReadonlyMap<string, ComponentDescriptor>,
  placed: (name: string) => boolean,
  blobPath: (sha256: string) => string,
  versionOf: (descriptor: ComponentDescriptor) => string,
): WantedBundle[] {
  const bundles: WantedBundle[] = []
  for (const artifact of artifacts) {
    const descriptor = descriptors.get(String(artifact.descriptor?.name))
    if (
      artifact.kind !== 'component' ||
      descriptor == null ||
      !isOsgi(descriptor) ||
      !placed(descriptor.name)
    )
      continue
    bundles.push({
      name: descriptor.name,
      sha256: artifact.sha256,
      path: blobPath(artifact.sha256),
      startLevel: startLevelOf(descriptor),
      version: versionOf(descriptor),
      distribution: id,
    })
  }
  return bundles
}

/** A bundle shown as a component: ACTIVE is ready; its pid is the framework's. */
export function bundleStatus(state: OsgiComponentState, pid: number | null): ComponentStatus {
  return {
    name: state.name,
    version: state.version,
    distribution: state.distribution,
    state: state.state,
    instance: 0,
    pid,
    port: null,
    endpoint: null,
    provides: [state.name],
    restarts: 0,
    lastExit: null,
    error: state.error,
    since: new Date().toISOString(),
  }
}
