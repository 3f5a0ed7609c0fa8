import { isObserver, type Member, type MemberMetadata } from '../membership/index.js'
import { managerAnnouncement } from './announcement.js'

export interface ElectionView {
  /** The manager this node follows, or null while there is none. */
  manager: string | null
  /** The manager's term (or the highest term known while there is none). */
  term: number
  /** This node sees a majority of the voters alive. */
  quorum: boolean
  voters: string[]
  aliveVoters: number
  /** What this node should announce: a claim of this term, or none. */
  claim: number | null
}

export interface ElectionInput {
  self: string
  members: readonly Member[]
  /** Voters from the cluster state; empty before the first manager wrote any. */
  voters: readonly string[]
  /** Highest term this node has seen or claimed (persisted, so a term is never reused). */
  knownTerm: number
  /** The term this node claims now, if it does. */
  myClaim: number | null
}

/** Members that may vote and be elected: agents, not observers (load balancers and the like). */
export function isEligible(member: Member): boolean {
  return !isObserver(member)
}

/** The term a member's metadata claims, or null. */
export function claimOf(meta: MemberMetadata): number | null {
  return managerAnnouncement.of({ meta }).manager?.term ?? null
}

/**
 * One round of the election, from this node's membership view:
 *
 * 1. The manager is the alive (or merely suspected) eligible member with the
 *    highest claim (term, then id). A node that claims but sees a higher claim
 *    steps down.
 * 2. With no alive claimer, the alive eligible member with the smallest id is
 *    the candidate; it claims the next term if, and only if, it sees a majority
 *    of the voters alive. So a minority side never elects anyone, and after a
 *    split heals the lower term steps down before the next round.
 * 3. Quorum is counted against the voters the last manager recorded (the
 *    members not known to have left), not against the local view, so dead
 *    members only leave the voting set when a majority side's manager says so.
 */
export function elect(input: ElectionInput): ElectionView {
  const bySelf = new Map(input.members.map((m) => [m.id, m]))
  const alive = input.members.filter((m) => m.state === 'alive' && isEligible(m))
  // A voter that announced its own leave is not a voter that might be across a split: it
  // does not count, so the last voters standing keep their quorum (the manager also drops it).
  const recorded = input.voters.filter((id) => bySelf.get(id)?.state !== 'left')
  const voters = recorded.length > 0 ? recorded : alive.map((m) => m.id).sort() // first formation
  const aliveVoters = voters.filter((id) => bySelf.get(id)?.state === 'alive').length
  const quorum = aliveVoters * 2 > voters.length

  let knownTerm = input.knownTerm
  let best: { id: string; term: number } | null = null
  for (const member of input.members) {
    const term = member.self ? input.myClaim : claimOf(member.meta)
    if (term == null) continue
    knownTerm = Math.max(knownTerm, term)
    // A suspected manager keeps its place until it is declared dead: a slow
    // moment under load must not depose it (each new term costs a hand-over).
    if ((member.state !== 'alive' && member.state !== 'suspect') || !isEligible(member)) continue
    if (best == null || term > best.term || (term === best.term && member.id > best.id))
      best = { id: member.id, term }
  }

  if (best != null && best.id !== input.self)
    return { manager: best.id, term: best.term, quorum, voters, aliveVoters, claim: null }
  if (best != null)
    return { manager: input.self, term: best.term, quorum, voters, aliveVoters, claim: best.term }

  const candidate = alive.map((m) => m.id).sort()[0]
  if (candidate === input.self && quorum) {
    const term = knownTerm + 1
    return { manager: input.self, term, quorum, voters, aliveVoters, claim: term }
  }
  return { manager: null, term: knownTerm, quorum, voters, aliveVoters, claim: null }
}
