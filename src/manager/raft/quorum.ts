/**
 * Majority arithmetic over the voters of a configuration (learners never count).
 * The commit index and the lease start are the same computation: the value that
 * a majority of voters has reached.
 */
import type { ClusterConfig, NodeId } from './types.js'
import { quorumSize } from './types.js'

/**
 * The largest v such that a majority of voters have value ≥ v (values of voters
 * with no value count as -Infinity). For match indexes this is what a majority
 * holds; for acked send times, when a majority last confirmed us.
 */
export function majorityValue(config: ClusterConfig, valueOfVoter: (voter: NodeId) => number): number {
  if (config.voters.length === 0) return Number.NEGATIVE_INFINITY
  const values = config.voters.map(valueOfVoter).sort((a, b) => b - a)
  return values[quorumSize(config) - 1]!
}

/** Do the voters for which `yes` holds make a majority? */
export function isMajority(config: ClusterConfig, yes: (voter: NodeId) => boolean): boolean {
  if (config.voters.length === 0) return false
  return config.voters.filter(yes).length >= quorumSize(config)
}
