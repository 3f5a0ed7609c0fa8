import type { MemberView, StatusView } from '../api/index.js'
import type { DistributionView } from '../artifacts/index.js'
import type { VotersView } from '../manager/index.js'
import { hasObserverRole, MemberRole } from '../membership/index.js'
import type { RuntimeStatus } from '../runtime/index.js'
import { shortId, table } from './table.js'
import { completeCell } from './transfer-line.js'

/** A load balancer (`shoal lb`): a member, but, like every observer, not a node that runs components. */
const isLoadBalancer = (m: MemberView) => m.roles.includes(MemberRole.Lb)
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/**
 * The member counts people read (`shoal status`, as on the dashboard): nodes and
 * load balancers apart, "3 nodes alive of 3 · 1 load balancer". "of" counts every
 * node this agent knows, left and dead ones included.
 */
export function describeMembers(members: MemberView[]): string {
  const nodes = members.filter((m) => !hasObserverRole(m.roles))
  const alive = nodes.filter((m) => m.state === 'alive').length
  const parts = [`${plural(alive, 'node')} alive of ${nodes.length}`]
  const lbs = members.filter((m) => isLoadBalancer(m) && m.state !== 'left')
  const lbsAlive = lbs.filter((m) => m.state === 'alive').length
  if (lbs.length > 0)
    parts.push(
      lbsAlive === lbs.length
        ? plural(lbs.length, 'load balancer')
        : `${lbsAlive} of ${plural(lbs.length, 'load balancer')} alive`,
    )
  return parts.join(' · ')
}

export function formatMembers(members: MemberView[]): string {
  return table(
    ['ID', 'STATE', 'READY', 'ROLES', 'INC', 'DISTRIBUTION', 'COMPONENTS', 'ADDRESS'],
    members.map((m) => [
      `${shortId(m.id)}${m.self ? ' *' : ''}${m.manager ? ' (manager)' : ''}`,
      m.state,
      m.ready ? 'yes' : 'no',
      m.roles.join(',') || '-',
      String(m.incarnation),
      m.distribution ?? '-',
      m.components.map((c) => `${c.name}:${c.state}`).join(' ') || '-',
      m.addrs.find((a) => !a.includes('/127.0.0.1/')) ?? m.addrs[0] ?? '-',
    ]),
  )
}

/** `members`: the addressed agent's member list, for counting nodes and load balancers apart. */
export function formatStatus(status: StatusView, members: MemberView[]): string {
  const m = status.members
  const lines: Array<[string, string]> = [
    ['node', status.id],
    [
      'cluster',
      `${status.cluster}${status.open ? '  (OPEN: no secret, anyone who can reach it may join)' : ''}`,
    ],
    ['state', `${status.state} (incarnation ${status.incarnation})`],
    ['members', `${describeMembers(members)} (${m.suspect} suspect, ${m.dead} dead, ${m.left} left)`],
    ['manager', describeManager(status)],
    ['distribution', status.distribution ?? 'none'],
    ['addresses', status.addrs.join('\n             ')],
    ['uptime', `${status.uptimeSeconds} s`],
    ['version', status.version],
  ]
  return lines.map(([key, value]) => `${key.padEnd(12)} ${value}`).join('\n')
}

/** The manager line of `shoal status`: who, which term, and whether decisions can be made. */
function describeManager(status: StatusView): string {
  const view = (status.managerStatus ?? {}) as {
    term?: number
    quorum?: boolean
    aliveVoters?: number
    voters?: string[]
    unplaced?: string[]
    notReadyAnywhere?: string[]
  }
  const who = status.manager ?? 'none elected'
  const votes = `${view.aliveVoters ?? 0}/${view.voters?.length ?? 0} voters alive`
  const quorum = view.quorum
    ? `quorum (${votes})`
    : `NO QUORUM (${votes}): no rollout starts or advances and placement does not change on this side`
  const notes = [
    view.unplaced?.length ? `unplaced: ${view.unplaced.join(', ')}` : '',
    view.notReadyAnywhere?.length ? `ready nowhere: ${view.notReadyAnywhere.join(', ')}` : '',
  ].filter(Boolean)
  return [`${who}, term ${view.term ?? 0}, ${quorum}`, ...notes].join('\n             ')
}

export function formatDistributions(list: DistributionView[]): string {
  if (list.length === 0) return 'no distributions'
  return table(
    ['DISTRIBUTION', 'COMPLETE', 'ARTIFACTS', 'BYTES', 'HOLDERS', 'PUBLISHED', 'PUBLISHER'],
    list.map((d) => [
      d.id,
      completeCell(d),
      String(d.artifacts),
      String(d.bytes),
      String(d.holders.length),
      d.createdAt,
      d.publisher,
    ]),
  )
}

