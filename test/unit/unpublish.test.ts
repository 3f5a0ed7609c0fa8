import { describe, expect, it } from 'vitest'
import {
  type ClusterState,
  emptyState,
  MAX_UNPUBLISHED,
  type RolloutRecord,
} from '../../src/manager/record.js'
import { whyInUse, withUnpublished } from '../../src/manager/unpublish.js'

/** A finished rollout from `from` to `to`. */
function rollout(id: string, from: string | null, to: string, kind: 'rollout' | 'rollback' = 'rollout') {
  return {
    id,
    kind,
    distribution: to,
    from,
    strategy: 'all-at-once',
    maxUnavailable: 1,
    canaryPercent: 0,
    approve: 'auto',
    minReadyMs: 0,
    failureThreshold: 1,
    autoRollback: true,
    scope: [],
    state: 'done',
    baseDefault: from,
    baseTargets: {},
    progress: {},
    approved: true,
    requestedBy: 'test',
    requestedAt: new Date(0).toISOString(),
    finishedAt: new Date(0).toISOString(),
    reason: null,
  } satisfies RolloutRecord
}

const state = (patch: Partial<ClusterState>): ClusterState => ({ ...emptyState(), ...patch })
const idle = [{ id: 'n1', active: 'app@1', target: 'app@1' }]

describe('whyInUse: which versions the manager refuses to unpublish', () => {
  it('allows a version nobody runs, wants or rolled out', () => {
    const s = state({ defaultTarget: 'app@1', rollouts: [rollout('r1', null, 'app@1')] })
    expect(whyInUse(s, idle, 'app@2')).toBeNull()
  })

  it.each([
    [
      'the version the cluster runs',
      state({ defaultTarget: 'app@2' }),
      idle,
      /is the version the cluster runs/,
    ],
    [
      'a version the cluster wants on one node',
      state({ defaultTarget: 'app@1', targets: { n7: 'app@2' } }),
      idle,
      /is the version the cluster wants on node n7/,
    ],
    [
      'a version a node still runs (a node behind)',
      state({ defaultTarget: 'app@1' }),
      [{ id: 'n2', active: 'app@2', target: 'app@1' }],
      /runs on node n2/,
    ],
    [
      'a version a node is installing',
      state({ defaultTarget: 'app@1' }),
      [{ id: 'n3', active: 'app@1', target: 'app@2' }],
      /is being installed on node n3/,
    ],
    [
      'the version a rollout in the history moved from (a rollback goes there)',
      state({ defaultTarget: 'app@3', rollouts: [rollout('r2', 'app@2', 'app@3')] }),
      [],
      /is kept for rollback: rollout r2 \(done\) moved the cluster from it/,
    ],
    [
      'a version a rollback moved to, long since left',
      state({
        defaultTarget: 'app@3',
        rollouts: [rollout('r9', 'app@1', 'app@3'), rollout('r4', 'app@1', 'app@2', 'rollback')],
      }),
      [],
      /is kept for rollback: rollback r4 \(done\) moved the cluster to it/,
    ],
  ])('refuses %s', (_what, s, nodes, why) => {
    expect(whyInUse(s, nodes, 'app@2')).toMatch(why)
  })
})

describe('withUnpublished', () => {
  it('puts the newest first, once, and keeps at most MAX_UNPUBLISHED', () => {
    let s = emptyState()
    for (let i = 0; i < MAX_UNPUBLISHED + 5; i++)
      s = withUnpublished(s, { id: `app@${i}`, by: 'alice (developer)', at: new Date(i).toISOString() })
    s = withUnpublished(s, { id: 'app@204', by: 'bob (admin)', at: new Date(0).toISOString() })
    expect(s.unpublished).toHaveLength(MAX_UNPUBLISHED)
    expect(s.unpublished?.slice(0, 2).map((u) => u.id)).toEqual(['app@204', 'app@203'])
    expect(s.unpublished?.filter((u) => u.id === 'app@204')).toHaveLength(1)
    expect(s.unpublished?.at(-1)?.id).toBe('app@5')
  })
})
