import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'
import type { ErrorCode, Logger, Startable, TypedEvents } from '../shared/index.js'
import {
  decodeJson,
  encodeJson,
  exchange,
  INTERNAL,
  messageOf,
  NotFoundError,
  RemoteError,
  ShoalError,
  type StreamNetwork,
  serve,
} from '../shared/index.js'
import { type ManagerAnnouncement, managerAnnouncement } from './announcement.js'
import {
  COMMAND_TIMEOUT_MS,
  HISTORY_LENGTH,
  LEARN_WAIT_MS,
  MANAGER_WAIT_MS,
  MAX_COMMAND_BYTES,
  ROLLOUT_DEFAULTS,
  STATE_CATCH_UP_MS,
} from './constants.js'
import { type ElectionView, elect, isEligible } from './election.js'
import {
  AlreadyRunningError,
  NoManagerError,
  NoPreviousVersionError,
  NoQuorumError,
  NotPausedError,
  NotWaitingError,
  RolloutFinishedError,
  UnknownDistributionError,
  UnknownNodeError,
  VersionInUseError,
  VersionUnpublishedError,
} from './errors.js'
import { type PlacementSpec, parsePlacement, place } from './placement.js'
import {
  type ClusterState,
  type ClusterStateStore,
  MAX_ACTIONS,
  ROLLOUT_STRATEGIES,
  type RolloutRecord,
  type UnpublishedVersion,
} from './record.js'
import { baseOf, isFinished, type NodeObservation, step, targetsOf } from './rollout-engine.js'
import { whyInUse, withUnpublished } from './unpublish.js'

/**
 * The timers are given by the agent from its preset (the table in
 * src/shared/presets.ts, with each reason; docs/configuration.md shows it).
 * Each `@default` reads: lan value (the default preset); cloud, test.
 */
export interface ManagerInit {
  cluster: string
  /**
   * ms between two runs of the manager loop (election, voters, rollout step,
   * placement); it also runs on every membership event.
   * @default 250 (lan; cloud 500, test 100)
   */
  tickMs: number
  /**
   * ms a voter stays dead before it leaves the voting set (decided by a quorate manager only).
   * @default 30_000 (lan; cloud 120_000, test 5_000)
   */
  voterRemovalMs: number
  /**
   * ms a candidate waits for each voter's answer to its pre-vote before it claims a term.
   * @default 1_000 (lan; cloud 2_000, test 500)
   */
  prevoteTimeoutMs: number
  /**
   * ms a node alone with no cluster state waits after start before founding a cluster by itself.
   * @default 3_000 (lan; cloud 6_000, test 1_000)
   */
  formationWaitMs: number
}

export interface ManagerComponents {
  membership: {
    readonly id: string
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
    updateMetadata(patch: MemberMetadata): Promise<void>
  }
  network: StreamNetwork
  store: ClusterStateStore
  /** Versions this node knows (a command may only name those). */
  versions: {
    has(id: string): Promise<boolean>
    /** Versions of `name` this node knows, oldest first. */
    history(name: string): string[]
    /**
     * A known version's component names, raw `placement` rules and the components
     * that may not run twice on a node (`exclusive`) (null when unknown here).
     */
    layout(id: string): { components: string[]; placement: unknown; exclusive?: string[] } | null
  }
  db: { get(key: string): Promise<string | undefined>; put(key: string, value: string): Promise<void> }
  logger: Logger
}

const rolloutCommand = z.strictObject({
  op: z.literal('rollout'),
  distribution: z.string().min(3).max(200),
  strategy: z.enum(ROLLOUT_STRATEGIES).default('all-at-once'),
  maxUnavailable: z.number().int().min(1).optional(),
  maxUnavailablePercent: z.number().min(1).max(100).optional(),
  canaryPercent: z.number().min(1).max(100).optional(),
  approve: z.enum(['manual', 'auto']).optional(),
  minReadyMs: z.number().int().min(0).max(3_600_000).optional(),
  failureThreshold: z.number().int().min(1).optional(),
  /** A node's switch not done this long after its turn came fails (default 600 000). */
  progressDeadlineMs: z.number().int().min(1000).max(86_400_000).optional(),
  autoRollback: z.boolean().default(true),
  nodes: z.array(z.string()).default([]),
  requestedBy: z.string().default(''),
})
const rollbackCommand = rolloutCommand
  .omit({ op: true, distribution: true })
  .extend({ op: z.literal('rollback'), name: z.string().min(1).max(100), to: z.string().optional() })
