/**
 * Single-server membership changes (Raft thesis §4.1): a configuration differs
 * from the previous one by at most one voter, so any majority of the old voters
 * and any majority of the new ones share a node, and a change can take effect as
 * soon as it is appended, without joint consensus.
 */
import { InvalidConfigChangeError } from './errors.js'
import type { ClusterConfig, ConfigChange } from './types.js'
import { normalizeConfig } from './types.js'

export function applyConfigChange(config: ClusterConfig, change: ConfigChange): ClusterConfig {
  const { node } = change
  const voter = config.voters.includes(node)
  const learner = config.learners.includes(node)
  const without = (list: readonly string[]) => list.filter((n) => n !== node)
  switch (change.op) {
    case 'add-learner':
      if (voter || learner)
        throw new InvalidConfigChangeError(`${node} is already a ${voter ? 'voter' : 'learner'}`)
      return normalizeConfig({ voters: config.voters, learners: [...config.learners, node] })
    case 'add-voter':
      if (voter) throw new InvalidConfigChangeError(`${node} is already a voter`)
      return normalizeConfig({ voters: [...config.voters, node], learners: without(config.learners) })
    case 'demote':
      if (!voter) throw new InvalidConfigChangeError(`${node} is not a voter`)
      if (config.voters.length === 1) throw new InvalidConfigChangeError(`${node} is the last voter`)
      return normalizeConfig({ voters: without(config.voters), learners: [...config.learners, node] })
    case 'remove':
      if (!voter && !learner) throw new InvalidConfigChangeError(`${node} is neither a voter nor a learner`)
      if (voter && config.voters.length === 1) throw new InvalidConfigChangeError(`${node} is the last voter`)
      return normalizeConfig({ voters: without(config.voters), learners: without(config.learners) })
  }
}
