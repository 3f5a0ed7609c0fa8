/**
 * Elections: the randomized timeout and the count of (pre-)votes.
 *
 * The timeout is drawn in [electionTicks, 2·electionTicks) from the injected
 * random source after every reset, so split votes are rare and a seeded run
 * replays exactly.
 */
import type { Vote } from './certificate.js'
import type { ClusterConfig, NodeId } from './types.js'
import { quorumSize } from './types.js'

export function randomizedElectionTimeout(electionTicks: number, random: () => number): number {
  return electionTicks + Math.floor(random() * electionTicks)
}

export type ElectionOutcome = 'won' | 'lost' | 'pending'

/** The answers of one (pre-)campaign; only voters of the configuration count. */
export class VoteTally {
  private readonly granted = new Map<NodeId, Uint8Array | null>()
  private readonly rejected = new Set<NodeId>()

  constructor(private readonly config: ClusterConfig) {}

  /** Records the first answer of each voter; later answers of the same voter are ignored. */
  record(voter: NodeId, granted: boolean, signature: Uint8Array | null): void {
    if (!this.config.voters.includes(voter) || this.granted.has(voter) || this.rejected.has(voter)) return
    if (granted) this.granted.set(voter, signature)
    else this.rejected.add(voter)
  }

  outcome(): ElectionOutcome {
    const quorum = quorumSize(this.config)
    if (this.granted.size >= quorum) return 'won'
    if (this.rejected.size > this.config.voters.length - quorum) return 'lost'
    return 'pending'
  }

  /** The signed grants: the certificate's votes. */
  votes(): Vote[] {
    const votes: Vote[] = []
    for (const [voter, signature] of this.granted) if (signature != null) votes.push({ voter, signature })
    return votes
  }
}
