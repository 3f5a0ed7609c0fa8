import type { Member } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'
import { RETAINED_ROLLOUTS } from './constants.js'
import type { ClusterState } from './record.js'

/**
 * Versions retention keeps whatever their age: what any member runs (this node
 * included), what this node is switching to, what the cluster wants, and both ends
 * of the newest rollouts. This node's own versions are read from what its runtime
 * announces, like everyone else's, so the policy needs no runtime of its own.
 */
export function versionsInUse(state: ClusterState, members: readonly Member[]): Set<string> {
  const ids = new Set<string>()
  const add = (id: string | null | undefined) => {
    if (id != null) ids.add(id)
  }
  for (const member of members) {
    const announced = runtimeAnnouncement.of(member)
    add(announced.distribution)
    if (member.self) add(announced.runtime?.target)
  }
  add(state.defaultTarget)
  for (const id of Object.values(state.targets)) add(id)
  for (const r of state.rollouts.slice(0, RETAINED_ROLLOUTS)) {
    add(r.distribution)
    add(r.from)
  }
  return ids
}

/** The artifacts' `protectedVersions`: versions in use as the cluster state and the members say now. */
export function retentionGuard(components: {
  store: { current(): ClusterState }
  members(): Member[]
}): () => Set<string> {
  return () => versionsInUse(components.store.current(), components.members())
}