/** One version in `shoal history`: the distribution view plus the rollouts that moved the cluster to it. */
export type HistoryEntry = DistributionView & {
  rollouts?: Array<{
    id: string
    kind: string
    from: string | null
    strategy: string
    state: string
    reason: string | null
    requestedBy: string
    requestedAt: string
    finishedAt: string | null
    /** Who approved, paused, resumed or aborted it, and when. */
    actions?: Array<{ op: string; by: string; at: string }>
    /** Why nodes failed in it, by node id. */
    failures?: Record<string, string>
  }>
}

/** Rollouts and rollbacks of a distribution's versions, oldest first. */
export function formatAuditTrail(list: HistoryEntry[]): string {
  const rollouts = list.flatMap((d) => (d.rollouts ?? []).map((r) => ({ ...r, to: d.id })))
  if (rollouts.length === 0) return 'no rollouts'
  // Each rollout, then each approval, pause, resume or abort of it, in the order they happened.
  const rows = rollouts.flatMap((r) => [
    {
      at: r.requestedAt,
      cells: [
        r.id,
        r.kind,
        r.from ?? '-',
        r.to,
        r.strategy,
        stateText(r.state, r.reason),
        who(r.requestedBy),
        r.requestedAt,
        r.finishedAt ?? '-',
      ],
    },
    ...(r.actions ?? []).map((a) => ({
      at: a.at,
      cells: [r.id, a.op, '', '', '', '', who(a.by), a.at, ''],
    })),
  ])
  rows.sort((a, b) => a.at.localeCompare(b.at))
  const failures = rollouts.flatMap((r) =>
    Object.entries(r.failures ?? {}).map(([node, why]) => `${r.id} ${shortId(node)}: ${why}`),
  )
  const trail = table(
    ['ROLLOUT', 'KIND', 'FROM', 'TO', 'STRATEGY', 'STATE', 'BY', 'AT', 'FINISHED'],
    rows.map((r) => r.cells),
  )
  return failures.length === 0 ? trail : `${trail}\n\nfailures:\n${failures.map((f) => `  ${f}`).join('\n')}`
}

/** A rollout's state with its reason, without saying the same thing twice ("aborted (aborted)"). */
export function stateText(state: string, reason: string | null): string {
  if (reason == null || reason === '' || reason === state) return state
  return reason === 'aborted' ? `${state} (after an abort)` : `${state} (${reason})`
}

/** A requester as people read it: a token's `NAME (ROLE)` whole, an agent's peer id shortened. */
function who(requestedBy: string): string {
  return /^12D3KooW\w{40,}$/.test(requestedBy) ? shortId(requestedBy) : requestedBy
}

/** A Declarative Services component of one of the node's bundles, as `/api/components` carries it (docs/osgi.md). */
interface DsComponentRow {
  component: string
  name: string
  state: string
  satisfied: boolean
  reason: string | null
}

export function formatComponents(
  status: RuntimeStatus & { dsComponents?: readonly DsComponentRow[] },
): string {
  const head = `active ${status.active ?? 'none'}, target ${status.target ?? 'none'}, ${status.phase}${status.error == null ? '' : `: ${status.error}`}`
  if (status.components.length === 0) return `${head}\nno components`
  const rows = status.components.map((c) => [
    c.name,
    c.version,
    c.state,
    c.endpoint ?? '-',
    c.pid == null ? '-' : String(c.pid),
    String(c.restarts),
    c.error ?? '',
  ])
  const text = `${head}\n${table(['COMPONENT', 'VERSION', 'STATE', 'ENDPOINT', 'PID', 'RESTARTS', 'ERROR'], rows)}`
  const ds = status.dsComponents ?? []
  if (ds.length === 0) return text
  // OSGi bundles' Declarative Services components: satisfied or not, and why not.
  const dsRows = ds.map((c) => [c.name, c.component, c.state, c.satisfied ? 'yes' : 'no', c.reason ?? ''])
  return `${text}\n\n${table(['DS COMPONENT', 'BUNDLE', 'STATE', 'SATISFIED', 'WHY NOT'], dsRows)}`
}

/** `shoal voters`: a line on the log as this node knows it, then each voter and learner. */
export function formatVoters(view: VotersView): string {
  const head = `leader ${view.leader == null ? 'none known' : shortId(view.leader)}, term ${view.term}, generation ${view.generation}, commit index ${view.commitIndex} (up to ${view.maxVoters} voters)`
  if (view.members.length === 0)
    return `${head}\nno voters known yet (no cluster formed, or none published to this node)`
  const rows = view.members.map((m) => [
    shortId(m.id),
    m.role,
    m.state,
    m.leader ? '*' : '',
    m.match == null ? '-' : String(m.match),
  ])
  return `${head}\n${table(['ID', 'ROLE', 'STATE', 'LEADER', 'MATCH'], rows)}`
}
