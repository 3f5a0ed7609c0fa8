import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Member, MembershipEvents } from '../membership/index.js'
import type { ErrorCode, GatheredTraffic, Logger, Startable, TypedEvents } from '../shared/index.js'
import {
  decodeJson,
  encodeJson,
  exchange,
  hasCode,
  INTERNAL,
  messageOf,
  RemoteError,
  ShoalError,
  type StreamNetwork,
  serve,
} from '../shared/index.js'
import { managerAnnouncement } from './announcement.js'
import {
  type ClusterChange,
  ClusterMachine,
  type CommandAnswer,
  encodeChange,
} from './consensus/cluster-machine.js'
import { keySigner, peerIdVerifier } from './consensus/keys.js'
import { proofOf } from './consensus/published-proof.js'
import { RaftHost, type RaftHostComponents } from './consensus/raft-host.js'
import { RaftTransport } from './consensus/raft-transport.js'
import {
  COMMAND_TIMEOUT_MS,
  HAND_OVER_MS,
  LEARN_WAIT_MS,
  MANAGER_WAIT_MS,
  MAX_COMMAND_BYTES,
} from './constants.js'
import {
  commandSchema,
  controlRollout,
  type ManagerCommand,
  observe,
  type ParsedCommand,
  type ParsedUnpublish,
  type RolloutRequest,
  startRollout,
  type Unpublishing,
  unpublishCommand,
  unpublishVersion,
} from './decisions.js'
import { type ElectionView, isEligible } from './election.js'
import {
  AlreadyRunningError,
  NoManagerError,
  NoPreviousVersionError,
  NoQuorumError,
  NoRaftLogError,
  UnknownDistributionError,
  VersionUnpublishedError,
} from './errors.js'
import { type PlacementSpec, parsePlacement, place } from './placement.js'
import { genesisSnapshot, type NodeId, type RaftStatus, type RequestId } from './raft/index.js'
import type { ClusterState, ClusterStateStore, RolloutRecord } from './record.js'
import { isFinished, mayStep, ReadyClock, step, targetsOf } from './rollout-engine.js'
import { nextVoterChange } from './voter-policy.js'
import { WindowFigures } from './window-figures.js'

/**
 * The timers are given by the agent from its preset (the table in
 * src/shared/presets.ts, with each reason; docs/configuration.md shows it).
 * Each `@default` reads: lan value (the default preset); cloud, test.
 */
export interface ManagerInit {
  cluster: string
  /**
   * ms between two runs of the leader's loop (voters, rollout step, placement);
   * it also runs on every membership event and after every applied entry.
   * @default 250 (lan; cloud 500, test 100)
   */
  tickMs: number
  /**
   * ms a voter stays dead before the leader replaces it (or removes it when no agent can replace it).
   * @default 30_000 (lan; cloud 120_000, test 5_000)
   */
  voterRemovalMs: number
  /**
   * ms a node alone with no cluster state waits after start before founding a cluster by itself.
   * @default 3_000 (lan; cloud 6_000, test 1_000)
   */
  formationWaitMs: number
  /**
   * ms per Raft tick: the election timeout is drawn in [electionTicks, 2·electionTicks) ticks.
   * @default 50 (lan; cloud 100, test 100)
   */
  raftTickMs: number
  /**
   * Ticks between two heartbeats of the leader (below electionTicks).
   * @default 3 (lan; cloud 3, test 1)
   */
  heartbeatTicks: number
  /**
   * Minimum Raft election timeout, in ticks (a leader's lease is a little shorter: docs/raft.md).
   * lan: 0.5–1 s; cloud: 2–4 s; test: 1–2 s.
   * @default 10 (lan; cloud 20, test 10)
   */
  electionTicks: number
  /** Largest voter set (3 or 5; docs/manager.md). @default 5 */
  maxVoters?: number
}