const controlCommand = z.strictObject({
  op: z.enum(['approve', 'pause', 'resume', 'abort']),
  id: z.string().min(1).max(40),
  requestedBy: z.string().default(''),
})
export const commandSchema = z.union([rolloutCommand, rollbackCommand, controlCommand])
/** `shoal unpublish`: a version never rolled out leaves the cluster (docs/distributions.md). */
const unpublishCommand = z.strictObject({
  op: z.literal('unpublish'),
  id: z.string().min(3).max(200),
  requestedBy: z.string().max(200).default(''),
})
/** A candidate's pre-vote: "whom do you follow?" */
const prevoteRequest = z.strictObject({ op: z.literal('prevote') })
const requestSchema = z.union([
  prevoteRequest,
  rolloutCommand,
  rollbackCommand,
  controlCommand,
  unpublishCommand,
])
const prevoteAnswer = z.strictObject({ ok: z.literal(true), follows: z.string().max(100).nullable() })
export type ManagerCommand = z.input<typeof commandSchema>

/** What an unpublish did: `already-unpublished` when an earlier request had (nothing changed). */
export interface Unpublishing {
  result: 'unpublished' | 'already-unpublished'
  entry: UnpublishedVersion
}

const errorCode = z.custom<ErrorCode>((v) => typeof v === 'string' && /^ERR_[A-Z0-9_]+$/.test(v))

const answerSchema = z.union([
  z.strictObject({ ok: z.literal(true), rollout: z.unknown() }),
  z.strictObject({ ok: z.literal(true), unpublished: z.unknown() }),
  z.strictObject({
    ok: z.literal(false),
    // `status`: what agents before the one error model sent along (ignored; src/api/errors.ts maps codes).
    error: z.strictObject({ code: errorCode, message: z.string(), status: z.number().optional() }),
  }),
])

export interface ManagerStatus extends ElectionView {
  /** This node is the manager and sees a majority: it acts. */
  acting: boolean
  self: boolean
}

/**
 * Runs on every agent. Each tick it takes part in the election (claiming the
 * next term when it is the candidate and sees a majority of the voters), and,
 * while it is the manager with quorum, keeps the voting set, drives the newest
 * rollout one step and writes the cluster state when anything changed. Commands
 * reach it from any agent over `/shoal/<cluster>/manager/1.0.0`.
 */
export class Manager implements Startable {
  private readonly log: Logger
  private readonly protocol: string
  private timer: NodeJS.Timeout | undefined
  private wakeTimer: NodeJS.Timeout | undefined
  private startedAt = 0
  private view: ElectionView = {
    manager: null,
    term: 0,
    quorum: false,
    voters: [],
    aliveVoters: 0,
    claim: null,
  }
  private knownTerm = 0
  private myClaim: number | null = null
  private readonly readySince = new Map<string, number>()
  /** When this node first saw each voter dead or forgotten (voter removal counts from there). */
  private readonly goneSince = new Map<string, number>()
  private writes: Promise<unknown> = Promise.resolve()
  private running = false
  private ticking = false
  private readonly unsubscribe: Array<() => void> = []
  /** The version whose placement rules were last refused (logged once). */
  private badPlacement: string | null = null

