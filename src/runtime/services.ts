import type { Member } from '../membership/index.js'

/** One ready instance of a service somewhere in the cluster. */
export interface Endpoint {
  node: string
  component: string
  version: string
  endpoint: string
  /** Runs on the node that answered. */
  local: boolean
}

interface PublishedComponent {
  name?: unknown
  version?: unknown
  state?: unknown
  endpoint?: unknown
  provides?: unknown
}

/**
 * The ready endpoints of `service` in a membership view, from the components
 * each alive member publishes: this node's own first, then by node id, so
 * every caller gets a stable order.
 */
export function endpointsOf(members: readonly Member[], service: string): Endpoint[] {
  const found: Endpoint[] = []
  for (const member of members) {
    if (member.state !== 'alive' || !Array.isArray(member.meta.components)) continue
    for (const c of member.meta.components as PublishedComponent[]) {
      const provides = Array.isArray(c.provides) ? c.provides : [c.name]
      if (c.state !== 'ready' || typeof c.endpoint !== 'string' || !provides.includes(service)) continue
      found.push({
        node: member.id,
        component: String(c.name),
        version: String(c.version),
        endpoint: c.endpoint,
        local: member.self,
      })
    }
  }
  return found.sort((a, b) => Number(b.local) - Number(a.local) || a.node.localeCompare(b.node))
}
