import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import type { Logger, Startable } from '../shared/index.js'
import {
  canonicalJson,
  decodeJson,
  encodeJson,
  exchange,
  messageOf,
  type StreamNetwork,
  serve,
  TypedEvents,
} from '../shared/index.js'
import { analysisSchema, MAX_VERDICTS, verdictSchema } from './analysis.js'
import { type ManagerAnnouncement, managerAnnouncement, type StateHead } from './announcement.js'
import { MAX_STATE_BYTES, STATE_FETCH_TIMEOUT_MS, STATE_RETRY_MS } from './constants.js'

/** The most of a node's failure reason a rollout record keeps. */
export const FAILURE_CHARS = 500
/** The most control actions (approve, pause, resume, abort) a rollout record keeps. */
export const MAX_ACTIONS = 20
/**
 * The most unpublished versions the cluster state remembers (newest first); about
 * 150 bytes each. An older one stays dropped where it was (each agent remembers the
 * versions it dropped) but could be published again.
 */
export const MAX_UNPUBLISHED = 200

export const ROLLOUT_STRATEGIES = ['all-at-once', 'rolling', 'canary'] as const
export type RolloutStrategy = (typeof ROLLOUT_STRATEGIES)[number]

/** `lost`: the node was dead when the rollout finished (it follows the cluster's version if it comes back). */
export const NODE_PROGRESS = [
  'pending',
  'updating',
  'done',
  'failed',
  'reverting',
  'reverted',
  'lost',
] as const
export type NodeProgress = (typeof NODE_PROGRESS)[number]

export const ROLLOUT_STATES = [
  'running',
  'waiting-approval',
  'paused',
  'done',
  'failed',
  'rolling-back',
  'rolled-back',
  'aborted',
  'superseded',
] as const
export type RolloutState = (typeof ROLLOUT_STATES)[number]

export const rolloutSchema = z.strictObject({
  id: z.string(),
  kind: z.enum(['rollout', 'rollback']),
  /** The version moved to, and the one moved from (what nodes go back to). */
  distribution: z.string(),
  from: z.string().nullable(),
  strategy: z.enum(ROLLOUT_STRATEGIES),
  /** Nodes switching at once (rolling); all of them for all-at-once. */
  maxUnavailable: z.number().int().min(1),
  /**
   * All-at-once with a component that cannot run twice on a node (`exclusive`):
   * one node stays on the old version until another is ready on the new one, so
   * the service is never without a ready backend. Absent = false.
   */
  keepOneServing: z.boolean().optional(),
  /** Share of the nodes switched first (canary), percent. */
  canaryPercent: z.number().min(0).max(100),
  approve: z.enum(['manual', 'auto']),
  /** A switched node must stay ready this long before it counts as done. */
  minReadyMs: z.number().int().min(0),
  /** This many failed nodes stop the rollout. */
  failureThreshold: z.number().int().min(1),
  /** Send failed nodes back to `from` when the threshold is crossed. */
  autoRollback: z.boolean(),
  /** Nodes the rollout is limited to; empty = every node. */
  scope: z.array(z.string()),
  state: z.enum(ROLLOUT_STATES),
  /** What nodes ran before it (their targets then): where pending and reverted nodes stay. */
  baseDefault: z.string().nullable(),
  baseTargets: z.record(z.string(), z.string()),
  progress: z.record(z.string(), z.enum(NODE_PROGRESS)),
  /** Approvals, pauses, resumes and aborts: who and when (the newest MAX_ACTIONS). */
  actions: z
    .array(
      z.strictObject({
        op: z.enum(['approve', 'pause', 'resume', 'abort']),
        by: z.string().max(200),
        at: z.string(),
      }),
    )
    .max(MAX_ACTIONS)
    .optional(),
  /** A node's switch must finish this long after its turn came, or it fails. Absent: no deadline. */
  progressDeadlineMs: z.number().int().min(1000).optional(),
  /** When each node's turn came (it went `updating`), for the progress deadline. */
  updatingSince: z.record(z.string(), z.string()).optional(),
  /** Why each node that failed did (its runtime's error when it failed), kept after it is sent back. */
  failures: z.record(z.string(), z.string().max(FAILURE_CHARS)).optional(),
  /** Canary share approved (manually or after a clean observation window). */
  approved: z.boolean(),
  /**
   * Canary steps: the share of nodes on the new version at each step, percent,
   * rising, the last 100. Absent: one step of `canaryPercent`, then every node.
   */
  steps: z.array(z.number().min(1).max(100)).min(1).max(20).optional(),
  /** The step (canary) or batch (rolling with analysis) the rollout is at; absent = 0. */
  stepIndex: z.number().int().min(0).optional(),
  /** Judge each step by the load balancers' figures (docs/manager.md, "Progressive delivery"). */
  analysis: analysisSchema.optional(),
  /** The window of traffic being gathered for the current step's verdict. */
  window: z
    .strictObject({ step: z.number().int().min(0), from: z.string(), to: z.string() })
    .nullable()
    .optional(),
  /** Each judged step's verdict, figures and decision, oldest first. */
  verdicts: z.array(verdictSchema).max(MAX_VERDICTS).optional(),
  requestedBy: z.string(),
  requestedAt: z.string(),
  finishedAt: z.string().nullable(),
  reason: z.string().nullable(),
})
export type RolloutRecord = z.output<typeof rolloutSchema>

