/**
 * Who votes: a small, odd voter set chosen among the eligible agents, changed
 * one server at a time (the Raft core refuses anything else), as Consul's
 * autopilot does:
 *
 * - the set aims at 5 voters when 5 or more eligible agents are alive, else 3
 *   when 3 or more are, else 1 (`maxVoters` caps it: 3 gives faster commits,
 *   5 survives two failures);
 * - a new voter joins as a learner first and is promoted once its log has
 *   caught up with the commit index, so it never slows a commit it cannot help;
 * - a voter that left gracefully is removed at once; one dead longer than the
 *   removal delay is replaced (its replacement promoted first, then it is
 *   removed), or removed when there is no one to replace it with;
 * - when tags name a zone (`--tag zone=…`), new voters come from zones with the
 *   fewest voters first, so one zone's outage takes the fewest voters;
 * - every other agent is not in the Raft configuration at all: it follows the
 *   committed state the leader publishes.
 *
 * Pure: the manager gives it what it sees and carries out the one change it returns.
 */
import type { Member } from '../membership/index.js'
import { isEligible } from './election.js'
import type { ClusterConfig, ConfigChange, NodeId } from './raft/index.js'

export interface VoterView {
  config: ClusterConfig
  /** The leader (this node): never demoted or removed by the policy. */
  self: NodeId
  /** Raft commit index, and each member's match index (the leader's progress). */
  commit: number
  match: Readonly<Record<NodeId, number>>
  /** Members as membership sees them. */
  members: readonly Member[]
  /** When each voter or learner was first seen dead or missing (kept by the caller). */
  goneSince: ReadonlyMap<NodeId, number>
  now: number
  removalMs: number
  maxVoters: number
}

/** How many voters `eligible` alive agents should have. */
export function voterTarget(eligible: number, maxVoters: number): number {
  const wanted = eligible >= 5 ? 5 : eligible >= 3 ? 3 : 1
  return Math.max(1, Math.min(wanted, maxVoters))
}

/** The one configuration change to make now, or null. */
export function nextVoterChange(view: VoterView): ConfigChange | null {
  const byId = new Map(view.members.map((m) => [m.id, m]))
  const state = (id: NodeId) => byId.get(id)?.state ?? 'gone'
  const usable = (id: NodeId) => {
    const m = byId.get(id)
    return m != null && m.state === 'alive' && isEligible(m)
  }
  const { voters, learners } = view.config
  // 1. Gone for good: those that left (at once), learners dead past the delay.
  // A member that took an observer role (a load balancer) may not vote either.
  const observer = (id: NodeId) => {
    const m = byId.get(id)
    return m != null && !isEligible(m)
  }
  for (const id of voters)
    if (id !== view.self && (state(id) === 'left' || observer(id))) return { op: 'remove', node: id }
  for (const id of learners)
    if (state(id) === 'left' || observer(id) || (!usable(id) && gonePast(view, id)))
      return { op: 'remove', node: id }

  // Suspected members still count: a moment of suspicion must not shrink the voter set.
  const eligible = view.members.filter(
    (m) => (m.state === 'alive' || m.state === 'suspect') && isEligible(m),
  ).length
  const target = voterTarget(eligible, view.maxVoters)
  const deadVoters = voters.filter(
    (id) => id !== view.self && state(id) !== 'alive' && state(id) !== 'suspect',
  )
  const expired = deadVoters.filter((id) => gonePast(view, id))
  // A dead voter counts until the removal delay: a restart or a short cut costs no churn.
  const healthy = voters.length - expired.length

  // 2. Too few healthy voters: bring one in (learner first, promoted once caught up).
  if (healthy < target) {
    const ready = learners.find((id) => usable(id) && (view.match[id] ?? 0) >= view.commit)
    if (ready != null) return { op: 'add-voter', node: ready }
    if (!learners.some(usable)) {
      const spare = pickSpare(view, byId)
      if (spare != null) return { op: 'add-learner', node: spare }
    }
  }
  // 3. A voter dead past the delay leaves (after its replacement, when there was one).
  if (expired.length > 0 && (healthy >= target || !learners.some(usable)))
    return { op: 'remove', node: expired[0]! }
  // 4. More voters than the target (agents left): the one in the most crowded zone steps down,
  // only while every voter answers (never shrink towards a majority this leader cannot reach).
  if (voters.length > target && voters.every((id) => state(id) === 'alive')) {
    const zones = zoneCounts(voters, byId)
    const candidates = voters.filter((id) => id !== view.self)
    candidates.sort(
      (a, b) =>
        (zones.get(zoneOf(byId.get(b))) ?? 0) - (zones.get(zoneOf(byId.get(a))) ?? 0) || (a < b ? 1 : -1),
    )
    const drop = candidates[0]
    if (drop != null) return { op: 'remove', node: drop }
  }
  // 5. Learners nobody needs (the voter set is full): back to following the published state.
  if (healthy >= target) {
    const idle = learners.find((id) => usable(id))
    if (idle != null) return { op: 'remove', node: idle }
  }
  return null
}

function gonePast(view: VoterView, id: NodeId): boolean {
  const since = view.goneSince.get(id)
  return since != null && view.now - since >= view.removalMs
}

type MemberLike = Member

function zoneOf(member: MemberLike | undefined): string {
  const tags = member?.meta.tags
  const zone = tags != null && typeof tags === 'object' ? (tags as Record<string, unknown>).zone : undefined
  return typeof zone === 'string' ? zone : ''
}

function zoneCounts(ids: readonly NodeId[], byId: Map<string, MemberLike>): Map<string, number> {
  const counts = new Map<string, number>()
  for (const id of ids) {
    const zone = zoneOf(byId.get(id))
    counts.set(zone, (counts.get(zone) ?? 0) + 1)
  }
  return counts
}

/** An alive eligible agent outside the configuration, from the zone with the fewest voters (then the smallest id). */
function pickSpare(view: VoterView, byId: Map<string, MemberLike>): NodeId | null {
  const inConfig = new Set([...view.config.voters, ...view.config.learners])
  const healthyVoters = view.config.voters.filter((id) => {
    const s = byId.get(id)?.state
    return s === 'alive' || s === 'suspect'
  })
  const zones = zoneCounts(healthyVoters, byId)
  const spares = view.members
    .filter((m) => m.state === 'alive' && isEligible(m) && !inConfig.has(m.id))
    .map((m) => ({ id: m.id, load: zones.get(zoneOf(m)) ?? 0 }))
    .sort((a, b) => a.load - b.load || (a.id < b.id ? -1 : 1))
  return spares[0]?.id ?? null
}
