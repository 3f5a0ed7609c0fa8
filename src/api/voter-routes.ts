import type { Hono } from 'hono'
import type { VotersView as VotersViewType } from '../manager/index.js'
import { BadRequestError } from '../shared/index.js'
import { json, jsonRequest, type Operation, serve } from './schemas/operation.js'
import { VotersResetRequest, VotersView } from './schemas/voters.js'

/** What the voter endpoints need from the agent: its manager's Raft configuration. */
export interface VotersApi {
  voters(): VotersViewType
  /** Throws ERR_NO_RAFT_LOG (409) on a node that never held the cluster's log. */
  reset(): Promise<VotersViewType>
}

/** What a reset does, in the words of the 400 that asks for `force` (docs/manager.md). */
export const RESET_WITHOUT_FORCE =
  "a voters reset makes this node the only voter of a new generation of the cluster's log: decisions the lost " +
  'majority committed that this node had not applied are lost. Use it only when a majority of the voters is ' +
  'gone for good; send {"force": true} to do it'

export const VOTER_OPERATIONS = {
  voters: {
    method: 'get',
    path: '/api/voters',
    operationId: 'getVoters',
    summary: "The manager's voters and learners as this node sees them (`shoal voters --json`)",
    description: 'Asked of the leader, `match` says how far each one holds the log.',
    tag: 'rollouts',
    responses: { 200: json('Leader, term, generation, commit index, voters and learners', VotersView) },
  },
  reset: {
    method: 'post',
    path: '/api/voters/reset',
    operationId: 'resetVoters',
    summary:
      'After a majority of the voters is lost for good: make this node the only voter of a new generation',
    description:
      "Like etcd's `--force-new-cluster`: the node asked starts a new generation of the cluster's log from " +
      'the state it has applied, as its only voter; every agent follows the new generation and the voter ' +
      'policy brings voters in again. Decisions the lost majority committed that this node had not applied ' +
      'are lost. Refused without `{"force": true}`.',
    tag: 'rollouts',
    body: jsonRequest(VotersResetRequest, {}),
    responses: { 200: json('The voters of the new generation', VotersView) },
    errors: {
      ERR_BAD_REQUEST: 'Not JSON, or `force` is not true',
      ERR_NO_RAFT_LOG: 'This node never held the cluster’s log (it was never a voter or learner)',
    },
  },
} satisfies Record<string, Operation>

/**
 * The manager's Raft configuration (docs/manager.md):
 * - `GET /api/voters`: voters and learners, leader, term, generation, commit index;
 * - `POST /api/voters/reset {force: true}`: this node alone starts a new generation of the log.
 */
export function voterRoutes(app: Hono, api: () => VotersApi): void {
  serve(app, VOTER_OPERATIONS.voters, (c) => c.json(api().voters()))
  serve(app, VOTER_OPERATIONS.reset, async (c, { body }) => {
    if (!body.force) throw new BadRequestError(RESET_WITHOUT_FORCE)
    return c.json(await api().reset())
  })
}