  constructor(
    private readonly init: ManagerInit,
    private readonly components: ManagerComponents,
  ) {
    this.log = components.logger.child('manager')
    this.protocol = `/shoal/${init.cluster}/manager/1.0.0`
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.startedAt = Date.now()
    this.knownTerm = Number((await this.components.db.get('term')) ?? 0)
    await serve(
      this.components.network,
      this.protocol,
      { timeoutMs: COMMAND_TIMEOUT_MS, maxBytes: MAX_COMMAND_BYTES },
      this.log,
      async (ch) => {
        const request = decodeJson(requestSchema, await ch.read(), 'manager request')
        if (request.op === 'prevote') {
          // The manager this node follows now: a candidate claims only if no majority follows another.
          await ch.write(encodeJson({ ok: true, follows: this.view.manager }))
          return
        }
        const failed = (err: unknown) => ({ ok: false as const, error: errorOf(err) })
        const answer =
          request.op === 'unpublish'
            ? await this.executeUnpublish(request).then(
                (unpublished) => ({ ok: true as const, unpublished }),
                failed,
              )
            : await this.execute(commandSchema.parse(request)).then(
                (rollout) => ({ ok: true as const, rollout }),
                failed,
              )
        await ch.write(encodeJson(answer))
      },
    )
    const { events } = this.components.membership
    for (const name of [
      'member:join',
      'member:update',
      'member:dead',
      'member:leave',
      'member:suspect',
    ] as const)
      this.unsubscribe.push(events.on(name, () => void this.tick()))
    this.timer = setInterval(() => void this.tick(), this.init.tickMs)
    await this.tick()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    clearInterval(this.timer)
    clearTimeout(this.wakeTimer)
    for (const off of this.unsubscribe.splice(0)) off()
    await this.components.network.unhandle(this.protocol).catch(() => {})
    await this.writes.catch(() => {})
  }

  status(): ManagerStatus {
    const self = this.view.manager === this.components.membership.id
    return { ...this.view, self, acting: self && this.view.quorum }
  }

  /**
   * Carries out a command on the manager, wherever it runs: here when this node
   * is the acting manager, else forwarded to it. Without a manager that sees a
   * majority, nothing may change: ERR_NO_QUORUM.
   */
  async command(input: ManagerCommand): Promise<RolloutRecord> {
    const command = commandSchema.parse(input)
    const answer = await this.onManager(command, () => this.execute(command))
    return (answer.local ?? answer.remote?.rollout) as RolloutRecord
  }

  /**
   * Unpublishes a version, on the manager wherever it runs: recorded in the cluster
   * state, which every agent follows by dropping it (docs/distributions.md).
   * ERR_VERSION_IN_USE when a node runs it, the cluster wants it or a rollout in the
   * history names it; ERR_UNKNOWN_DISTRIBUTION when the manager does not know it.
   */
  async unpublish(input: { id: string; requestedBy?: string }): Promise<Unpublishing> {
    const command = unpublishCommand.parse({ ...input, op: 'unpublish' })
    const answer = await this.onManager(command, () => this.executeUnpublish(command))
    return (answer.local ?? answer.remote?.unpublished) as Unpublishing
  }