const stateSchema = z.strictObject({
  schema: z.literal(2),
  /** Election term of the manager that wrote it; a node never follows an older term. */
  term: z.number().int().min(0),
  /** Grows with every write in a term. */
  seq: z.number().int().min(0),
  /** The manager that wrote and signed it. */
  manager: z.string(),
  issuedAt: z.string(),
  /** Members whose majority a manager needs (docs/manager.md). */
  voters: z.array(z.string()),
  /** The version nodes run unless `targets` names another for them. */
  defaultTarget: z.string().nullable(),
  targets: z.record(z.string(), z.string()),
  /** Component → nodes, for components not placed on every node (components not named run everywhere). */
  placement: z.record(z.string(), z.array(z.string())),
  /** The version whose `placement` rules gave it. */
  placementFrom: z.string().nullable(),
  /** Components the rules could place on no node: reported, never silently dropped. */
  unplaced: z.array(z.string()),
  /** Newest first; the audit trail of rollouts and rollbacks. */
  rollouts: z.array(rolloutSchema),
  /**
   * Versions unpublished (`shoal unpublish`), newest first, with who and when: every
   * agent drops them and refuses to take them again. Absent = none.
   */
  unpublished: z
    .array(z.strictObject({ id: z.string().max(200), by: z.string().max(200), at: z.string().max(40) }))
    .max(MAX_UNPUBLISHED)
    .optional(),
  /**
   * Written by a Raft leader (docs/manager.md): `seq` is then the log index the state
   * is applied to and `term` the leader's term. `genesis` is the founding voter every
   * node starts its log from; `generation` grows with each `shoal voters reset`.
   * Absent: a state written by a manager before the Raft log.
   */
  raft: z
    .strictObject({
      generation: z.number().int().min(0),
      genesis: z.array(z.string().min(1).max(100)).min(1).max(7),
      learners: z.array(z.string().max(100)).max(64),
      /** The leader's majority certificate and newest committed configuration records (consensus/published-proof.ts). */
      proof: z.strictObject({ certificate: z.unknown(), chain: z.array(z.unknown()).max(16) }).optional(),
    })
    .optional(),
})
export type ClusterState = z.output<typeof stateSchema>
/** The fields a Raft log entry may change (the rest is the writer's: term, seq, manager, voters). */
export const replicatedFieldsSchema = stateSchema.pick({
  defaultTarget: true,
  targets: true,
  placement: true,
  placementFrom: true,
  unplaced: true,
  unpublished: true,
})
export type ReplicatedFields = z.output<typeof replicatedFieldsSchema>

export type UnpublishedVersion = NonNullable<ClusterState['unpublished']>[number]

