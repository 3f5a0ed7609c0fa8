import type { RolloutRecord } from '../../src/manager/index.js'

/**
 * A rolling rollout record of `app@2` from `app@1`, running, with every default the
 * manager would give it; `overrides` set what a test is about.
 */
export function rolloutRecord(overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  const distribution = overrides.distribution ?? 'app@2'
  const from = overrides.from ?? 'app@1'
  return {
    id: 'r1',
    kind: 'rollout',
    distribution,
    from,
    strategy: 'rolling',
    maxUnavailable: 1,
    canaryPercent: 0,
    approve: 'auto',
    minReadyMs: 0,
    failureThreshold: 1,
    autoRollback: true,
    scope: [],
    state: 'running',
    baseDefault: from,
    baseTargets: {},
    progress: {},
    approved: true,
    requestedBy: 'test',
    requestedAt: new Date(0).toISOString(),
    finishedAt: null,
    reason: null,
    ...overrides,
  }
}