export interface ManagerComponents {
  membership: {
    readonly id: string
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
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
  /** The Raft log, hard state and snapshots on this node's disk. */
  raftStorage: RaftHostComponents['storage']
  /** This node's libp2p key: it signs its votes. */
  privateKey: PrivateKey
  /**
   * Every load balancer's per-version figures for a range of Unix seconds, to judge
   * rollout steps by (loadbalancer/traffic-service.ts). Absent: no figures, so any
   * analysis is inconclusive.
   */
  traffic?: (range: { from: number; to: number }) => Promise<GatheredTraffic>
  logger: Logger
}

export interface ManagerStatus extends ElectionView {
  /** This node is the leader, holds its lease and has applied everything before its term: it acts. */
  acting: boolean
  self: boolean
  /** Non-voting members of the Raft configuration (voters being brought in). */
  learners: string[]
  /** This node's Raft role, or `observer` when it is not in the configuration (it follows the published state). */
  role: 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'observer'
  /** Raft commit index as this node knows it, and the index its state is applied to. */
  commitIndex: number
  appliedIndex: number
}

/** `shoal voters`: the Raft configuration as this node sees it. */
export interface VotersView {
  /** The leader this node follows (null: none known), and its term. */
  leader: string | null
  term: number
  /** Bumped by each `shoal voters reset`. */
  generation: number
  commitIndex: number
  /** Largest voter set the policy aims at (3 or 5). */
  maxVoters: number
  members: Array<{
    id: string
    role: 'voter' | 'learner'
    /** What membership says of it (`gone`: not in the member list). */
    state: string
    leader: boolean
    /** Log index the leader knows it holds (null: this node is not the leader). */
    match: number | null
  }>
}

const requestId = z.strictObject({ client: z.string().min(1).max(120), seq: z.number().int().min(1) })
const wireRequest = z.strictObject({
  v: z.literal(2),
  request: requestId,
  command: z.union([...commandSchema.options, unpublishCommand]),
})
const errorCode = z.custom<ErrorCode>((v) => typeof v === 'string' && /^ERR_[A-Z0-9_]+$/.test(v))
const wireAnswer = z.union([
  z.strictObject({ ok: z.literal(true), index: z.number().int(), rollout: z.unknown() }),
  z.strictObject({ ok: z.literal(true), index: z.number().int(), unpublished: z.unknown() }),
  z.strictObject({
    ok: z.literal(false),
    error: z.strictObject({ code: errorCode, message: z.string() }),
    /** Set when the asked node does not lead: who does, as far as it knows. */
    leader: z.string().max(100).nullable().optional(),
  }),
])
type WireAnswer = z.output<typeof wireAnswer>

/** Not the leader: the asking agent tries `leader` (internal to the wire; never reaches a client). */
class NotLeaderHere extends Error {
  constructor(readonly leader: string | null) {
    super(leader == null ? 'no leader is known' : `the leader is ${leader}`)
  }
}

/**
 * The manager on every agent. Decisions are entries of a Raft log committed by
 * a majority of a small voter set (docs/manager.md): commands from any agent go
 * to the leader, which decides on the state it has applied, proposes the change
 * and answers once it is committed and applied, with its log index. The leader
 * also runs the loop that keeps the voter set, steps the newest rollout and
 * places components, each decision an entry of the log; and it publishes the
 * applied state to every agent through the cluster-state store.
 */
export class Manager implements Startable {
  private readonly log: Logger
  private readonly protocol: string
  private readonly machine = new ClusterMachine()
  private readonly host: RaftHost
  private readonly transport: RaftTransport
  private readonly clientId: string
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private wakeTimer: NodeJS.Timeout | undefined
  private startedAt = 0
  private readonly readySince = new ReadyClock()
  /** The load balancers' figures of the current analysis window, gathered off the loop. */
  private readonly windowFigures: WindowFigures
  /** The term this node leads, and since when (ms): a new leader's view may lack members. */
  private leading = { term: -1, since: 0 }
  /** When this leader first saw each voter or learner dead or missing. */
  private readonly goneSince = new Map<string, number>()
  private decisions: Promise<unknown> = Promise.resolve()
  /** After a reset: save a snapshot once this leader can decide, so every agent starts from the state. */
  private compactAfterTermStart = false
  private warnedSplitBrain = false
  /** Handing over before a graceful leave: the voter policy keeps still meanwhile. */
  private leaving = false
  private running = false
  private ticking = false
  private tickAgain = false
  private readonly unsubscribe: Array<() => void> = []
  private badPlacement: string | null = null
  private published: { index: number; term: number; config: string } | null = null
  /** The cluster this node's log belongs to: its founding voter and generation (kept with the log). */
  private genesis: { generation: number; voters: string[] } | null = null

  constructor(
    private readonly init: ManagerInit,
    private readonly components: ManagerComponents,
  ) {
    this.log = components.logger.child('manager')
    this.protocol = `/shoal/${init.cluster}/manager/2.0.0`
    this.windowFigures = new WindowFigures(
      components.traffic ?? (async () => ({ versions: {}, loadBalancers: [] })),
      this.log,
    )
    const id = components.membership.id
    this.clientId = `${id}/${Math.random().toString(36).slice(2, 10)}`
    this.transport = new RaftTransport(
      // A dial or a write slower than an election timeout is of no use to Raft; shorter ones
      // find a peer back soon after a cut heals (a dial or write into a cut waits for its timeout).
      {
        cluster: init.cluster,
        dialTimeoutMs: init.raftTickMs * init.electionTicks,
        writeTimeoutMs: init.raftTickMs * init.electionTicks,
      },
      {
        network: components.network,
        selfId: id,
        deliver: (message) => this.host.receive(message),
        logger: components.logger,
      },
    )
    this.host = new RaftHost(
      {
        cluster: init.cluster,
        id,
        tickMs: init.raftTickMs,
        electionTicks: init.electionTicks,
        heartbeatTicks: init.heartbeatTicks,
      },
      {
        storage: components.raftStorage,
        send: (messages) => this.transport.send(messages),
        signer: keySigner(components.privateKey),
        verifier: peerIdVerifier(),
        machine: this.machine,
        logger: components.logger,
        onChange: () => this.soon(),
      },
    )
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.startedAt = Date.now()
    await this.transport.start()
    await serve(
      this.components.network,
      this.protocol,
      { timeoutMs: COMMAND_TIMEOUT_MS, maxBytes: MAX_COMMAND_BYTES },
      this.log,
      async (ch) => {
        const { request, command } = decodeJson(wireRequest, await ch.read(), 'manager request')
        const answer = await this.answer(command, request)
        await ch.write(encodeJson(answer))
      },
    )
    const saved = await this.components.raftStorage.loadMeta('genesis')
    if (saved != null) this.genesis = JSON.parse(saved) as { generation: number; voters: string[] } | null
    await this.host.boot(null)
    const { events } = this.components.membership
    for (const name of [
      'member:join',
      'member:update',
      'member:dead',
      'member:leave',
      'member:suspect',
    ] as const)
      this.unsubscribe.push(events.on(name, () => this.soon()))
    this.unsubscribe.push(this.components.store.events.on('state:changed', () => this.soon()))
    this.timer = setInterval(() => void this.tick(), this.init.tickMs)
    await this.tick()
  }