const signedSchema = z.strictObject({ state: stateSchema, signature: z.string().min(1).max(200) })
export type SignedClusterState = z.output<typeof signedSchema>

export function emptyState(): ClusterState {
  return {
    schema: 2,
    term: 0,
    seq: 0,
    manager: '',
    issuedAt: new Date(0).toISOString(),
    voters: [],
    defaultTarget: null,
    targets: {},
    placement: {},
    placementFrom: null,
    unplaced: [],
    rollouts: [],
  }
}

/** A head as members announce it, or a whole state. */
type HeadLike = StateHead | Pick<ClusterState, 'term' | 'seq' | 'manager' | 'raft'>

function generationOf(head: HeadLike): number {
  const { g, raft } = head as { g?: unknown; raft?: { generation: number } }
  if (typeof g === 'number') return g
  return raft?.generation ?? -1
}

/**
 * The total order every node agrees on. A Raft leader's state (generation `g`)
 * is newer than any state before the Raft log, a later generation newer than an
 * earlier one; within one, the log index (`seq`) orders them, since every state a
 * leader publishes is the committed log applied up to there. States before the
 * Raft log: (term, seq). Then the writer's id.
 */
export function isNewer(candidate: HeadLike, current: HeadLike): boolean {
  const cg = generationOf(candidate)
  const ug = generationOf(current)
  if (cg !== ug) return cg > ug
  if (cg >= 0 && candidate.seq !== current.seq) return candidate.seq > current.seq
  if (candidate.term !== current.term) return candidate.term > current.term
  if (candidate.seq !== current.seq) return candidate.seq > current.seq
  return candidate.manager > current.manager
}

/** The version the cluster wants `node` to run. */
export function targetOf(state: ClusterState, node: string): string | null {
  return state.targets[node] ?? state.defaultTarget
}

/** Whether `node` should run `component` (of any version): placed there, or placed everywhere. */
export function runsHere(state: ClusterState, node: string, component: string): boolean {
  const nodes = state.placement[component]
  return nodes == null || nodes.includes(node)
}

export interface ClusterStateEvents {
  'state:changed': ClusterState
}

export interface ClusterStateInit {
  /** Cluster name; scopes the protocol `/shoal/<cluster>/state/1.0.0`. */
  cluster: string
}

export interface ClusterStateComponents {
  membership: {
    readonly id: string
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
    updateMetadata(patch: MemberMetadata): Promise<void>
    /** A node that serves the state (the writer, a voter) watches: it is sent every member's details. */
    setWatching(on: boolean): Promise<void>
  }
  network: StreamNetwork
  privateKey: PrivateKey
  /**
   * Whether a fetched state, correctly signed by its writer, may replace the one held
   * (the Raft leader's proof: consensus/published-proof.ts). Absent: the signature suffices.
   */
  trust?(next: ClusterState, current: ClusterState | null): { ok: true } | { ok: false; why: string }
  db: {
    get(key: string): Promise<string | undefined>
    put(key: string, value: string): Promise<void>
  }
  logger: Logger
}

/**
 * The cluster's replicated state: one record written only by the elected
 * manager, signed with its libp2p key, ordered by (term, seq). Every node keeps
 * the newest it has seen and persists it; its member metadata announces the
 * head (term, seq, writer: every entry from the writer and the voters, only a new
 * term or writer from the others), and a node that sees a newer head fetches the
 * whole record from that member over `/shoal/<cluster>/state/1.0.0` and checks the
 * writer's signature. Gossip spreads heads, anti-entropy gives them to nodes
 * that join or return, and a new manager starts from where the last one stopped.
 */
export class ClusterStateStore implements Startable {
  readonly events: TypedEvents<ClusterStateEvents>
  private signed: SignedClusterState | null = null
  private readonly log: Logger
  private readonly protocol: string
  private unsubscribe: Array<() => void> = []
  private chain: Promise<void> = Promise.resolve()
  /** The newest head heard of, and who holds it: fetched one at a time. */
  private wanted: { head: StateHead; from: string } | null = null
  private fetching: Promise<void> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private readonly abort = new AbortController()
  private running = false
  /** The head this node last announced (announce). */
  private announced: StateHead | null = null

