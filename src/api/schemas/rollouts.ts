import { z } from 'zod'
import {
  commandSchema,
  type ManagerStatus as ManagerStatusType,
  NODE_PROGRESS,
  ROLLOUT_STATES,
  ROLLOUT_STRATEGIES,
  type RolloutNode as RolloutNodeType,
  type RolloutView as RolloutViewType,
  rolloutSchema,
} from '../../manager/index.js'
import { describes } from './check.js'
import { count, isoTime } from './common.js'

/**
 * Rollouts, rollbacks and the manager (docs/manager.md). The requests are the
 * manager's own command schemas and the views its rollout record's fields: what
 * the manager checks and keeps is what the document says.
 */

export const RolloutStrategy = z.enum(ROLLOUT_STRATEGIES).meta({ id: 'RolloutStrategy' })
export const RolloutState = z.enum(ROLLOUT_STATES).meta({ id: 'RolloutState' })
export const NodeProgress = z
  .enum([...NODE_PROGRESS, 'skipped'])
  .describe('`skipped`: never moved, in a rollout that ended (aborted, rolled back, failed, superseded)')
  .meta({ id: 'NodeProgress' })

const [rolloutCommand, rollbackCommand, controlCommand] = commandSchema.options

/** The rollout id a command names (as the manager checks it). */
export const RolloutId = controlCommand.shape.id

/** What every request says about how nodes move; `requestedBy` comes from the token, not the body. */
const moving = {
  maxUnavailable: rolloutCommand.shape.maxUnavailable.describe(
    'rolling: nodes out of rotation at once (default 1)',
  ),
  maxUnavailablePercent: rolloutCommand.shape.maxUnavailablePercent.describe(
    'rolling: the same, as a share of the nodes',
  ),
  canaryPercent: rolloutCommand.shape.canaryPercent.describe('canary: share of nodes first (default 20)'),
  approve: rolloutCommand.shape.approve.describe('canary: wait for approve (manual, default) or not'),
  minReadyMs: rolloutCommand.shape.minReadyMs.describe(
    'A switched node stays ready this long (default 1000)',
  ),
  failureThreshold: rolloutCommand.shape.failureThreshold.describe('Failed nodes that stop it (default 1)'),
  progressDeadlineMs: rolloutCommand.shape.progressDeadlineMs.describe(
    "A node's switch not done this long after its turn came fails (default 600000)",
  ),
  nodes: rolloutCommand.shape.nodes.describe('Limit it to these members; empty: every node'),
  requestedBy: rolloutCommand.shape.requestedBy.describe(
    'Ignored: the agent records who asked (the token holder, else its own id)',
  ),
}

export const RolloutRequest = rolloutCommand
  .omit({ op: true })
  .extend({
    ...moving,
    distribution: rolloutCommand.shape.distribution
      .regex(/@/, 'give the version to roll out as NAME@VERSION')
      .describe('`NAME@VERSION`, known to the agent asked'),
  })
  .meta({ id: 'RolloutRequest' })

export const RollbackRequest = rollbackCommand
  .omit({ op: true })
  .extend({
    ...moving,
    name: rollbackCommand.shape.name.describe('The distribution'),
    to: rollbackCommand.shape.to.describe(
      'A version (or `NAME@VERSION`); default: the one before the current',
    ),
  })
  .meta({ id: 'RollbackRequest' })

export const RolloutNode = describes<RolloutNodeType>()(
  z
    .object({
      id: z.string(),
      status: NodeProgress,
      distribution: z.string().nullable().describe('What it reports running'),
      phase: z.string().nullable(),
      error: z.string().nullable(),
    })
    .meta({ id: 'RolloutNode' }),
)

const record = rolloutSchema.shape

/** One rollout or rollback: its record (less the per-node bookkeeping) with what the members report. */
export const RolloutView = describes<Omit<RolloutViewType, 'failures'>>()(
  z
    .object({
      ...z.object(record).omit({ progress: true, baseTargets: true, failures: true }).shape,
      distribution: record.distribution.describe('The version moved to'),
      from: record.from.describe('The version moved from'),
      strategy: RolloutStrategy,
      state: RolloutState,
      keepOneServing: record.keepOneServing.describe(
        'All at once with a component that cannot run twice on a node: one node waits until another is ready',
      ),
      updatingSince: z
        .record(z.string(), isoTime())
        .optional()
        .describe("When each node's turn came (for the progress deadline)"),
      scope: record.scope.describe('Nodes it is limited to; empty: every node'),
      requestedBy: record.requestedBy.describe('`NAME (ROLE)` of the token, else the agent id'),
      requestedAt: isoTime(),
      startedAt: isoTime(),
      finishedAt: isoTime().nullable(),
      actions: record.actions.describe(
        'Who approved, paused, resumed or aborted it, and when (the newest 20)',
      ),
      nodes: z
        .object({
          total: count(),
          pending: count(),
          updating: count(),
          done: count(),
          failed: count(),
          reverted: count(),
          lost: count(),
          skipped: count(),
        })
        .describe('Counts by progress'),
      members: z.array(RolloutNode),
    })
    .meta({ id: 'RolloutView' }),
)

/** What GET /api/manager adds to the election: the cluster state this node follows. */
export interface FollowedState {
  stateTerm: number
  stateSeq: number
  placement: Record<string, string[]>
  unplaced: string[]
  notReadyAnywhere: string[]
}

export const ManagerStatus = describes<ManagerStatusType & FollowedState>()(
  z
    .object({
      manager: z.string().nullable().describe('The Raft leader this node follows'),
      term: z.number().int().describe('The Raft term'),
      quorum: z
        .boolean()
        .describe('This node follows a leader that holds a majority (the leader: it holds its lease)'),
      voters: z.array(z.string()),
      aliveVoters: count(),
      claim: z.number().int().nullable().describe('The term this node leads, or null'),
      acting: z
        .boolean()
        .describe('This node is the leader, holds its lease and applied everything before its term'),
      self: z.boolean(),
      learners: z
        .array(z.string())
        .describe('Voters being brought in: they receive the log, do not vote yet'),
      role: z
        .enum(['leader', 'follower', 'candidate', 'pre-candidate', 'observer'])
        .describe('`observer`: not in the Raft configuration; follows the state the leader publishes'),
      commitIndex: count().describe('Raft commit index as this node knows it'),
      appliedIndex: count().describe('Log index the state on this node is applied to'),
      stateTerm: z.number().int(),
      stateSeq: z.number().int().describe('Log index of the published state this node holds'),
      placement: z
        .record(z.string(), z.array(z.string()))
        .describe('Component → nodes, for components not placed everywhere'),
      unplaced: z.array(z.string()),
      notReadyAnywhere: z.array(z.string()),
    })
    .meta({ id: 'ManagerStatus' }),
)