  /** `handOver`: a leader that leaves gracefully first hands leadership to another voter. */
  async stop(options: { handOver?: boolean } = {}): Promise<void> {
    if (!this.running) return
    if (options.handOver === true) await this.handOver()
    this.running = false
    clearInterval(this.timer)
    clearTimeout(this.wakeTimer)
    for (const off of this.unsubscribe.splice(0)) off()
    this.host.stop()
    await this.components.network.unhandle(this.protocol).catch(() => {})
    await this.transport.stop()
    await this.decisions.catch(() => {})
  }

  status(): ManagerStatus {
    const self = this.components.membership.id
    const raft = this.host.status()
    const members = this.components.membership.members()
    const alive = (id: string) => members.some((m) => m.id === id && m.state === 'alive')
    if (raft == null || !this.inRaft(raft)) {
      // Not in the configuration: it follows what the leader last published.
      const state = this.components.store.current()
      const publisher = state.manager === '' ? null : state.manager
      const manager =
        publisher != null &&
        members.some((m) => m.id === publisher && (m.state === 'alive' || m.state === 'suspect'))
          ? publisher
          : null
      return {
        manager,
        term: state.term,
        quorum: manager != null,
        voters: state.voters,
        aliveVoters: state.voters.filter(alive).length,
        claim: null,
        acting: false,
        self: false,
        learners: state.raft?.learners ?? [],
        role: 'observer',
        commitIndex: state.seq,
        appliedIndex: state.seq,
      }
    }
    const leads = raft.leader === self
    const acting = leads && this.host.canDecide()
    return {
      manager: raft.leader,
      term: raft.term,
      quorum: leads ? acting : raft.leader != null,
      voters: [...raft.config.voters],
      aliveVoters: raft.config.voters.filter(alive).length,
      claim: leads ? raft.term : null,
      acting,
      self: leads,
      learners: [...raft.config.learners],
      role: raft.role,
      commitIndex: raft.commit,
      appliedIndex: this.machine.lastIndex,
    }
  }

  /**
   * Carries out a command on the leader, wherever it runs, and answers once the
   * decision is committed and applied. Without a leader that holds a majority,
   * nothing may change: ERR_NO_QUORUM.
   */
  async command(input: ManagerCommand): Promise<RolloutRecord> {
    return (await this.commandAt(input)).rollout
  }

  /** command(), with the log index the decision was committed at (what a read must reach). */
  async commandAt(input: ManagerCommand): Promise<{ rollout: RolloutRecord; index: number }> {
    const command = commandSchema.parse(input)
    const answer = (await this.submit(command)) as { rollout?: unknown; index?: number }
    return { rollout: answer.rollout as RolloutRecord, index: answer.index ?? 0 }
  }

  /**
   * Unpublishes a version, on the leader wherever it runs (docs/distributions.md).
   * ERR_VERSION_IN_USE when a node runs it, the cluster wants it or a rollout in the
   * history names it; ERR_UNKNOWN_DISTRIBUTION when the leader does not know it.
   */
  async unpublish(input: { id: string; requestedBy?: string }): Promise<Unpublishing> {
    const command = unpublishCommand.parse({ ...input, op: 'unpublish' })
    const answer = await this.submit(command)
    return (answer as { unpublished?: unknown }).unpublished as Unpublishing
  }

  /** The voters and learners, as this node sees them (the leader adds how far each one's log is). */
  voters(): VotersView {
    const status = this.status()
    const raft = this.host.status()
    const leads = raft?.role === 'leader'
    const members = new Map(this.components.membership.members().map((m) => [m.id, m.state as string]))
    const row = (id: string, role: 'voter' | 'learner') => ({
      id,
      role,
      state: members.get(id) ?? 'gone',
      leader: id === status.manager,
      match: !leads ? null : id === raft?.id ? raft.lastIndex : (raft?.progress[id]?.match ?? null),
    })
    return {
      leader: status.manager,
      term: status.term,
      generation: this.genesis?.generation ?? this.components.store.current().raft?.generation ?? 0,
      commitIndex: status.commitIndex,
      maxVoters: this.init.maxVoters ?? 5,
      members: [
        ...status.voters.map((id) => row(id, 'voter')),
        ...status.learners.map((id) => row(id, 'learner')),
      ],
    }
  }

