import { type Member, type MemberState, rolesOf } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'

/** One entry of `GET /api/members` and `shoal members --json` (the contract in DESIGN.md). */
export interface MemberView {
  id: string
  state: MemberState
  addrs: string[]
  manager: boolean
  ready: boolean
  distribution: string | null
  components: Array<{ name: string; version: string; state: string; endpoint: string | null }>
  roles: string[]
  incarnation: number
  self: boolean
  /** When this view last saw the state change (ISO time, local clock). */
  since: string
  meta: Record<string, unknown>
}

export interface StatusView {
  id: string
  cluster: string
  addrs: string[]
  state: MemberState
  incarnation: number
  manager: string | null
  /** The election as this node sees it: term, quorum, voters. */
  managerStatus: unknown
  /** True when the cluster has no secret: anyone who can reach it may join. */
  open: boolean
  members: Record<MemberState, number> & { total: number }
  distribution: string | null
  /** This node's component runtime: active and target version, phase, components. */
  runtime: unknown
  rollouts: unknown[]
  health: number
  distributions: { known: number; complete: number }
  transfer: unknown
  traffic: { sentBytes: number; receivedBytes: number }
  uptimeSeconds: number
  version: string
  config: unknown
}

/** `manager` is the id of the manager this node follows, if any. */
export function memberView(member: Member, manager: string | null = null): MemberView {
  const { ready, distribution = null, components = [] } = runtimeAnnouncement.of(member)
  return {
    id: member.id,
    state: member.state,
    addrs: member.addrs,
    manager: manager != null && member.id === manager,
    // A member is ready when it is alive and its runtime has not said otherwise.
    ready: member.state === 'alive' && ready !== false,
    distribution,
    // As announced (instance, error, provides and weight included), like `meta`.
    components: components.map((c) => ({ ...c, endpoint: c.endpoint ?? null })),
    roles: [...rolesOf(member)],
    incarnation: member.incarnation,
    self: member.self,
    since: new Date(member.since).toISOString(),
    meta: member.meta,
  }
}

export function countStates(members: Member[]): StatusView['members'] {
  const counts = { total: members.length, alive: 0, suspect: 0, dead: 0, left: 0 }
  for (const member of members) counts[member.state]++
  return counts
}
