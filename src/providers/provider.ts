import type { TimerPreset } from '../shared/index.js'
import type { Releases } from './releases.js'

/** What a new node needs to join the cluster: everything but its own identity. */
export interface NodeSpec {
  cluster: string
  /** Path of the cluster secret on the launching machine (providers copy or pass it on). */
  secretFile: string | null
  /** Paths of trusted publisher keys on the launching machine. */
  trust: string[]
  /** Multiaddrs of members to join through. */
  bootstrap: string[]
  roles: string[]
  tags: Record<string, string>
  preset: TimerPreset
  mdns: boolean
  /** The launcher's API tokens file: local nodes get it too, and then serve their API beside libp2p. */
  tokensFile: string | null
}

export type LaunchState = 'launching' | 'running' | 'terminating' | 'terminated' | 'failed'

/** A node a provider started: kept durably by the agent that launched it. */
export interface LaunchedNode {
  provider: string
  /** The provider's name for it (local: its data folder; static: host:folder; ec2: instance id). */
  handle: string
  /** Its peer id, once it started. */
  id: string | null
  /** Its admin API, when the provider knows it. */
  api: string | null
  state: LaunchState
  launchedBy: string
  launchedAt: string
  error: string | null
  roles: string[]
  tags: Record<string, string>
}

/**
 * An infrastructure provider: starts and stops machines (or processes) that run
 * `shoal agent` with a given spec. `launch` resolves once the agent process runs
 * (not once it joined: the caller watches the membership for that).
 */
export interface Provider {
  readonly name: string
  /** The launcher's own Shoal release, for providers whose nodes download it (ec2). */
  readonly releases?: Releases | undefined
  launch(spec: NodeSpec, progress: (step: string) => void): Promise<LaunchedNode>
  /** Stops the node for good (it was asked to leave first; this makes sure it is gone). */
  terminate(node: Pick<LaunchedNode, 'handle'>, progress: (step: string) => void): Promise<void>
}

/** The record of a node a provider has just started. */
export function launchedNode(
  provider: string,
  launchedBy: string,
  spec: NodeSpec,
  node: { handle: string; id: string | null; api: string | null },
): LaunchedNode {
  return {
    provider,
    ...node,
    state: 'running',
    launchedBy,
    launchedAt: new Date().toISOString(),
    error: null,
    roles: spec.roles,
    tags: spec.tags,
  }
}
