import { z } from 'zod'
import type { MemberState as MemberStateType } from '../../membership/index.js'
import type { AuditEntry as AuditEntryType } from '../audit.js'
import type { LoadBalancerView as LoadBalancerViewType } from '../lb-view.js'
import type { MemberView as MemberViewType, StatusView as StatusViewType } from '../views.js'
import { describes, everyOf } from './check.js'
import { count, isoTime, Role } from './common.js'
import { ComponentState, RuntimeStatus } from './components.js'
import { DistributionView, TransferStats } from './distributions.js'
import { NodeRow } from './nodes.js'
import { ManagerStatus, RolloutView } from './rollouts.js'

/** This agent, the members it sees, the dashboard feed. */

export const MemberState = z
  .enum(everyOf<MemberStateType>()(['alive', 'suspect', 'dead', 'left']))
  .meta({ id: 'MemberState' })

export const MemberView = describes<MemberViewType>()(
  z
    .object({
      id: z.string().describe('libp2p peer id'),
      state: MemberState,
      addrs: z.array(z.string().describe('multiaddr')),
      manager: z.boolean().describe('It is the manager this agent follows'),
      ready: z.boolean(),
      distribution: z.string().nullable().describe('The version it runs, `name@version`'),
      components: z.array(
        z.object({
          name: z.string(),
          version: z.string(),
          state: ComponentState,
          endpoint: z.string().nullable(),
        }),
      ),
      roles: z
        .array(z.string())
        .describe(
          'Roles it announces: `lb` for a load balancer (`shoal lb`, a member but not a node), what `--role` gave an agent',
        ),
      incarnation: count(),
      self: z.boolean(),
      since: isoTime().describe('When this view saw the state change'),
      meta: z.record(z.string(), z.unknown()).describe('Raw member metadata'),
    })
    .meta({ id: 'MemberView' }),
)

const statusFields = {
  id: z.string(),
  cluster: z.string(),
  addrs: z.array(z.string()),
  state: MemberState,
  incarnation: count(),
  manager: z.string().nullable().describe('Id of the manager this node follows'),
  managerStatus: ManagerStatus,
  open: z.boolean().describe('The cluster has no secret: anyone who can reach it may join'),
  members: z.object({ total: count(), alive: count(), suspect: count(), dead: count(), left: count() }),
  distribution: z.string().nullable().describe('The version this node runs'),
  runtime: RuntimeStatus,
  rollouts: z.array(RolloutView).describe('Rollouts not finished yet'),
  health: count().describe('Lifeguard score, 0 = healthy'),
  distributions: z.object({ known: count(), complete: count() }),
  transfer: TransferStats,
  traffic: z.object({ sentBytes: count(), receivedBytes: count() }),
  uptimeSeconds: count(),
  version: z.string().describe('Shoal version'),
}

export const StatusView = describes<StatusViewType>()(
  z
    .object({
      ...statusFields,
      config: z
        .record(z.string(), z.unknown())
        .describe('The agent configuration in force (docs/configuration.md)'),
    })
    .meta({ id: 'StatusView' }),
)

export const LoadBalancerView = describes<LoadBalancerViewType>()(
  z
    .object({
      id: z.string().describe("The load balancer's member id"),
      state: MemberState,
      url: z.string().nullable().describe('Where it listens, as it announces (null: it announces none)'),
      status: z
        .record(z.string(), z.unknown())
        .nullable()
        .describe('Its `GET /_shoal/lb` (service, strategy, backends with state, weight, counters), or null'),
      error: z.string().optional().describe('Why there is no status (unreachable, dead, no URL)'),
    })
    .meta({ id: 'LoadBalancerView' }),
)

export const AuditEntry = describes<AuditEntryType>()(
  z
    .object({
      time: isoTime().describe('When it was answered'),
      who: z
        .string()
        .describe(
          "The token holder's name; `local` without tokens; `unknown` for an unknown or missing token",
        ),
      role: Role.nullable().describe('null without a known token'),
      method: z.string().meta({ examples: ['POST'] }),
      path: z.string().meta({ examples: ['/api/rollouts'] }),
      status: z.number().int().describe('HTTP status answered (401 and 403 refusals included)'),
    })
    .meta({ id: 'AuditEntry' }),
)

/** What the dashboard shows, in one server-sent event. */
export const Snapshot = z
  .object({
    status: z
      .object(statusFields)
      .describe('As GET /api/status, without `config`')
      .meta({ id: 'DashboardStatus' }),
    members: z.array(MemberView),
    nodes: z.array(NodeRow),
    distributions: z.array(DistributionView),
    rollouts: z.array(RolloutView),
    lb: z.array(LoadBalancerView),
    audit: z.array(AuditEntry).describe('The last 50, newest last'),
  })
  .describe('What the dashboard shows, in one event')
  .meta({ id: 'Snapshot' })