  constructor(
    init: ClusterStateInit,
    private readonly components: ClusterStateComponents,
  ) {
    this.log = components.logger.child('state')
    this.events = new TypedEvents(this.log)
    this.protocol = `/shoal/${init.cluster}/state/1.0.0`
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    const saved = await this.components.db.get('signed')
    if (saved != null) {
      const parsed = signedSchema.safeParse(JSON.parse(saved))
      if (parsed.success) this.signed = parsed.data
    }
    await serve(
      this.components.network,
      this.protocol,
      { timeoutMs: STATE_FETCH_TIMEOUT_MS, maxBytes: 1024 },
      this.log,
      async (ch) => {
        await ch.read() // the request: empty
        await ch.write(encodeJson(this.signed))
      },
    )
    if (this.signed != null) await this.announce(this.signed.state)
    const { events } = this.components.membership
    this.unsubscribe = [events.on('member:join', this.onMember), events.on('member:update', this.onMember)]
    for (const member of this.components.membership.members()) this.onMember(member)
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    for (const off of this.unsubscribe.splice(0)) off()
    this.abort.abort()
    clearTimeout(this.retryTimer)
    await this.components.network.unhandle(this.protocol).catch(() => {})
    await this.fetching
    await this.chain
  }

  current(): ClusterState {
    return this.signed?.state ?? emptyState()
  }

  /**
   * Forgets the state held (and its trust anchor): the node founded a cluster of its
   * own that decided nothing, and follows the cluster it met instead (Manager).
   */
  async forget(): Promise<void> {
    this.chain = this.chain.then(async () => {
      this.signed = null
      await this.components.db.put('signed', 'null')
      await this.announce(emptyState())
    })
    await this.chain
    for (const member of this.components.membership.members())
      if (member.state === 'alive') this.onMember(member)
  }

  /**
   * Some alive member announces a newer state than this node holds (it is being
   * fetched). A dead member's announcement does not count: what only it held is lost.
   */
  isBehind(): boolean {
    const current = this.current()
    return this.components.membership.members().some((m) => {
      if (m.self || m.state !== 'alive') return false
      const head = managerAnnouncement.of(m).cluster
      return head != null && isNewer(head, current)
    })
  }

  /** Signs and adopts a new state (the manager's write); its seq must be above the current one. */
  async write(next: ClusterState): Promise<void> {
    const signature = await this.components.privateKey.sign(new TextEncoder().encode(canonicalJson(next)))
    await this.adopt({ state: next, signature: Buffer.from(signature).toString('base64') })
  }

  private readonly onMember = (member: Member): void => {
    if (member.self || this.abort.signal.aborted) return
    const head = managerAnnouncement.of(member).cluster
    if (head == null || !isNewer(head, this.current())) return
    if (this.wanted == null || isNewer(head, this.wanted.head)) this.wanted = { head, from: member.id }
    this.fetching ??= this.fetchWanted().finally(() => {
      this.fetching = undefined
    })
  }