  /** Runs `local` when this node is the acting manager, else sends `command` to the manager. */
  private async onManager<T>(
    command: z.output<typeof requestSchema>,
    local: () => Promise<T>,
  ): Promise<{ local?: T; remote?: { rollout?: unknown; unpublished?: unknown } }> {
    // A hand-over (a new term, a manager only suspected for a moment) takes a few
    // ticks: wait that long for a manager that can act before saying there is none.
    const deadline = Date.now() + MANAGER_WAIT_MS
    const cannotForward = (v: ManagerStatus) => v.manager == null || v.self || !v.quorum
    let view = this.status()
    while (!view.acting && cannotForward(view) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, this.init.tickMs))
      view = this.status()
    }
    if (view.acting) return { local: await local() }
    // Without a majority on this side, the manager it still follows may be across a cut.
    if (cannotForward(view) || view.manager == null) throw noQuorum(view)
    const raw = await exchange(
      this.components.network,
      peerIdFromString(view.manager),
      this.protocol,
      { timeoutMs: COMMAND_TIMEOUT_MS, maxBytes: MAX_COMMAND_BYTES },
      async (ch) => {
        await ch.write(encodeJson(command))
        return decodeJson(answerSchema, await ch.read(), 'manager answer')
      },
    ).catch((err: unknown) => {
      throw new NoManagerError(`could not reach the manager ${view.manager}: ${messageOf(err)}`, {
        cause: err,
      })
    })
    if (!raw.ok) throw new RemoteError(raw.error.code, raw.error.message)
    return { remote: raw }
  }

  // --- election and control loop -------------------------------------------------------

  private async tick(): Promise<void> {
    if (!this.running || this.ticking) return
    this.ticking = true
    try {
      const state = this.components.store.current()
      const members = this.components.membership.members()
      // Terms written by any manager, as members announce them, are never claimed again.
      for (const m of members) this.knownTerm = Math.max(this.knownTerm, state.term, headTermOf(m))
      let view = elect({
        self: this.components.membership.id,
        members,
        voters: state.voters,
        knownTerm: this.knownTerm,
        myClaim: this.myClaim,
      })
      if (view.claim != null && this.myClaim == null && this.mustNotFound(state, members)) {
        view = { ...view, manager: null, claim: null }
      } else if (view.claim != null && this.myClaim == null && !(await this.majorityAnswers(view.voters))) {
        // The view is stale (a split not yet detected): claim nothing this tick.
        view = { ...view, manager: null, claim: null }
      }
      if (
        view.manager !== this.view.manager ||
        view.term !== this.view.term ||
        view.quorum !== this.view.quorum
      )
        this.log.info('manager', {
          manager: view.manager,
          term: view.term,
          quorum: view.quorum,
          voters: view.voters.length,
        })
      this.view = view
      if (view.claim !== this.myClaim) await this.announce(view.claim)
      // A manager decides only from the newest state anyone announces: a new term
      // must not write over progress it has not fetched yet.
      if (this.status().acting && !this.components.store.isBehind()) await this.reconcile()
    } catch (err) {
      this.log.warn('manager tick failed', { error: messageOf(err) })
    } finally {
      this.ticking = false
    }
  }

  /** Claims a term (persisted first, so a restart never claims it again) or drops the claim. */
  private async announce(claim: number | null): Promise<void> {
    if (claim != null && claim > this.knownTerm) {
      this.knownTerm = claim
      await this.components.db.put('term', String(claim))
    }
    this.myClaim = claim
    const patch: Partial<ManagerAnnouncement> = { manager: claim == null ? null : { term: claim } }
    await this.components.membership.updateMetadata(patch)
  }

  /** The acting manager's duties, each tick: voters, then the newest rollout. */
  private reconcile(): Promise<void> {
    return this.mutate((state) => {
      const now = Date.now()
      const members = this.components.membership.members()
      state.voters = this.nextVoters(state.voters, members, now)
      const latest = state.rollouts[0]
      if (latest != null && !isFinished(latest)) {
        const stepped = step(latest, {
          now,
          observations: observe(members),
          members: members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id),
          readySince: this.readySince,
          lostAfterMs: this.init.voterRemovalMs,
        })
        this.wakeAtMinReady(stepped, now)
        if (stepped !== latest) {
          state.rollouts[0] = stepped
          if (stepped.state !== latest.state)
            this.log.info('rollout', { id: stepped.id, state: stepped.state, reason: stepped.reason })
        }
      }
      if (state.rollouts[0] != null) Object.assign(state, targetsOf(state.rollouts[0]))
      this.placeComponents(state, members)
      return state
    })
  }

  /**
   * Lays the components of the version being moved to (else the cluster's
   * default) over the alive and suspect agents, keeping what is placed where
   * it can (rendezvous hashing: a node leaving moves only its own components).
   * Only components with a rule other than `all` are recorded.
   */
  private placeComponents(state: ClusterState, members: Member[]): void {
    const latest = state.rollouts[0]
    const source = latest != null && !isFinished(latest) ? latest.distribution : state.defaultTarget
    const layout = source == null ? null : this.components.versions.layout(source)
    if (source == null || layout == null) return
    let spec: PlacementSpec
    try {
      spec = parsePlacement(layout.placement, layout.components)
    } catch (err) {
      if (this.badPlacement !== source)
        this.log.warn('placement rules refused; every component runs everywhere', {
          distribution: source,
          error: messageOf(err),
        })
      this.badPlacement = source
      spec = { rules: {} }
    }
    const nodes = members
      .filter((m) => (m.state === 'alive' || m.state === 'suspect') && isEligible(m))
      .map((m) => m.id)
    const assignment = place(spec, layout.components, nodes, {
      nodes: state.placement,
      unplaced: state.unplaced,
    })
    const placed = Object.fromEntries(
      Object.entries(assignment.nodes).filter(([name]) => (spec.rules[name]?.kind ?? 'all') !== 'all'),
    )
    if (JSON.stringify(placed) !== JSON.stringify(state.placement) || state.placementFrom !== source)
      this.log.info('placement', { distribution: source, placement: placed, unplaced: assignment.unplaced })
    state.placement = placed
    state.placementFrom = source
    state.unplaced = assignment.unplaced
  }

  /**
   * A node that became ready on the new version counts as done once min-ready
   * has passed: tick right then rather than up to a tick later (each rolling
   * step would otherwise wait for the next tick).
   */
  private wakeAtMinReady(rollout: RolloutRecord, now: number): void {
    let next = Number.POSITIVE_INFINITY
    for (const [id, status] of Object.entries(rollout.progress)) {
      const since = this.readySince.get(id)
      if (status === 'updating' && since != null) next = Math.min(next, since + rollout.minReadyMs)
    }
    if (!Number.isFinite(next) || next - now >= this.init.tickMs) return
    clearTimeout(this.wakeTimer)
    this.wakeTimer = setTimeout(() => void this.tick(), Math.max(0, next - now) + 1)
  }

  /** Voters: every alive eligible member joins; a left one leaves; a dead one leaves after voterRemovalMs. */
  private nextVoters(current: string[], members: Member[], now: number): string[] {
    const byId = new Map(members.map((m) => [m.id, m]))
    const voters = new Set(current)
    for (const m of members) if (m.state === 'alive' && isEligible(m)) voters.add(m.id)
    for (const id of voters) {
      const m = byId.get(id)
      if (m?.state === 'left') {
        voters.delete(id)
        continue
      }
      // Dead, or already forgotten by membership: gone since this manager first saw it so.
      if (m == null || m.state === 'dead') {
        const since = this.goneSince.get(id) ?? now
        this.goneSince.set(id, since)
        if (now - since >= this.init.voterRemovalMs) voters.delete(id)
      } else this.goneSince.delete(id)
    }
    for (const id of this.goneSince.keys()) if (!voters.has(id)) this.goneSince.delete(id)
    return [...voters].sort()
  }

  /**
   * A node that holds no cluster state yet may found the cluster (claim the
   * first term with itself as a voter) only when no member announces a state
   * (it should fetch that one and follow) and, while it sees no other member,
   * only after the formation wait: a node that is still joining must not
   * elect itself in a cluster that has a manager already.
   */
  private mustNotFound(state: ClusterState, members: Member[]): boolean {
    if (state.voters.length > 0) return false
    const others = members.filter((m) => !m.self && (m.state === 'alive' || m.state === 'suspect'))
    if (others.some((m) => headTermOf(m) > 0)) return true
    const alone = others.length === 0
    return alone && Date.now() - this.startedAt < this.init.formationWaitMs
  }

  /**
   * Pre-vote (as in Raft): before claiming a new term, a candidate asks every
   * voter whom it follows. It claims only if a majority (itself included)
   * answers and follows no other manager. Its view may still show the far side
   * of a fresh split alive (no answer crosses the cut), or a manager that is
   * alive may still look dead to it after a heal (the others still follow it).
   */
  private async majorityAnswers(voters: string[]): Promise<boolean> {
    const self = this.components.membership.id
    const others = voters.filter((id) => id !== self)
    const answers = await Promise.all(others.map((id) => this.prevote(id)))
    const yes = answers.filter(Boolean).length + (voters.includes(self) ? 1 : 0)
    if (yes * 2 > voters.length) return true
    this.log.info('not claiming: no majority of the voters grants it', {
      granted: yes,
      voters: voters.length,
    })
    return false
  }

  private async prevote(id: string): Promise<boolean> {
    try {
      const answer = await exchange(
        this.components.network,
        peerIdFromString(id),
        this.protocol,
        { timeoutMs: this.init.prevoteTimeoutMs, maxBytes: MAX_COMMAND_BYTES },
        async (ch) => {
          await ch.write(encodeJson({ op: 'prevote' }))
          return decodeJson(prevoteAnswer, await ch.read(), 'pre-vote answer')
        },
      )
      return answer.follows == null || answer.follows === this.components.membership.id
    } catch {
      return false
    }
  }

  // --- commands --------------------------------------------------------------------------

  private async execute(command: z.output<typeof commandSchema>): Promise<RolloutRecord> {
    if (!this.status().acting) throw noQuorum(this.status())
    if (command.op === 'rollout' || command.op === 'rollback') {
      const distribution =
        command.op === 'rollout' ? command.distribution : this.rollbackTarget(command.name, command.to)
      if (this.components.store.current().unpublished?.some((u) => u.id === distribution))
        throw new VersionUnpublishedError(distribution)
      await this.requireKnown(distribution)
      let created: RolloutRecord | undefined
      await this.mutate((state) => {
        // Unpublished while this command waited for the version.
        if (state.unpublished?.some((u) => u.id === distribution))
          throw new VersionUnpublishedError(distribution)
        const { op, ...options } = command
        const request = { ...options, distribution, kind: op } as RolloutRequest
        created = newRollout(state, request, this.components.membership.members())
        // Nodes switch make-before-break, so all at once keeps serving, except where a
        // component cannot run twice on a node: then one node waits for another (docs/manager.md).
        if (
          created.strategy === 'all-at-once' &&
          [created.distribution, created.from].some((id) => id != null && this.hasExclusive(id))
        )
          created.keepOneServing = true
        for (const r of state.rollouts) if (!isFinished(r)) r.state = 'superseded'
        state.rollouts = [created, ...state.rollouts].slice(0, HISTORY_LENGTH)
        Object.assign(state, targetsOf(created))
        return state
      })
      this.log.info('rollout started', {
        id: created!.id,
        distribution,
        strategy: created!.strategy,
        kind: command.op,
      })
      void this.tick()
      return created!
    }
    let found: RolloutRecord | undefined
    await this.mutate((state) => {
      const rollout = state.rollouts.find((r) => r.id === command.id)
      if (rollout == null) throw new NotFoundError(`no rollout ${command.id}`)
      if (isFinished(rollout) || rollout.state === 'rolling-back')
        throw new RolloutFinishedError(command.id, rollout.state)
      if (command.op === 'approve') {
        if (rollout.state !== 'waiting-approval') throw new NotWaitingError(command.id, rollout.state)
        rollout.approved = true
        rollout.state = 'running'
      } else if (command.op === 'pause') rollout.state = 'paused'
      else if (command.op === 'resume') {
        if (rollout.state !== 'paused') throw new NotPausedError(command.id)
        rollout.state = 'running'
      } else {
        rollout.reason = 'aborted'
        rollout.state = 'rolling-back'
        for (const [id, s] of Object.entries(rollout.progress))
          if ((s === 'updating' || s === 'done' || s === 'failed') && baseOf(rollout, id) != null)
            rollout.progress[id] = 'reverting'
      }
      // The audit trail: who approved, paused, resumed or aborted it, and when.
      const act = { op: command.op, by: command.requestedBy, at: new Date().toISOString() }
      rollout.actions = [...(rollout.actions ?? []), act].slice(-MAX_ACTIONS)
      if (state.rollouts[0] === rollout) Object.assign(state, targetsOf(rollout))
      found = rollout
      return state
    })
    void this.tick()
    return found!
  }

  private async executeUnpublish(command: z.output<typeof unpublishCommand>): Promise<Unpublishing> {
    if (!this.status().acting) throw noQuorum(this.status())
    const earlier = this.components.store.current().unpublished?.find((u) => u.id === command.id)
    if (earlier != null) return { result: 'already-unpublished', entry: earlier }
    await this.requireKnown(command.id)
    let done: Unpublishing | undefined
    await this.mutate((state) => {
      // Decided on the state it writes: a rollout started a moment ago is seen.
      const already = state.unpublished?.find((u) => u.id === command.id)
      if (already != null) {
        done = { result: 'already-unpublished', entry: already }
        return state
      }
      const nodes = [...observe(this.components.membership.members()).values()]
      const why = whyInUse(state, nodes, command.id)
      if (why != null) throw new VersionInUseError(command.id, why)
      const entry = { id: command.id, by: command.requestedBy, at: new Date().toISOString() }
      done = { result: 'unpublished', entry }
      return withUnpublished(state, entry)
    })
    if (done?.result === 'unpublished') this.log.info('version unpublished', { ...done.entry })
    return done!
  }

  /** `--to`, else the version the cluster ran before the current one. */
  private rollbackTarget(name: string, to: string | undefined): string {
    const state = this.components.store.current()
    if (to != null) {
      const target = to.includes('@') ? to : `${name}@${to}`
      // A rollback to where every node already is would be a rollout FROM x TO x: say so instead.
      const latest = state.rollouts[0]
      const settled = latest == null || isFinished(latest)
      if (settled && state.defaultTarget === target && Object.keys(state.targets).length === 0)
        throw new AlreadyRunningError(target)
      return target
    }
    const current = state.defaultTarget
    const previous = state.rollouts.find(
      (r) => r.state === 'done' && r.distribution === current && r.from != null,
    )
    if (current?.startsWith(`${name}@`) && previous?.from != null) return previous.from
    const known = this.components.versions.history(name)
    const index = current == null ? -1 : known.indexOf(current)
    if (index > 0) return known[index - 1]!
    throw new NoPreviousVersionError(name)
  }

  private hasExclusive(id: string): boolean {
    return (this.components.versions.layout(id)?.exclusive?.length ?? 0) > 0
  }

  private async requireKnown(id: string): Promise<void> {
    const deadline = Date.now() + LEARN_WAIT_MS
    while (!(await this.components.versions.has(id))) {
      if (Date.now() > deadline) throw new UnknownDistributionError(id, 'the manager')
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Applies `change` to a copy of the state and writes it as the next (term, seq), when it changed anything. */
  private mutate(change: (state: ClusterState) => ClusterState): Promise<void> {
    const run = this.writes.then(async () => {
      // At the start of a term the newest state may still be on its way: wait for it (briefly).
      const deadline = Date.now() + STATE_CATCH_UP_MS
      while (this.components.store.isBehind() && Date.now() < deadline) await sleep(50)
      if (this.components.store.isBehind())
        throw new NoManagerError('the manager is still catching up with the cluster state')
      const current = this.components.store.current()
      const next = change(structuredClone(current))
      const { seq: _s, issuedAt: _i, term: _t, manager: _m, ...rest } = next
      const { seq: _s2, issuedAt: _i2, term: _t2, manager: _m2, ...before } = current
      const self = this.components.membership.id
      if (
        JSON.stringify(rest) === JSON.stringify(before) &&
        current.term === this.view.term &&
        current.manager === self
      )
        return
      if (!this.status().acting) throw noQuorum(this.status())
      await this.components.store.write({
        ...next,
        term: this.view.term,
        seq: current.term === this.view.term ? current.seq + 1 : 1,
        manager: self,
        issuedAt: new Date().toISOString(),
      })
    })
    this.writes = run.catch(() => {})
    return run
  }
}

type RolloutRequest = Omit<z.output<typeof rolloutCommand>, 'op'> & { kind: 'rollout' | 'rollback' }

function newRollout(state: ClusterState, request: RolloutRequest, members: Member[]): RolloutRecord {
  const eligible = members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id)
  const scope = request.nodes
  const unknown = scope.filter((id) => !members.some((m) => m.id === id))
  if (unknown.length > 0) throw new UnknownNodeError(unknown)
  const nodes = scope.length > 0 ? scope : eligible
  const n = Math.max(1, nodes.length)
  const rolling = request.strategy !== 'all-at-once'
  const gated = request.strategy !== 'canary' && request.approve === 'manual'
  const maxUnavailable =
    request.maxUnavailable ??
    (request.maxUnavailablePercent == null
      ? ROLLOUT_DEFAULTS.maxUnavailable
      : Math.max(1, Math.floor((request.maxUnavailablePercent / 100) * n)))
  const number = Math.max(0, ...state.rollouts.map((r) => Number(r.id.slice(1)) || 0)) + 1
  const current = state.rollouts[0]
  const base =
    current != null ? targetsOf(current) : { defaultTarget: state.defaultTarget, targets: state.targets }
  return {
    id: `r${number}`,
    kind: request.kind,
    distribution: request.distribution,
    from: base.defaultTarget,
    strategy: request.strategy,
    maxUnavailable: request.strategy === 'all-at-once' ? n : maxUnavailable,
    canaryPercent:
      request.canaryPercent ?? (request.strategy === 'canary' ? ROLLOUT_DEFAULTS.canaryPercent : 0),
    approve: request.approve ?? (request.strategy === 'canary' ? 'manual' : 'auto'),
    minReadyMs: request.minReadyMs ?? (rolling ? ROLLOUT_DEFAULTS.minReadyMs : 0),
    failureThreshold: request.failureThreshold ?? ROLLOUT_DEFAULTS.failureThreshold,
    progressDeadlineMs: request.progressDeadlineMs ?? ROLLOUT_DEFAULTS.progressDeadlineMs,
    autoRollback: request.autoRollback,
    scope,
    // Manual approval of a rolling or all-at-once rollout gates its start: nothing moves until approved.
    state: gated ? 'waiting-approval' : 'running',
    baseDefault: base.defaultTarget,
    baseTargets: base.targets,
    progress: Object.fromEntries(nodes.map((id) => [id, 'pending'])),
    approved: request.strategy !== 'canary' && !gated,
    requestedBy: request.requestedBy,
    requestedAt: new Date().toISOString(),
    finishedAt: null,
    reason: null,
  }
}

