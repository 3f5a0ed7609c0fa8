import type { Member } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'
import { observe } from './decisions.js'
import type { NodeProgress, RolloutRecord } from './record.js'
import { isFinished } from './rollout-engine.js'

/** How a node stands in a rollout: its progress, or `skipped` when the rollout ended before its turn. */
export type RolloutNodeStatus = NodeProgress | 'skipped'

export interface RolloutNode {
  id: string
  /** Where the rollout has this node. */
  status: RolloutNodeStatus
  /** What the node reports: the version it runs, its runtime phase, an error. */
  distribution: string | null
  phase: string | null
  error: string | null
}

/** One entry of `GET /api/rollouts` and `shoal rollouts --json`. */
export interface RolloutView extends Omit<RolloutRecord, 'progress' | 'baseTargets'> {
  startedAt: string
  nodes: {
    total: number
    pending: number
    updating: number
    done: number
    failed: number
    reverted: number
    lost: number
    skipped: number
  }
  members: RolloutNode[]
}

/** A rollout record with what the members report, for people and scripts. */
export function rolloutView(record: RolloutRecord, members: readonly Member[]): RolloutView {
  const seen = observe(members)
  const ended = isFinished(record)
  const nodes = Object.entries(record.progress)
    .map(([id, progress]) => {
      // A node still pending when the rollout ended was never touched: say so, not "pending".
      const status: RolloutNodeStatus = ended && progress === 'pending' ? 'skipped' : progress
      const m = members.find((x) => x.id === id)
      const runtime = m == null ? undefined : runtimeAnnouncement.of(m).runtime
      return {
        id,
        status,
        distribution: seen.get(id)?.active ?? null,
        phase: seen.get(id)?.phase ?? null,
        // The reason it failed in this rollout outlives its being sent back.
        error: record.failures?.[id] ?? runtime?.error ?? null,
      }
    })
    .sort((a, b) => a.id.localeCompare(b.id))
  const count = (...statuses: RolloutNodeStatus[]) => nodes.filter((n) => statuses.includes(n.status)).length
  const { progress: _p, baseTargets: _b, failures: _f, ...rest } = record
  return {
    ...rest,
    startedAt: record.requestedAt,
    nodes: {
      total: nodes.length,
      pending: count('pending'),
      updating: count('updating', 'reverting'),
      done: count('done'),
      // Nodes whose switch failed in this rollout, whether or not they were sent back since.
      failed: nodes.filter((n) => n.status === 'failed' || record.failures?.[n.id] != null).length,
      reverted: count('reverted'),
      lost: count('lost'),
      skipped: count('skipped'),
    },
    members: nodes,
  }
}