  /** Fetches the newest state heard of until there is nothing newer to fetch. */
  private async fetchWanted(): Promise<void> {
    const failed = new Set<string>()
    while (this.wanted != null && !this.abort.signal.aborted) {
      const { head, from } = this.wanted
      if (!isNewer(head, this.current())) {
        this.wanted = null
        return
      }
      try {
        const signed = await exchange(
          this.components.network,
          peerIdFromString(from),
          this.protocol,
          { timeoutMs: STATE_FETCH_TIMEOUT_MS, maxBytes: MAX_STATE_BYTES, signal: this.abort.signal },
          async (ch) => {
            await ch.write(new Uint8Array(0))
            return decodeJson(signedSchema.nullable(), await ch.read(), 'cluster state')
          },
        )
        if (signed == null || !isNewer(signed.state, this.current())) {
          // It moved on or restarted: wait for its next announcement.
          if (this.wanted?.head === head) this.wanted = null
          continue
        }
        if (!(await verify(signed))) {
          this.log.warn('ignored a cluster state with a bad signature', { from })
          if (this.wanted?.head === head) this.wanted = null
          continue
        }
        const trusted = this.components.trust?.(signed.state, this.signed?.state ?? null) ?? { ok: true }
        if (!trusted.ok) {
          this.log.warn('ignored a cluster state whose writer is not a proven leader', {
            from,
            writer: signed.state.manager,
            term: signed.state.term,
            why: trusted.why,
          })
          if (this.wanted?.head === head) this.wanted = null
          continue
        }
        await this.adopt(signed)
      } catch (err) {
        this.log.debug('could not fetch the cluster state', { from, error: messageOf(err) })
        // Another holder, else whoever announces it next; a dead holder is not retried in this round.
        failed.add(from)
        if (this.wanted?.head === head) this.wanted = null
        this.wanted ??= this.otherHolder(head, failed)
        if (this.wanted == null) this.retryLater()
      }
    }
  }

  /** Scans the members again after a round in which no holder served a newer state. */
  private retryLater(): void {
    if (this.retryTimer != null || this.abort.signal.aborted) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      // Only alive holders: what a dead member alone held is lost (isBehind), not retried for ever.
      for (const member of this.components.membership.members())
        if (member.state === 'alive') this.onMember(member)
    }, STATE_RETRY_MS)
    this.retryTimer.unref()
  }

  /** After a failed fetch: another alive member announcing the same or a newer head, not tried yet. */
  private otherHolder(head: StateHead, failed: Set<string>): { head: StateHead; from: string } | null {
    for (const member of this.components.membership.members()) {
      const other = managerAnnouncement.of(member).cluster
      if (member.self || member.state !== 'alive' || other == null || failed.has(member.id)) continue
      if (isNewer(other, this.current()) && !isNewer(head, other)) return { head: other, from: member.id }
    }
    return null
  }

  private adopt(signed: SignedClusterState): Promise<void> {
    // Serialised, so a slow write can never overwrite a newer one.
    this.chain = this.chain.then(async () => {
      if (this.signed != null && !isNewer(signed.state, this.signed.state)) return
      this.signed = signed
      await this.components.db.put('signed', JSON.stringify(signed))
      this.events.emit('state:changed', signed.state)
      await this.announce(signed.state)
    })
    return this.chain
  }

  /**
   * Announces the head of `state` when this node serves it (its writer or a voter:
   * at most 1 + 7 announcements per committed entry) or when its term, writer or
   * generation changed. A follower's newer `seq` alone is not announced: each
   * committed entry re-announced by every node was a gossip wave of N records
   * received by every member (21.5 MB per member at 10,000, docs/scale.md), and
   * followers fetch from the writer and voters, who announce every entry.
   */
  private announce(state: ClusterState): Promise<void> {
    const head: StateHead = { term: state.term, seq: state.seq, manager: state.manager }
    if (state.raft != null) head.g = state.raft.generation
    const self = this.components.membership.id
    const serves = state.manager === self || state.voters.includes(self)
    const watching = this.components.membership.setWatching(serves)
    const last = this.announced
    if (!serves && last != null && sameEpoch(last, head)) return watching
    this.announced = head
    const patch: Partial<ManagerAnnouncement> = { cluster: head }
    return Promise.all([watching, this.components.membership.updateMetadata(patch)]).then(() => {})
  }
}

/** Same term, writer and generation: only `seq` may differ. */
function sameEpoch(a: StateHead, b: StateHead): boolean {
  return a.term === b.term && a.manager === b.manager && a.g === b.g
}

async function verify(signed: SignedClusterState): Promise<boolean> {
  try {
    const key = peerIdFromString(signed.state.manager).publicKey
    if (key == null) return false
    const bytes = new TextEncoder().encode(canonicalJson(signed.state))
    return await key.verify(bytes, Buffer.from(signed.signature, 'base64'))
  } catch {
    return false
  }
}
