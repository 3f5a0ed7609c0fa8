import { HISTORY_LENGTH } from './constants.js'
import { type ClusterState, MAX_UNPUBLISHED, type UnpublishedVersion } from './record.js'
import { isFinished } from './rollout-engine.js'

/** What the manager knows of one node's versions (from its member metadata). */
export interface NodeVersions {
  id: string
  /** The version it runs, and the one it is switching to. */
  active: string | null
  target: string | null
}

/**
 * Why `id` may not be unpublished, or null when it may: it is the version the
 * cluster wants (for every node or some), a node runs or is switching to it, or a
 * rollout or rollback of the newest HISTORY_LENGTH moved to it or from it (what a
 * rollback goes back to; older ones are the audit trail only).
 */
export function whyInUse(state: ClusterState, nodes: readonly NodeVersions[], id: string): string | null {
  if (state.defaultTarget === id) return 'is the version the cluster runs'
  const targeted = Object.entries(state.targets).find(([, target]) => target === id)
  if (targeted != null) return `is the version the cluster wants on node ${targeted[0]}`
  const node = nodes.find((n) => n.active === id || n.target === id)
  if (node != null) return `${node.active === id ? 'runs' : 'is being installed'} on node ${node.id}`
  const rollout = state.rollouts.slice(0, HISTORY_LENGTH).find((r) => r.distribution === id || r.from === id)
  if (rollout != null) {
    const how = rollout.distribution === id ? 'moved the cluster to it' : 'moved the cluster from it'
    return `is kept for rollback: ${rollout.kind} ${rollout.id} (${isFinished(rollout) ? rollout.state : 'in progress'}) ${how}`
  }
  return null
}

/** The state with `entry` first in its unpublished list (bounded: the oldest go). */
export function withUnpublished(state: ClusterState, entry: UnpublishedVersion): ClusterState {
  const rest = (state.unpublished ?? []).filter((u) => u.id !== entry.id)
  return { ...state, unpublished: [entry, ...rest].slice(0, MAX_UNPUBLISHED) }
}