  /**
   * The escape hatch after a majority of the voters is lost for good (as etcd's
   * --force-new-cluster): this node starts a new generation of the cluster's log
   * as its only voter, from the state it has applied. Decisions committed by the
   * lost majority that this node had not applied are lost. Every agent follows the
   * new generation (only a voter it knew may start one: published-proof.ts), and
   * the voter policy then brings voters in again.
   */
  async resetVoters(): Promise<VotersView> {
    const self = this.components.membership.id
    const raft = this.host.status()
    // Only a node that was in the configuration holds the cluster's decisions (an agent that
    // merely follows the published state booted its log from the genesis and holds nothing).
    if (raft == null || this.genesis == null || !inConfig(raft, self) || this.machine.lastIndex === 0)
      throw new NoRaftLogError()
    const generation =
      Math.max(this.genesis.generation, this.components.store.current().raft?.generation ?? 0) + 1
    const genesis = { generation, voters: [self] }
    this.log.warn('voters reset: this node starts a new generation of the log as its only voter', {
      generation,
      applied: this.machine.lastIndex,
    })
    await this.components.raftStorage.saveMeta('genesis', JSON.stringify(genesis))
    this.genesis = genesis
    const base = genesisSnapshot([self])
    await this.host.restartFrom({ meta: base.meta, data: this.machine.encode() })
    this.published = null
    this.compactAfterTermStart = true
    this.host.campaign()
    await this.host.untilCanDecide(MANAGER_WAIT_MS)
    this.soon()
    return this.voters()
  }

  // --- commands, from any agent to the leader ------------------------------------------

  /**
   * Sends `command` to the leader (or runs it here when this node leads), with one
   * request id for every attempt: a retry after a lost answer or a change of
   * leader is applied once.
   */
  private async submit(command: ParsedCommand | ParsedUnpublish): Promise<Extract<WireAnswer, { ok: true }>> {
    // One session per command: the sessions assume one request in flight per client, and an
    // agent sends several at once (a later one applied first made the earlier one "stale").
    const request: RequestId = { client: `${this.clientId}/${++this.seq}`, seq: 1 }
    const deadline = Date.now() + COMMAND_TIMEOUT_MS
    let noLeaderSince: number | null = null
    let hint: string | null = null
    let lastError: unknown = null
    for (;;) {
      const self = this.components.membership.id
      const target: string | null = hint ?? this.leaderHint()
      hint = null
      let answer: WireAnswer | null = null
      if (target === self) answer = await this.answer(command, request)
      else if (target != null)
        answer = await this.forward(target, command, request).catch((err: unknown) => {
          lastError = err
          return null
        })
      if (answer?.ok === true) return answer
      if (answer != null && answer.ok === false) {
        if (answer.leader === undefined) throw new RemoteError(answer.error.code, answer.error.message)
        // Asked a node that does not lead: go where it points, or wait for an election.
        hint = answer.leader != null && answer.leader !== target ? answer.leader : null
        lastError = new RemoteError(answer.error.code, answer.error.message)
      }
      if (target == null || (answer?.ok === false && hint == null)) noLeaderSince ??= Date.now()
      else noLeaderSince = null
      const now = Date.now()
      if (now >= deadline || (noLeaderSince != null && now - noLeaderSince >= MANAGER_WAIT_MS)) {
        if (lastError instanceof ShoalError && !hasCode(lastError, NoManagerError)) throw lastError
        if (target == null || noLeaderSince != null) throw this.noQuorum()
        throw new NoManagerError(`could not reach the manager ${target}: ${messageOf(lastError)}`, {
          cause: lastError,
        })
      }
      if (hint == null) await new Promise((r) => setTimeout(r, Math.min(this.init.tickMs, 100)))
    }
  }

  /** Who leads, as this node knows: its Raft view, else the writer of the newest published state. */
  private leaderHint(): string | null {
    const raft = this.host.status()
    if (raft != null && this.inRaft(raft)) return raft.leader
    const state = this.components.store.current()
    if (state.manager === '') return null
    const m = this.components.membership.members().find((x) => x.id === state.manager)
    return m != null && (m.state === 'alive' || m.state === 'suspect') ? state.manager : null
  }

  /**
   * In the Raft configuration. A voter removed while it was cut off never receives
   * the entry that removes it (the leader sends it nothing more): the state the
   * leader published after its own log ends says so.
   */
  private inRaft(raft: RaftStatus): boolean {
    const self = this.components.membership.id
    if (!inConfig(raft, self)) return false
    const published = this.components.store.current()
    if (published.raft == null || published.seq <= this.machine.lastIndex) return true
    return published.voters.includes(self) || published.raft.learners.includes(self)
  }

  private async forward(
    target: string,
    command: ParsedCommand | ParsedUnpublish,
    request: RequestId,
  ): Promise<WireAnswer> {
    return exchange(
      this.components.network,
      peerIdFromString(target),
      this.protocol,
      { timeoutMs: COMMAND_TIMEOUT_MS, maxBytes: MAX_COMMAND_BYTES },
      async (ch) => {
        await ch.write(encodeJson({ v: 2, request, command }))
        return decodeJson(wireAnswer, await ch.read(), 'manager answer')
      },
    )
  }

