import { z } from 'zod'
import type { VotersView as VotersViewType } from '../../manager/index.js'
import { describes } from './check.js'
import { MemberState } from './cluster.js'
import { count } from './common.js'

/** The manager's Raft configuration (`shoal voters`, docs/manager.md). */

export const VotersView = describes<VotersViewType>()(
  z
    .object({
      leader: z.string().nullable().describe('The leader this node follows (null: none known)'),
      term: count().describe('The Raft term'),
      generation: count().describe('Bumped by each voters reset (0: the log as founded)'),
      commitIndex: count().describe('Raft commit index as this node knows it'),
      maxVoters: count().describe('Largest voter set the voter policy aims at (3 or 5)'),
      members: z.array(
        z.object({
          id: z.string().describe('libp2p peer id'),
          role: z
            .enum(['voter', 'learner'])
            .describe('`learner`: being brought in; receives the log, does not vote yet'),
          state: z
            .union([MemberState, z.literal('gone')])
            .describe('What membership says of it (`gone`: not in the member list)'),
          leader: z.boolean(),
          match: count()
            .nullable()
            .describe('Log index the leader knows it holds (null: the node asked is not the leader)'),
        }),
      ),
    })
    .meta({ id: 'VotersView' }),
)

export const VotersResetRequest = z
  .strictObject({
    force: z
      .boolean()
      .default(false)
      .describe(
        'Must be true: the node asked becomes the only voter of a new generation of the log, and what ' +
          'the lost majority committed that it had not applied is lost',
      ),
  })
  .meta({ id: 'VotersResetRequest' })
