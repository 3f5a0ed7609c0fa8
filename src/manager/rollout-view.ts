import type { Member } from '../membership/index.js'
import type { DesiredRecord } from './desired-version.js'

export type RolloutState = 'running' | 'done' | 'failed' | 'superseded'

export interface RolloutNode {
  id: string
  /** What the node reports: on the version and ready, failed, or still working (phase). */
  status: 'done' | 'failed' | 'pending'
  phase: string | null
  distribution: string | null
  error: string | null
}

/** One entry of `GET /api/rollouts` and `shoal rollouts --json`. */
export interface RolloutView {
  id: string
  distribution: string
  strategy: string
  revision: number
  state: RolloutState
  issuedBy: string
  startedAt: string
  nodes: { total: number; done: number; failed: number; pending: number }
  members: RolloutNode[]
}

/** Members that run components: alive, and not an observer such as the load balancer. */
export function workers(members: readonly Member[]): Member[] {
  return members.filter(
    (m) => m.state === 'alive' && !(Array.isArray(m.meta.roles) && (m.meta.roles as string[]).includes('lb')),
  )
}

/**
 * A rollout's progress as this node sees it, read from member metadata: a node
 * is done when it runs the version with every component ready, failed when its
 * runtime says so for that version.
 */
export function rolloutView(record: DesiredRecord, latest: boolean, members: readonly Member[]): RolloutView {
  const nodes = workers(members).map((m) => nodeStatus(m, record.distribution))
  const count = (status: RolloutNode['status']) => nodes.filter((n) => n.status === status).length
  const done = count('done')
  const failed = count('failed')
  let state: RolloutState = 'running'
  if (!latest) state = 'superseded'
  else if (failed > 0 && done + failed === nodes.length) state = 'failed'
  else if (nodes.length > 0 && done === nodes.length) state = 'done'
  return {
    id: `r${record.revision}`,
    distribution: record.distribution,
    strategy: record.strategy,
    revision: record.revision,
    state,
    issuedBy: record.issuedBy,
    startedAt: record.issuedAt,
    nodes: { total: nodes.length, done, failed, pending: nodes.length - done - failed },
    members: nodes,
  }
}

function nodeStatus(member: Member, distribution: string): RolloutNode {
  const runtime = (member.meta.runtime ?? {}) as { target?: string; phase?: string; error?: string | null }
  const components = Array.isArray(member.meta.components)
    ? (member.meta.components as Array<{ state?: string }>)
    : []
  const onTarget = runtime.target === distribution
  const active = typeof member.meta.distribution === 'string' ? member.meta.distribution : null
  let status: RolloutNode['status'] = 'pending'
  if (onTarget && (runtime.phase === 'failed' || components.some((c) => c.state === 'failed')))
    status = 'failed'
  else if (active === distribution && onTarget && components.every((c) => c.state === 'ready'))
    status = 'done'
  return {
    id: member.id,
    status,
    phase: onTarget ? (runtime.phase ?? null) : null,
    distribution: active,
    error: onTarget ? (runtime.error ?? null) : null,
  }
}
