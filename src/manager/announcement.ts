import { z } from 'zod'
import { type Announced, Announcement } from '../membership/index.js'

const term = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/** Member metadata key of a manager's claim: `{"term": N}`. */
export const CLAIM_KEY = 'manager'
/**
 * Member metadata key that carries the head of the newest cluster state a node
 * holds: `{term, seq, manager}`. The state itself (rollout history, placement)
 * can outgrow what gossip should carry; nodes fetch it over a stream.
 */
export const STATE_KEY = 'cluster'

/**
 * What the manager side of every agent announces: its claim in the election and
 * the head of the cluster state it holds (docs/manager.md). Sizes:
 * docs/architecture.md, "Member metadata".
 */
export const managerAnnouncement = new Announcement('manager', {
  [CLAIM_KEY]: {
    schema: z.looseObject({ term }).nullable(),
    maxBytes: 64,
    about: '`{"term": N}`: this node\'s claim to be the manager, or null (docs/manager.md)',
  },
  [STATE_KEY]: {
    schema: z.looseObject({ term, seq: term, manager: z.string().max(100), g: term.optional() }),
    maxBytes: 256,
    about:
      '`{"term","seq","manager","g"}`: the head of the newest cluster state this node holds (`g`: its Raft generation; `seq`: its log index); the state itself is fetched over `/shoal/<cluster>/state/1.0.0`',
  },
})
export type ManagerAnnouncement = Announced<typeof managerAnnouncement>
/** The head of a cluster state, as members announce it. */
export type StateHead = NonNullable<ManagerAnnouncement['cluster']>