/** What each member's metadata says about its runtime. */
export function observe(members: readonly Member[]): Map<string, NodeObservation> {
  const found = new Map<string, NodeObservation>()
  for (const m of members) {
    const { runtime = {}, components = [], distribution = null } = runtimeAnnouncement.of(m)
    const failedComponents = components
      .filter((c) => c.state === 'failed')
      .map((c) => `${c.name} failed${c.error == null ? '' : `: ${c.error}`}`)
    found.set(m.id, {
      id: m.id,
      // A suspected node keeps its place (and its slot in max-unavailable) until declared dead.
      alive: m.state === 'alive' || m.state === 'suspect',
      deadSince: m.state === 'dead' ? m.since : null,
      active: distribution,
      target: runtime.target ?? null,
      phase: runtime.phase ?? null,
      ready: components.every((c) => c.state === 'ready'),
      failed: runtime.phase === 'failed' || failedComponents.length > 0,
      error: runtime.error ?? (failedComponents.length > 0 ? failedComponents.join('; ') : null),
    })
  }
  return found
}

/** The term of the cluster state `member` announces it holds (0: none). */
function headTermOf(member: Member): number {
  return managerAnnouncement.of(member).cluster?.term ?? 0
}

function noQuorum(view: ManagerStatus): NoQuorumError {
  return new NoQuorumError(
    view.manager == null
      ? `no manager: this node sees ${view.aliveVoters} of ${view.voters.length} voters alive, a majority is needed`
      : `the manager cannot act: ${view.aliveVoters} of ${view.voters.length} voters alive, a majority is needed`,
  )
}

/** A refusal as it goes back on the wire: its code and message (the asking agent answers with them). */
function errorOf(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof ShoalError) return { code: err.code, message: err.message }
  return { code: INTERNAL, message: messageOf(err) }
}
