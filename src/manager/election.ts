import { isObserver, type Member } from '../membership/index.js'

/** The manager as one node sees it (the Raft leader it follows, and the voters). */
export interface ElectionView {
  /** The leader this node follows, or null while there is none. */
  manager: string | null
  /** The leader's term (the Raft term this node is in). */
  term: number
  /** This node follows a leader that holds a majority (for the leader itself: it holds its lease). */
  quorum: boolean
  voters: string[]
  aliveVoters: number
  /** The term this node leads, or null (kept for clients of the election before Raft). */
  claim: number | null
}

/** Members that may vote and be elected: agents, not observers (load balancers and the like). */
export function isEligible(member: Member): boolean {
  return !isObserver(member)
}