  /** A command on this node: carried out when it leads, else a pointer to the leader. */
  private async answer(command: ParsedCommand | ParsedUnpublish, request: RequestId): Promise<WireAnswer> {
    try {
      if (command.op === 'unpublish') {
        const { answer, index } = await this.executeUnpublish(command, request)
        if (!('unpublished' in answer)) throw new Error('an unpublish answered with a rollout')
        return { ok: true, index, unpublished: answer.unpublished }
      }
      const { answer, index } = await this.execute(command, request)
      if (!('rollout' in answer)) throw new Error('a rollout command answered with an unpublish')
      const rollout = this.machine.state().rollouts.find((r) => r.id === answer.rollout)
      return { ok: true, index, rollout }
    } catch (err) {
      if (err instanceof NotLeaderHere)
        return { ok: false, error: { code: 'ERR_NO_MANAGER', message: err.message }, leader: err.leader }
      return { ok: false, error: errorOf(err) }
    }
  }

  private async execute(
    command: ParsedCommand,
    request: RequestId,
  ): Promise<{ answer: CommandAnswer; index: number }> {
    if (command.op === 'rollout' || command.op === 'rollback') {
      await this.mustLead()
      const distribution =
        command.op === 'rollout' ? command.distribution : this.rollbackTarget(command.name, command.to)
      if (this.machine.state().unpublished?.some((u) => u.id === distribution))
        throw new VersionUnpublishedError(distribution)
      await this.requireKnown(distribution)
      const done = await this.decide(request, (state) => {
        // Unpublished while this command waited for the version.
        if (state.unpublished?.some((u) => u.id === distribution))
          throw new VersionUnpublishedError(distribution)
        const { op, ...options } = command
        const rolloutRequest = { ...options, distribution, kind: op } as RolloutRequest
        const created = startRollout(state, rolloutRequest, this.components.membership.members(), (record) =>
          [record.distribution, record.from].some((id) => id != null && this.hasExclusive(id)),
        )
        return { rollout: created.id }
      })
      const created = this.machine
        .state()
        .rollouts.find((r) => 'rollout' in done.answer && r.id === done.answer.rollout)
      if (created != null)
        this.log.info('rollout started', {
          id: created.id,
          distribution,
          strategy: created.strategy,
          kind: command.op,
          index: done.index,
        })
      return done
    }
    return this.decide(request, (state) => ({ rollout: controlRollout(state, command, new Date()).id }))
  }

  private async executeUnpublish(
    command: ParsedUnpublish,
    request: RequestId,
  ): Promise<{ answer: CommandAnswer; index: number }> {
    await this.mustLead()
    const earlier = this.machine.state().unpublished?.find((u) => u.id === command.id)
    if (earlier != null)
      return {
        answer: { unpublished: { result: 'already-unpublished', entry: earlier } },
        index: this.machine.lastIndex,
      }
    await this.requireKnown(command.id)
    const done = await this.decide(request, (state) => {
      const { state: next, done } = unpublishVersion(
        state,
        command,
        this.components.membership.members(),
        new Date(),
      )
      Object.assign(state, next)
      return { unpublished: done }
    })
    if ('unpublished' in done.answer && done.answer.unpublished.result === 'unpublished')
      this.log.info('version unpublished', { ...done.answer.unpublished.entry, index: done.index })
    return done
  }

  /** Throws NotLeaderHere (the asking agent retries at the leader) unless this node leads. */
  private async mustLead(): Promise<void> {
    if (await this.host.untilCanDecide(this.host.isLeader() ? MANAGER_WAIT_MS : 0)) return
    const raft = this.host.status()
    const leader = raft?.leader ?? null
    throw new NotLeaderHere(leader === this.components.membership.id ? null : leader)
  }

