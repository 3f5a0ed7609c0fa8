import type { Member } from '../membership/index.js'
import { instancesOf } from './announcement.js'

/** One ready instance of a service somewhere in the cluster. */
export interface Endpoint {
  node: string
  component: string
  version: string
  endpoint: string
  /** Runs on the node that answered. */
  local: boolean
}

/**
 * The ready endpoints of `service` in a membership view, from the components
 * each alive member publishes: this node's own first, then by node id, so
 * every caller gets a stable order.
 */
export function endpointsOf(members: readonly Member[], service: string): Endpoint[] {
  return instancesOf(members, service, ['ready'])
    .map(({ member, component, endpoint }) => ({
      node: member.id,
      component: component.name,
      version: component.version,
      endpoint,
      local: member.self,
    }))
    .sort((a, b) => Number(b.local) - Number(a.local) || a.node.localeCompare(b.node))
}