  /**
   * Decides on the applied state and commits the difference as one log entry;
   * one decision at a time. `change` edits a copy of the state and returns the
   * answer (or null: a loop decision nobody waits for); it may throw a refusal.
   * A change decided on a state that moved on (a new leader's entries) is decided
   * again.
   */
  private decide(
    request: RequestId | null,
    change: (state: ClusterState) => CommandAnswer | null,
  ): Promise<{ answer: CommandAnswer; index: number }> {
    const run = this.decisions.then(async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        await this.mustLead()
        if (request != null) {
          const earlier = this.machine.answered(request)
          if (earlier != null) return { answer: earlier, index: this.machine.lastIndex }
        }
        const next = this.machine.state()
        const answer = change(next)
        const diff: ClusterChange | null = this.machine.diff(next, answer)
        if (diff == null) return { answer: answer as CommandAnswer, index: this.machine.lastIndex }
        const outcome = await withTimeout(this.host.propose(encodeChange(diff), request), COMMAND_TIMEOUT_MS)
        if (outcome.status === 'applied' || outcome.status === 'duplicate')
          return { answer: (outcome.answer ?? answer) as CommandAnswer, index: outcome.index }
        if (outcome.status !== 'conflict')
          throw new NoManagerError(`the command was not applied (${outcome.status})`)
      }
      throw new NoManagerError('the cluster state kept changing under the command; retry')
    })
    this.decisions = run.catch(() => {})
    return run
  }

  // --- the leader's loop -----------------------------------------------------------------

  /** Runs the loop soon (coalesced): after an applied entry or a membership event. */
  private soon(): void {
    if (!this.running) return
    if (this.ticking) {
      this.tickAgain = true
      return
    }
    queueMicrotask(() => void this.tick())
  }

  private async tick(): Promise<void> {
    if (!this.running || this.ticking) return
    this.ticking = true
    try {
      do {
        this.tickAgain = false
        if (!this.host.booted) await this.tryBoot()
        else {
          await this.followReset()
          await this.abandonLoneFounding()
          await this.followOtherGenesis()
        }
        if (this.host.canDecide()) {
          if (this.compactAfterTermStart) {
            this.compactAfterTermStart = false
            this.host.compactNow()
          }
          this.keepVoters()
          await this.reconcile()
          await this.publish()
        }
      } while (this.tickAgain && this.running)
    } catch (err) {
      if (!(err instanceof NotLeaderHere)) this.log.warn('manager tick failed', { error: messageOf(err) })
    } finally {
      this.ticking = false
    }
  }

  /**
   * A node with no Raft log starts from the cluster's genesis (the founding voter),
   * learned from the state the leader publishes; or founds the cluster when no one
   * announces one, it is the smallest alive eligible member, and (alone) it waited
   * the formation delay to hear of an existing cluster first.
   */
  private async tryBoot(): Promise<void> {
    const state = this.components.store.current()
    if (state.raft != null) {
      await this.bootFrom({ generation: state.raft.generation, voters: state.raft.genesis })
      return
    }
    const self = this.components.membership.id
    const members = this.components.membership.members()
    const others = members.filter((m) => !m.self && (m.state === 'alive' || m.state === 'suspect'))
    // Someone holds a Raft cluster's state: fetch and follow it instead.
    if (others.some((m) => managerAnnouncement.of(m).cluster?.g != null)) return
    const candidates = members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id)
    if (candidates.sort()[0] !== self) return
    if (others.length === 0 && Date.now() - this.startedAt < this.init.formationWaitMs) return
    this.log.info('founding the cluster: no member announces one', { members: members.length })
    await this.bootFrom({ generation: 0, voters: [self] })
    this.host.campaign()
  }

  /**
   * A node that founded a cluster alone (its join was slow, or it started cut off)
   * and decided nothing yet gives its log up when it meets another cluster of the
   * same name that more members follow (or as many, and a smaller id leads): it
   * forgets its state and follows the other one's (published-proof
   * would refuse that state while it holds its own). Two clusters that both
   * decided something stay apart: logged, for an operator (docs/manager.md).
   */
  private async abandonLoneFounding(): Promise<void> {
    const raft = this.host.status()
    const self = this.components.membership.id
    if (raft == null || raft.config.voters.length !== 1 || raft.config.voters[0] !== self) return
    // Founded by this node: a voter that inherited the cluster (the others left) is no lone founder.
    if (this.genesis?.voters.length !== 1 || this.genesis.voters[0] !== self) return
    const other = this.components.membership.members().find((m) => {
      const head = managerAnnouncement.of(m).cluster
      return !m.self && m.state === 'alive' && head?.g != null && head.manager !== self && head.manager !== ''
    })
    if (other == null) return
    const head = managerAnnouncement.of(other).cluster!
    // Which founding gives way, so that exactly one does (both at once left no cluster at
    // all, and their followers stranded): the one fewer members follow; on a tie, the larger
    // id. A lone founder that waited for the other by id alone waited for ever when the
    // other had grown past one voter (lone founders only give way), as a netns split test saw.
    const followers = (manager: string) =>
      this.components.membership
        .members()
        .filter((m) => m.state === 'alive' && managerAnnouncement.of(m).cluster?.manager === manager).length
    const theirs = followers(head.manager)
    const mine = followers(self)
    if (this.machine.version === 0 && (mine > theirs || (mine === theirs && head.manager > self))) return
    if (this.machine.version !== 0) {
      if (!this.warnedSplitBrain)
        this.log.error(
          'another cluster of the same name decides apart from this one; both decided things, so neither gives way: stop one side and start it with --bootstrap to the other (or run shoal voters reset there)',
          {
            other: head.manager,
          },
        )
      this.warnedSplitBrain = true
      return
    }
    this.log.warn(
      'this node founded a cluster alone and decided nothing: it joins the cluster it met instead',
      {
        other: head.manager,
      },
    )
    this.host.stop()
    this.genesis = null
    this.published = null
    await this.components.raftStorage.clear()
    await this.components.raftStorage.saveMeta('genesis', 'null')
    await this.components.store.forget()
  }

  /**
   * This node follows (it is not in the configuration) a log whose founder gave way to
   * another cluster: the store now holds that cluster's state, with another genesis.
   * Its log holds no decision of its own: start it again from the new genesis.
   */
  private async followOtherGenesis(): Promise<void> {
    const published = this.components.store.current().raft
    const raft = this.host.status()
    if (published == null || raft == null || this.genesis == null) return
    if (inConfig(raft, this.components.membership.id)) return
    if (published.generation !== this.genesis.generation) return
    if (published.genesis.join() === this.genesis.voters.join()) return
    this.log.info('following the cluster whose state this node now holds (another founding)', {
      founder: published.genesis[0],
    })
    this.host.stop()
    await this.components.raftStorage.clear()
    await this.bootFrom({ generation: published.generation, voters: published.genesis })
  }

  /** The store adopted a later generation (a voter reset the cluster): start this log again from it. */
  private async followReset(): Promise<void> {
    const published = this.components.store.current().raft
    if (published == null || this.genesis == null || published.generation <= this.genesis.generation) return
    this.log.warn('the cluster was reset by a voter: following its new generation', {
      generation: published.generation,
      founder: published.genesis[0],
    })
    const genesis = { generation: published.generation, voters: published.genesis }
    await this.components.raftStorage.saveMeta('genesis', JSON.stringify(genesis))
    this.genesis = genesis
    await this.host.restartFrom(genesisSnapshot(genesis.voters))
  }

  private async bootFrom(genesis: { generation: number; voters: string[] }): Promise<void> {
    await this.components.raftStorage.saveMeta('genesis', JSON.stringify(genesis))
    this.genesis = genesis
    await this.host.boot(genesisSnapshot(genesis.voters))
  }

  /** One voter change at a time, when the last one is committed (voter-policy.ts). */
  private keepVoters(): void {
    const raft = this.host.status()
    if (raft == null || this.leaving) return
    const members = this.components.membership.members()
    const now = Date.now()
    const byId = new Map(members.map((m) => [m.id, m]))
    for (const id of [...raft.config.voters, ...raft.config.learners]) {
      const s = byId.get(id)?.state
      if (s === 'alive' || s === 'suspect') this.goneSince.delete(id)
      else if (!this.goneSince.has(id)) this.goneSince.set(id, now)
    }
    const match: Record<string, number> = {}
    for (const [id, p] of Object.entries(raft.progress)) match[id] = p.match
    const change = nextVoterChange({
      config: raft.config,
      self: raft.id,
      commit: raft.commit,
      match,
      members,
      goneSince: this.goneSince,
      now,
      removalMs: this.init.voterRemovalMs,
      maxVoters: this.init.maxVoters ?? 5,
    })
    if (change == null) return
    try {
      const at = this.host.proposeConfigChange(change)
      this.log.info('voters', { ...change, index: at.index })
    } catch (err) {
      // A change in flight, or this leader has not committed in its term yet: next tick.
      this.log.debug('voter change deferred', { ...change, error: messageOf(err) })
    }
  }

  /** The leader's duties: adopt a pre-Raft state once, step the newest rollout, place components. */
  private async reconcile(): Promise<void> {
    await this.decide(null, (state) => {
      const legacy = this.components.store.current()
      if (this.machine.version === 0 && legacy.raft == null && legacy.seq > 0) {
        // The cluster ran an older manager: its state becomes the log's first decision.
        const { defaultTarget, targets, placement, placementFrom, unplaced, rollouts, unpublished } = legacy
        Object.assign(state, { defaultTarget, targets, placement, placementFrom, unplaced, rollouts })
        if (unpublished != null) state.unpublished = unpublished
      }
      const now = Date.now()
      const members = this.components.membership.members()
      const term = this.host.status()?.term ?? 0
      if (this.leading.term !== term) this.leading = { term, since: now }
      const latest = state.rollouts[0]
      const observations = observe(members)
      if (
        latest != null &&
        !isFinished(latest) &&
        mayStep(latest, observations, now - this.leading.since, this.init.voterRemovalMs)
      ) {
        const stepped = step(latest, {
          now,
          traffic: (window) => this.windowFigures.get(latest, window, now, () => this.soon()),
          observations,
          members: members.filter((m) => m.state === 'alive' && isEligible(m)).map((m) => m.id),
          readySince: this.readySince.for(latest.id, term),
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
      return null
    })
  }

  /** Publishes the applied state to every agent (the store signs it and members fetch it). */
  private async publish(): Promise<void> {
    const raft = this.host.status()
    if (raft == null) return
    const config = JSON.stringify(raft.config)
    const index = this.machine.lastIndex
    const p = this.published
    if (p != null && p.index === index && p.term === raft.term && p.config === config) return
    const state = this.machine.state()
    if (this.genesis == null) return
    const { generation, voters: genesis } = this.genesis
    const certificate = raft.certificate
    const chain = this.host.configChain(0)?.chain.filter((r) => r.index <= raft.commit) ?? []
    if (certificate == null) return
    await this.components.store.write({
      ...state,
      term: raft.term,
      seq: index,
      manager: raft.id,
      issuedAt: new Date().toISOString(),
      voters: [...raft.config.voters],
      raft: {
        generation,
        genesis,
        learners: [...raft.config.learners],
        proof: proofOf(certificate, chain),
      },
    })
    this.published = { index, term: raft.term, config }
  }

  /**
   * A leader that leaves hands over to the most up-to-date other voter first (no
   * election timeout to wait out). The only voter first brings another agent in
   * (learner, caught up, promoted), or the cluster would keep no voter at all.
   */
  private async handOver(): Promise<void> {
    this.leaving = true
    const deadline = Date.now() + HAND_OVER_MS
    const wait = async (done: () => boolean) => {
      while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      return done()
    }
    const raft = this.host.status()
    if (raft == null || raft.role !== 'leader') return
    if (raft.config.voters.length === 1) {
      const successor = this.components.membership
        .members()
        .filter((m) => !m.self && m.state === 'alive' && isEligible(m))
        .map((m) => m.id)
        .sort(
          (a, b) => Number(raft!.config.learners.includes(b)) - Number(raft!.config.learners.includes(a)),
        )[0]
      if (successor == null) return
      try {
        const caughtUp = () => {
          const s = this.host.status()
          return s != null && (s.progress[successor]?.match ?? 0) >= s.commit && s.commit >= s.lastIndex
        }
        const committed = (index: number) => () => (this.host.status()?.commit ?? 0) >= index
        await wait(() => this.host.status()?.commit === this.host.status()?.lastIndex)
        if (!raft.config.learners.includes(successor)) {
          const at = this.host.proposeConfigChange({ op: 'add-learner', node: successor })
          if (!(await wait(committed(at.index)))) return
        }
        if (!(await wait(caughtUp))) return
        const at = this.host.proposeConfigChange({ op: 'add-voter', node: successor })
        if (!(await wait(committed(at.index)))) return
        // Two voters now: leave the configuration rather than hand over. After a transfer the
        // new leader would need this node's vote to remove it, and it is leaving.
        const out = this.host.proposeConfigChange({ op: 'remove', node: raft.id })
        await wait(() => committed(out.index)() || !this.host.isLeader())
        this.log.info('left the voters to a successor', { successor, done: !this.host.isLeader() })
      } catch (err) {
        this.log.debug('could not bring a successor in', { error: messageOf(err) })
      }
      return
    }
    const current = raft
    if (current.config.voters.length === 2) {
      // Two voters: leave the configuration (committed by the other, now the only voter)
      // rather than hand over: the new leader would need this node's vote to remove it.
      try {
        // The change before (often the removal of a voter that just left) may not be committed yet.
        let out: { index: number } | null = null
        while (out == null) {
          try {
            out = this.host.proposeConfigChange({ op: 'remove', node: current.id })
          } catch (err) {
            if (Date.now() >= deadline || !this.host.isLeader()) throw err
            await new Promise((r) => setTimeout(r, 20))
          }
        }
        const index = out.index
        await wait(() => (this.host.status()?.commit ?? 0) >= index || !this.host.isLeader())
        this.log.info('left the voters', { done: !this.host.isLeader() })
      } catch (err) {
        this.log.debug('could not leave the voters', { error: messageOf(err) })
      }
      return
    }
    const others = current.config.voters.filter((id) => id !== current.id)
    const target = others.sort(
      (a, b) => (current.progress[b]?.match ?? 0) - (current.progress[a]?.match ?? 0),
    )[0]
    if (target == null) return
    try {
      this.host.transferLeadership(target)
    } catch (err) {
      this.log.debug('leadership transfer refused', { error: messageOf(err) })
      return
    }
    await wait(() => !this.host.isLeader())
    if (this.host.isLeader()) {
      // The transfer did not complete in time: leave the configuration instead (the others
      // then keep a majority of their own and elect one), rather than leave as a voter.
      try {
        this.host.proposeConfigChange({ op: 'remove', node: current.id })
        const until = Date.now() + 3000
        while (this.host.isLeader() && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
      } catch (err) {
        this.log.debug('could not leave the voters', { error: messageOf(err) })
      }
    }
    this.log.info('leadership handed over', { to: target, done: !this.host.isLeader() })
  }

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
   * has passed: run the loop right then rather than up to a tick later.
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

  /** `--to`, else the version the cluster ran before the current one. */
  private rollbackTarget(name: string, to: string | undefined): string {
    const state = this.machine.state()
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

  private noQuorum(): NoQuorumError {
    const view = this.status()
    const alive = `${view.aliveVoters} of ${view.voters.length} voters alive`
    // With a majority alive the cause is an election (a restart, a leader that just
    // died) or a leader still catching up with its term: saying "a majority is needed"
    // then sends the operator looking for dead voters that are not dead.
    if (view.aliveVoters * 2 > view.voters.length)
      return new NoQuorumError(
        view.manager == null
          ? `no manager yet: an election is under way (${alive}); retry in a moment`
          : `the manager is not ready to decide yet (${alive}: it is catching up with its term); retry in a moment`,
      )
    return new NoQuorumError(
      view.manager == null
        ? `no manager: this node sees ${alive}, a majority is needed`
        : `the manager cannot act: ${alive}, a majority is needed`,
    )
  }
}

function inConfig(raft: RaftStatus, id: NodeId): boolean {
  return raft.config.voters.includes(id) || raft.config.learners.includes(id)
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new NoManagerError('the command was not committed in time; its outcome is unknown: retry')),
      ms,
    )
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** A refusal as it goes back on the wire: its code and message (the asking agent answers with them). */
function errorOf(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof ShoalError) return { code: err.code, message: err.message }
  return { code: INTERNAL, message: messageOf(err) }
}
