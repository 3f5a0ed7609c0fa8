/**
 * One Raft node as a deterministic state machine (Ongaro & Ousterhout, "In Search
 * of an Understandable Consensus Algorithm", and Ongaro's thesis). Inputs: tick(),
 * step(message), propose(), proposeConfigChange(), transferLeadership(),
 * compact(). Output: ready() / advance() (ready.ts says in which order to carry
 * it out). No I/O, no timers, no clock, no Math.random: the same inputs give the
 * same outputs, which is what lets the simulation (bench/raft-sim) be believed.
 *
 * Beyond the paper's election and replication it has: pre-vote (a node that was
 * cut off does not raise terms when it comes back), check-quorum (a leader that
 * has not heard from a majority for an election timeout steps down), leader
 * stickiness (a node that heard from a leader within the minimum election timeout
 * neither votes nor pre-votes for anyone else), a leader lease built on that
 * stickiness (lease.ts), single-server membership changes with learners,
 * snapshots, leadership transfer and majority certificates (certificate.ts).
 */
import {
  type Certificate,
  configBytes,
  type SignatureContext,
  type Signer,
  type Verifier,
  verifyLeader,
  verifyVoter,
  voteBytes,
} from './certificate.js'
import { applyConfigChange } from './config-change.js'
import {
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  DEFAULT_MAX_APPLY_PER_READY,
  DEFAULT_MAX_BYTES_PER_MESSAGE,
  DEFAULT_MAX_CLOCK_DRIFT,
  DEFAULT_MAX_ENTRIES_PER_MESSAGE,
  DEFAULT_MAX_INFLIGHT,
  DEFAULT_SNAPSHOT_THRESHOLD,
  VOTE_REQUEST_CHAIN,
} from './constants.js'
import { randomizedElectionTimeout, VoteTally } from './election.js'
import {
  ConfigChangePendingError,
  InvalidConfigChangeError,
  NotLeaderError,
  RaftConfigError,
  TransferInProgressError,
} from './errors.js'
import { checkLease, maxLeaseTicks } from './lease.js'
import { DEFAULT_CONFIG_HISTORY, RaftLog } from './log.js'
import type {
  AppendRequest,
  AppendResponse,
  HeartbeatResponse,
  LeaderMessage,
  Message,
  PreVoteRequest,
  SnapshotRequest,
  UnverifiedResponse,
  VoteRequest,
  VoteResponse,
} from './messages.js'
import { Progress } from './progress.js'
import { isMajority, majorityValue } from './quorum.js'
import type { Ready, SoftState } from './ready.js'
import type {
  ClusterConfig,
  ConfigChange,
  ConfigRecord,
  Entry,
  HardState,
  NodeId,
  PersistedState,
  RequestId,
  Role,
} from './types.js'
import { isMember, isVoter } from './types.js'

export interface RaftInit {
  /** This node's id (its libp2p peer id in Shoal). */
  readonly id: NodeId
  /** Scopes every signature, so a vote in one cluster is worth nothing in another. */
  readonly cluster: string
  readonly signer: Signer
  readonly verifier: Verifier
  /** Uniform in [0, 1): election timeouts are drawn from it. Seed it in tests and simulations. */
  readonly random: () => number
  /** Minimum election timeout, in ticks; each timeout is drawn in [E, 2E). @default 10 */
  readonly electionTicks?: number
  /** Ticks between heartbeats; must be below electionTicks. @default 1 */
  readonly heartbeatTicks?: number
  /** Clock rate difference tolerated between nodes, as a ratio (lease.ts). @default 0.01 */
  readonly maxClockDrift?: number
  /** Lease length in ticks from the send time of what a majority acked. @default the maximum safe (lease.ts): 8 for the defaults */
  readonly leaseTicks?: number
  /** Pre-vote before raising the term (thesis §9.6). @default true */
  readonly preVote?: boolean
  /** Leaders step down without a majority; followers stay loyal to a live leader (needed by the lease). @default true */
  readonly checkQuorum?: boolean
  /** @default 64 */
  readonly maxInflight?: number
  /** @default 64 */
  readonly maxEntriesPerMessage?: number
  /** @default 1 MiB */
  readonly maxBytesPerMessage?: number
  /** @default 256 */
  readonly maxApplyPerReady?: number
  /** Entries applied past the last snapshot before Ready.snapshotRequest asks for one. @default 1000 */
  readonly snapshotThreshold?: number
  /** Configuration records a snapshot keeps for lagging nodes' chains (certificate.ts). @default 64 */
  readonly configHistory?: number
  /** The index the state machine already holds (a durable state machine); @default the snapshot's index */
  readonly applied?: number
}

/** Answer to leaseRead(). */
export type LeaseRead =
  | { readonly ok: true; readonly index: number }
  | {
      readonly ok: false
      /** not-leader; no-commit-yet (the new leader has not committed an entry of its term); lease-expired. */
      readonly reason: 'not-leader' | 'no-commit-yet' | 'lease-expired'
      readonly leader: NodeId | null
    }

export interface RaftStatus {
  readonly id: NodeId
  readonly role: Role
  readonly term: number
  readonly vote: NodeId | null
  readonly leader: NodeId | null
  readonly commit: number
  readonly applied: number
  readonly lastIndex: number
  readonly snapshotIndex: number
  readonly config: ClusterConfig
  /** Leader with a valid lease: may answer reads and act alone right now. */
  readonly acting: boolean
  readonly certificate: Certificate | null
  readonly progress: Readonly<Record<NodeId, { match: number; next: number; state: string }>>
}

/** Counters for tests and metrics. */
export interface RaftCounters {
  elections: number
  preVotesLost: number
  /** Leader messages refused because their certificate did not verify. */
  unverified: number
  /** Leaders verified through a chain of configuration records. */
  chainVerified: number
  snapshotsSent: number
  snapshotsInstalled: number
}

export class RaftNode {
  readonly id: NodeId
  private readonly ctx: SignatureContext
  private readonly random: () => number
  private readonly electionTicks: number
  private readonly heartbeatTicks: number
  private readonly leaseTicks: number
  private readonly preVote: boolean
  private readonly checkQuorum: boolean
  private readonly maxInflight: number
  private readonly maxEntriesPerMessage: number
  private readonly maxBytesPerMessage: number
  private readonly maxApplyPerReady: number
  private readonly snapshotThreshold: number

  private readonly log: RaftLog
  private term: number
  private vote: NodeId | null
  private role: Role = 'follower'
  private leader: NodeId | null = null
  /** The (term, leader) whose certificate this node checked. */
  private verified: { term: number; leader: NodeId } | null = null

  /** Ticks since this node started (the lease's clock). */
  private now = 0
  private electionElapsed = 0
  private randomizedTimeout: number
  /** Ticks since a leader last spoke to us; starts at 0 so a restarted node stays loyal for a timeout (lease.ts). */
  private leaderContactElapsed = 0
  private heartbeatElapsed = 0

  private tally: VoteTally | null = null
  private readonly progress = new Map<NodeId, Progress>()
  private certificate: Certificate | null = null
  private termStartIndex = 0
  private transfer: { target: NodeId } | null = null
  /** Set once this leader sent TimeoutNow: the voters will ignore their stickiness, so the lease is gone for the term. */
  private leaseRevoked = false
  private needsBroadcast = false

  private outbox: Message[] = []
  private persistedHardState: HardState
  private reportedSoftState: SoftState
  private inFlight: Ready | null = null
  private snapshotRequestedAt = -1

  readonly counters: RaftCounters = {
    elections: 0,
    preVotesLost: 0,
    unverified: 0,
    chainVerified: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
  }

  constructor(init: RaftInit, state: PersistedState) {
    this.id = init.id
    this.ctx = { cluster: init.cluster, signer: init.signer, verifier: init.verifier }
    this.random = init.random
    this.electionTicks = init.electionTicks ?? DEFAULT_ELECTION_TICKS
    this.heartbeatTicks = init.heartbeatTicks ?? DEFAULT_HEARTBEAT_TICKS
    const drift = init.maxClockDrift ?? DEFAULT_MAX_CLOCK_DRIFT
    if (!(Number.isInteger(this.electionTicks) && this.electionTicks >= 3))
      throw new RaftConfigError(`electionTicks must be a whole number >= 3; got ${this.electionTicks}`)
    if (
      !(
        Number.isInteger(this.heartbeatTicks) &&
        this.heartbeatTicks >= 1 &&
        this.heartbeatTicks < this.electionTicks
      )
    )
      throw new RaftConfigError(
        `heartbeatTicks must be a whole number in [1, electionTicks); got ${this.heartbeatTicks}`,
      )
    if (!(drift >= 0 && drift < 0.5))
      throw new RaftConfigError(`maxClockDrift must be in [0, 0.5); got ${drift}`)
    this.leaseTicks = init.leaseTicks ?? maxLeaseTicks(this.electionTicks, drift)
    checkLease(this.leaseTicks, this.electionTicks, drift)
    this.preVote = init.preVote ?? true
    this.checkQuorum = init.checkQuorum ?? true
    this.maxInflight = init.maxInflight ?? DEFAULT_MAX_INFLIGHT
    this.maxEntriesPerMessage = init.maxEntriesPerMessage ?? DEFAULT_MAX_ENTRIES_PER_MESSAGE
    this.maxBytesPerMessage = init.maxBytesPerMessage ?? DEFAULT_MAX_BYTES_PER_MESSAGE
    this.maxApplyPerReady = init.maxApplyPerReady ?? DEFAULT_MAX_APPLY_PER_READY
    this.snapshotThreshold = init.snapshotThreshold ?? DEFAULT_SNAPSHOT_THRESHOLD

    const { hardState, snapshot, entries } = state
    this.log = new RaftLog(
      snapshot,
      entries,
      hardState.commit,
      init.applied ?? snapshot.meta.index,
      init.configHistory ?? DEFAULT_CONFIG_HISTORY,
    )
    this.term = Math.max(hardState.term, this.log.lastTerm())
    this.vote = hardState.term === this.term ? hardState.vote : null
    this.persistedHardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit }
    this.randomizedTimeout = randomizedElectionTimeout(this.electionTicks, this.random)
    this.reportedSoftState = this.softState()
  }

  // ── inputs ────────────────────────────────────────────────────────────────

  /** One tick of the adapter's clock. A paused process must tick for the time it missed before acting (lease.ts). */
  tick(): void {
    this.now++
    this.leaderContactElapsed++
    if (this.role === 'leader') this.tickLeader()
    else this.tickElection()
  }

  /** A message from the network; `message.from` must be the authenticated sender. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return
    } else if (m.term < this.term) {
      this.stepLowerTerm(m)
      return
    }
    switch (m.type) {
      case 'pre-vote':
        this.onPreVote(m)
        return
      case 'vote':
        this.onVote(m)
        return
      case 'pre-vote-response':
        this.onPreVoteResponse(m.from, m.granted && m.term === this.term + 1)
        return
      case 'vote-response':
        this.onVoteResponse(m)
        return
      case 'append-response':
        this.onAppendResponse(m)
        return
      case 'heartbeat-response':
        this.onHeartbeatResponse(m)
        return
      case 'unverified':
        this.onUnverified(m)
        return
      default:
        this.onLeaderMessage(m)
    }
  }

  /** Appends a command (leader only). Returns where it is; it is applied once an entry with that index and term is. */
  propose(data: Uint8Array, request: RequestId | null = null): { index: number; term: number } {
    this.mustLeadAlone()
    const index = this.log.lastIndex() + 1
    this.appendOwn({ kind: 'command', index, term: this.term, request, data })
    return { index, term: this.term }
  }

  /**
   * Appends a single-server configuration change (leader only). It is in force on
   * every node as soon as that node appends it. Refused while another change is
   * not committed, and before the leader committed an entry of its term (the
   * thesis' fix for single-server changes across leader changes).
   */
  proposeConfigChange(change: ConfigChange): { index: number; term: number } {
    this.mustLeadAlone()
    if (this.log.pendingConfigIndex() != null)
      throw new ConfigChangePendingError('a configuration change is not committed yet')
    if (this.log.committed < this.termStartIndex)
      throw new ConfigChangePendingError('this leader has not committed an entry of its term yet')
    const config = applyConfigChange(this.log.latestConfig().config, change)
    const index = this.log.lastIndex() + 1
    const signature = this.ctx.signer.sign(configBytes(this.ctx.cluster, { index, term: this.term, config }))
    this.appendOwn({
      kind: 'config',
      index,
      term: this.term,
      config,
      change,
      certificate: this.certificate!,
      signature,
    })
    this.syncProgressWithConfig()
    return { index, term: this.term }
  }

  /**
   * Hands leadership to `target` (a voter): once its log is as long as ours, it is
   * told to start an election at once (TimeoutNow). Proposals are refused
   * meanwhile; the transfer is dropped after an election timeout.
   */
  transferLeadership(target: NodeId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader)
    if (target === this.id) return
    if (!isVoter(this.log.latestConfig().config, target))
      throw new InvalidConfigChangeError(`${target} is not a voter and cannot lead`)
    if (this.transfer?.target === target) return
    this.transfer = { target }
    this.electionElapsed = 0
    const pr = this.progress.get(target)!
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target)
    else this.sendAppend(target, true)
  }

  /** The state machine saved itself as of `index` (≤ what it applied): drop the log up to there. */
  compact(index: number, data: Uint8Array): void {
    this.log.compact(index, data)
  }

  /** Starts an election now, as if the election timeout had passed (tests; a node asked to take over). */
  campaign(): void {
    if (this.role !== 'leader') this.startElection(false)
  }

  // ── queries ───────────────────────────────────────────────────────────────

  /**
   * A linearizable read without a round trip: the index to wait for (apply up to
   * it, then read). Only a leader whose lease is valid and that committed an entry
   * of its term may answer. Call it after the ticks for the time elapsed.
   */
  leaseRead(): LeaseRead {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', leader: this.leader }
    if (this.log.committed < this.termStartIndex)
      return { ok: false, reason: 'no-commit-yet', leader: this.id }
    if (!this.leaseValid()) return { ok: false, reason: 'lease-expired', leader: this.id }
    return { ok: true, index: this.log.committed }
  }

  /** Leader with a valid lease: no other node can be acting as leader now. */
  isActingLeader(): boolean {
    return this.role === 'leader' && this.leaseValid()
  }

  /**
   * The configuration records after `index` (oldest first, as far back as this node
   * keeps them) and the newest one: what a node that trusts the record at `index`
   * needs to verify this node's leader (certificate.ts verifyLeader).
   */
  configChain(index: number): { latest: ConfigRecord; committed: ConfigRecord; chain: ConfigRecord[] } {
    return {
      latest: this.log.latestConfig(),
      committed: this.log.committedConfig(),
      chain: this.log.configChainAfter(index),
    }
  }

  /** The entry at `index` when this node holds it (not compacted), for status pages and tests. */
  entryAt(index: number): Entry | undefined {
    return this.log.entry(index)
  }

  /** The term at `index`, or undefined when compacted away or past the end. */
  termAt(index: number): number | undefined {
    return this.log.term(index)
  }

  status(): RaftStatus {
    const progress: Record<NodeId, { match: number; next: number; state: string }> = {}
    for (const [id, pr] of this.progress) progress[id] = { match: pr.match, next: pr.next, state: pr.state }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshot.meta.index,
      config: this.log.latestConfig().config,
      acting: this.isActingLeader(),
      certificate: this.role === 'leader' ? this.certificate : null,
      progress,
    }
  }

  // ── output ────────────────────────────────────────────────────────────────

  hasReady(): boolean {
    if (this.inFlight != null) return false
    return (
      this.outbox.length > 0 ||
      this.needsBroadcast ||
      this.log.hasUnpersisted() ||
      this.log.committed > this.log.applied ||
      !sameHardState(this.hardState(), this.persistedHardState) ||
      !sameSoftState(this.softState(), this.reportedSoftState)
    )
  }

  /** What to persist, then send, then apply (ready.ts); null when nothing, or while the previous Ready is not advanced. */
  ready(): Ready | null {
    if (!this.hasReady()) return null
    if (this.needsBroadcast) this.broadcastAppend()
    const hardState = this.hardState()
    const hardChanged = !sameHardState(hardState, this.persistedHardState)
    const write = this.log.takeWrite()
    const sync =
      write != null ||
      hardState.term !== this.persistedHardState.term ||
      hardState.vote !== this.persistedHardState.vote
    const persist =
      hardChanged || write != null
        ? {
            hardState: hardChanged ? hardState : null,
            snapshot: write?.snapshot ?? null,
            truncateFrom: write?.truncateFrom ?? null,
            entries: write?.entries ?? [],
            sync,
          }
        : null
    this.persistedHardState = hardState

    const restore = this.log.takeSnapshotToRestore()
    if (restore != null) this.counters.snapshotsInstalled++
    const entries = this.log.nextToApply(this.maxApplyPerReady)
    if (entries.length > 0) this.log.applied = entries.at(-1)!.index
    const apply = restore != null || entries.length > 0 ? { snapshot: restore, entries } : null

    const soft = this.softState()
    const changed = sameSoftState(soft, this.reportedSoftState) ? null : soft
    this.reportedSoftState = soft

    let snapshotRequest: Ready['snapshotRequest'] = null
    const snapshotIndex = this.log.snapshot.meta.index
    if (
      this.log.applied - snapshotIndex >= this.snapshotThreshold &&
      this.snapshotRequestedAt < snapshotIndex
    ) {
      this.snapshotRequestedAt = snapshotIndex
      snapshotRequest = { appliedIndex: this.log.applied }
    }

    const send = this.outbox
    this.outbox = []
    const ready: Ready = { persist, send, apply, changed, snapshotRequest }
    this.inFlight = ready
    return ready
  }

  /** The Ready was carried out: its writes are durable, its messages sent, its entries applied. */
  advance(ready: Ready): void {
    if (ready !== this.inFlight) throw new Error('advance() with a Ready that is not the one in flight')
    this.inFlight = null
    const p = ready.persist
    if (p != null && (p.snapshot != null || p.truncateFrom != null || p.entries.length > 0))
      this.log.markDurable()
    if (this.role === 'leader') this.maybeCommit()
  }

  // ── terms ─────────────────────────────────────────────────────────────────

  /** A message with a higher term: returns false when it must be dropped without effect. */
  private stepHigherTerm(m: Message): boolean {
    switch (m.type) {
      case 'pre-vote':
        // Answered below without taking the term: a pre-vote changes nobody's term.
        return true
      case 'pre-vote-response':
        if (m.granted) return true
        if (!isMember(this.log.latestConfig().config, m.from)) return false
        this.becomeFollower(m.term, null)
        return true
      case 'vote':
        if (!m.transfer && this.inLeaderLease()) return false
        if (!this.candidateIsVoter(m)) return false
        this.becomeFollower(m.term, null)
        return true
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'timeout-now':
        if (!this.verifyLeader(m)) return false
        this.becomeFollower(m.term, m.from)
        return true
      default:
        // Responses: only members can make us step down (an outsider's high term means nothing).
        if (!isMember(this.log.latestConfig().config, m.from) && !this.progress.has(m.from)) return false
        this.becomeFollower(m.term, null)
        return true
    }
  }

  /** A message from an older term: tell a stale leader or pre-candidate our term; drop the rest. */
  private stepLowerTerm(m: Message): void {
    if ((m.type === 'append' || m.type === 'heartbeat') && isMember(this.log.latestConfig().config, m.from)) {
      this.send({
        type: 'append-response',
        from: this.id,
        to: m.from,
        term: this.term,
        success: false,
        index: m.type === 'append' ? m.prevLogIndex : 0,
        hint: null,
        sentAt: m.sentAt,
      })
    } else if (m.type === 'pre-vote') {
      this.send({ type: 'pre-vote-response', from: this.id, to: m.from, term: this.term, granted: false })
    }
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (term > this.term) {
      this.term = term
      this.vote = null
    }
    this.role = 'follower'
    this.leader = leader
    this.resetRoleState()
  }

  private resetRoleState(): void {
    this.tally = null
    this.progress.clear()
    this.transfer = null
    this.certificate = null
    this.needsBroadcast = false
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.randomizedTimeout = randomizedElectionTimeout(this.electionTicks, this.random)
  }

  // ── elections ─────────────────────────────────────────────────────────────

  private tickElection(): void {
    this.electionElapsed++
    if (this.electionElapsed >= this.randomizedTimeout && this.promotable()) this.startElection(this.preVote)
    else if (this.electionElapsed >= this.randomizedTimeout) this.electionElapsed = 0
  }

  private promotable(): boolean {
    return isVoter(this.log.latestConfig().config, this.id)
  }

  /** A voter that heard from a leader within the minimum election timeout votes for no one else (lease.ts). */
  private inLeaderLease(): boolean {
    if (!this.checkQuorum) return false
    return this.role === 'leader' || this.leaderContactElapsed < this.electionTicks
  }

  private startElection(preVote: boolean): void {
    if (!this.promotable()) return
    if (preVote) this.becomePreCandidate()
    else this.becomeCandidate(false)
  }

  private becomePreCandidate(): void {
    this.role = 'pre-candidate'
    this.leader = null
    this.resetRoleState()
    this.requestVotes(null, (base) => ({ ...base, type: 'pre-vote', term: this.term + 1 }))
    this.onPreVoteResponse(this.id, true)
  }

  private becomeCandidate(transfer: boolean): void {
    this.term++
    this.vote = this.id
    this.role = 'candidate'
    this.leader = null
    this.resetRoleState()
    this.counters.elections++
    const ownVote = this.ctx.signer.sign(voteBytes(this.ctx.cluster, this.term, this.id))
    this.requestVotes(ownVote, (base) => ({ ...base, type: 'vote', term: this.term, transfer }))
    this.checkElection()
  }

  /**
   * Starts a tally with this node's own vote (`ownVote`: its signature, null for a
   * pre-vote) and asks every other voter, with this log's position and the chain of
   * configurations that proves who the voters are.
   */
  private requestVotes(
    ownVote: Uint8Array | null,
    request: (base: VoteRequestBase) => PreVoteRequest | VoteRequest,
  ): void {
    const config = this.log.latestConfig().config
    const chain = this.log.configChainAfter(-1).slice(-VOTE_REQUEST_CHAIN)
    this.tally = new VoteTally(config)
    this.tally.record(this.id, true, ownVote)
    for (const voter of config.voters) {
      if (voter === this.id) continue
      const base = {
        from: this.id,
        to: voter,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        chain,
      }
      this.send(request(base))
    }
  }

  private onPreVote(m: PreVoteRequest): void {
    // Neither term nor vote changes here: a pre-vote only asks "would you?".
    if (this.inLeaderLease()) return
    const granted =
      m.term > this.term && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm) && this.candidateIsVoter(m)
    this.send({
      type: 'pre-vote-response',
      from: this.id,
      to: m.from,
      term: granted ? m.term : this.term,
      granted,
    })
  }

  private onVote(m: VoteRequest): void {
    const free = this.vote === m.from || (this.vote == null && this.leader == null)
    const granted = free && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm) && this.candidateIsVoter(m)
    if (granted) {
      this.vote = m.from
      this.electionElapsed = 0
    }
    this.send({
      type: 'vote-response',
      from: this.id,
      to: m.from,
      term: this.term,
      granted,
      signature: granted ? this.ctx.signer.sign(voteBytes(this.ctx.cluster, this.term, m.from)) : null,
    })
  }

  private onPreVoteResponse(from: NodeId, granted: boolean): void {
    if (this.role !== 'pre-candidate' || this.tally == null) return
    this.tally.record(from, granted, null)
    const outcome = this.tally.outcome()
    if (outcome === 'won') this.becomeCandidate(false)
    else if (outcome === 'lost') {
      this.counters.preVotesLost++
      this.becomeFollower(this.term, null)
    }
  }

  /** Only a voter, in our configuration or one its chain proves, gets a (pre-)vote: see verifyVoter. */
  private candidateIsVoter(m: PreVoteRequest | VoteRequest): boolean {
    const trusted = { latest: this.log.latestConfig(), committed: this.log.committedConfig() }
    return verifyVoter(m.from, trusted, m.chain, this.ctx)
  }

  private onVoteResponse(m: VoteResponse): void {
    if (this.role !== 'candidate' || this.tally == null) return
    // A grant counts only with a valid signature: it goes into the certificate.
    const valid =
      m.granted &&
      m.signature != null &&
      this.ctx.verifier.verify(m.from, voteBytes(this.ctx.cluster, this.term, this.id), m.signature)
    this.tally.record(m.from, valid, valid ? m.signature : null)
    this.checkElection()
  }

  private checkElection(): void {
    const outcome = this.tally?.outcome()
    if (outcome === 'won') this.becomeLeader()
    else if (outcome === 'lost') this.becomeFollower(this.term, null)
  }

  private becomeLeader(): void {
    const votes = this.tally!.votes()
    this.role = 'leader'
    this.leader = this.id
    this.resetRoleState()
    this.certificate = { term: this.term, leader: this.id, votes }
    this.verified = { term: this.term, leader: this.id }
    this.leaseRevoked = false
    this.leaderContactElapsed = 0
    this.syncProgressWithConfig()
    // The first entry of the term: lets the leader commit (§5.4.2) and records who elected it.
    this.termStartIndex = this.log.lastIndex() + 1
    this.appendOwn({
      kind: 'term-start',
      index: this.termStartIndex,
      term: this.term,
      certificate: this.certificate,
    })
  }

  // ── leader ────────────────────────────────────────────────────────────────

  private tickLeader(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0
      if (this.checkQuorum) {
        const config = this.log.latestConfig().config
        if (!isMajority(config, (v) => v === this.id || this.progress.get(v)?.recentActive === true)) {
          this.becomeFollower(this.term, null)
          return
        }
        for (const pr of this.progress.values()) pr.recentActive = false
      }
      if (this.transfer != null && this.leaseRevoked) {
        // The handover failed after TimeoutNow went out. That message (or the target's
        // transfer votes) may still arrive and win term+1 past voters' stickiness, so
        // this term can never have a lease again: step down and let a new term start.
        this.becomeFollower(this.term, null)
        return
      }
      this.transfer = null
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0
      for (const to of this.progress.keys()) this.sendHeartbeat(to)
    }
  }

  private mustLeadAlone(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader)
    if (this.transfer != null) throw new TransferInProgressError(this.transfer.target)
  }

  private appendOwn(entry: Entry): void {
    this.log.append([entry])
    this.needsBroadcast = true
    // A single voter commits on its own once the entry is durable (advance()).
  }

  /** One Progress per member but us: new members start probing, removed ones are forgotten. */
  private syncProgressWithConfig(): void {
    const config = this.log.latestConfig().config
    const members = new Set([...config.voters, ...config.learners])
    members.delete(this.id)
    for (const id of this.progress.keys()) if (!members.has(id)) this.progress.delete(id)
    for (const id of members)
      if (!this.progress.has(id))
        this.progress.set(id, new Progress(this.log.lastIndex() + 1, this.maxInflight))
  }

  private broadcastAppend(): void {
    this.needsBroadcast = false
    for (const to of this.progress.keys()) this.sendAppend(to, false)
  }

  /** Sends what `to` needs next, unless it is paused. `ifEmpty`: send even with no entries (a probe). */
  private sendAppend(to: NodeId, ifEmpty: boolean): boolean {
    const pr = this.progress.get(to)
    if (pr === undefined || pr.isPaused()) return false
    const prevLogIndex = pr.next - 1
    const prevLogTerm = this.log.term(prevLogIndex)
    if (prevLogTerm === undefined) return this.sendSnapshot(to, pr)
    const entries = this.log.slice(
      pr.next,
      this.log.lastIndex(),
      this.maxEntriesPerMessage,
      this.maxBytesPerMessage,
    )
    if (entries.length === 0 && !ifEmpty && pr.state === 'replicate') return false
    this.send({
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      certificate: this.certificate!,
      chain: this.chainFor(pr),
      sentAt: this.now,
      prevLogIndex,
      prevLogTerm,
      entries,
      commit: this.log.committed,
    })
    if (entries.length > 0 || pr.state === 'probe') pr.sent(entries.at(-1)?.index ?? prevLogIndex)
    return true
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snapshot = this.log.snapshot
    pr.becomeSnapshot(snapshot.meta.index, this.now)
    this.counters.snapshotsSent++
    this.send({
      type: 'snapshot',
      from: this.id,
      to,
      term: this.term,
      certificate: this.certificate!,
      chain: this.chainFor(pr),
      sentAt: this.now,
      snapshot,
    })
    return true
  }

  private sendHeartbeat(to: NodeId): void {
    const pr = this.progress.get(to)!
    this.send({
      type: 'heartbeat',
      from: this.id,
      to,
      term: this.term,
      certificate: this.certificate!,
      chain: this.chainFor(pr),
      sentAt: this.now,
      commit: Math.min(pr.match, this.log.committed),
    })
  }

  private sendTimeoutNow(to: NodeId): void {
    // The target's election ignores voters' stickiness: our lease ends here, for the rest of the term.
    this.leaseRevoked = true
    const pr = this.progress.get(to)!
    this.send({
      type: 'timeout-now',
      from: this.id,
      to,
      term: this.term,
      certificate: this.certificate!,
      chain: this.chainFor(pr),
      sentAt: this.now,
    })
  }

  private chainFor(pr: Progress) {
    return pr.chainFrom == null ? null : this.log.configChainAfter(pr.chainFrom)
  }

  private onAppendResponse(m: AppendResponse): void {
    const pr = this.acknowledge(m)
    if (pr === undefined) return
    if (!m.success) {
      let to = m.index
      if (m.hint != null) {
        const { conflictIndex, conflictTerm } = m.hint
        const last = conflictTerm == null ? null : this.log.lastIndexOfTerm(conflictTerm, m.index)
        to = last != null ? last + 1 : conflictIndex
      }
      if (pr.onReject(m.index, to)) this.sendAppend(m.from, true)
      return
    }
    const wasPaused = pr.isPaused()
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === 'probe') pr.becomeReplicate()
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeReplicate()
      this.maybeCommit()
      if (this.role !== 'leader') return
      if (this.transfer?.target === m.from && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from)
      while (this.sendAppend(m.from, false) && pr.state === 'replicate') {}
    } else if (wasPaused) this.sendAppend(m.from, false)
  }

  private onHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.acknowledge(m)
    if (pr === undefined) return
    pr.onHeartbeatResponse()
    if (pr.state === 'snapshot' && this.now - pr.snapshotSentAt >= this.electionTicks) pr.becomeProbe()
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true)
  }

  /** The common part of a follower's answer: it is alive and acknowledged what we sent at m.sentAt. */
  private acknowledge(m: AppendResponse | HeartbeatResponse): Progress | undefined {
    if (this.role !== 'leader') return undefined
    const pr = this.progress.get(m.from)
    if (pr === undefined) return undefined
    pr.recentActive = true
    pr.chainFrom = null
    if (m.sentAt > pr.ackedSentAt) pr.ackedSentAt = m.sentAt
    return pr
  }

  private onUnverified(m: UnverifiedResponse): void {
    if (this.role !== 'leader') return
    const pr = this.progress.get(m.from)
    if (pr === undefined) return
    pr.chainFrom = m.configIndex
    this.sendHeartbeat(m.from)
  }

  /** Commit what a majority of voters holds, if it is of this term (§5.4.2). */
  private maybeCommit(): void {
    const config = this.log.latestConfig().config
    const index = majorityValue(config, (v) =>
      v === this.id ? this.log.stable : (this.progress.get(v)?.match ?? 0),
    )
    if (index <= this.log.committed || this.log.term(index) !== this.term) return
    this.log.commitTo(index)
    // A leader removed (or demoted) by a change that is now committed hands over by stepping down.
    if (!isVoter(this.log.committedConfig().config, this.id)) this.becomeFollower(this.term, null)
  }

  private leaseValid(): boolean {
    if (this.role !== 'leader' || this.leaseRevoked) return false
    const config = this.log.latestConfig().config
    const start = majorityValue(config, (v) =>
      v === this.id ? this.now : (this.progress.get(v)?.ackedSentAt ?? Number.NEGATIVE_INFINITY),
    )
    return this.now - start < this.leaseTicks
  }

  // ── follower ──────────────────────────────────────────────────────────────

  /** A message from a leader of our term (after any term change in step()). */
  private onLeaderMessage(m: LeaderMessage): void {
    if (this.role === 'leader') return
    if (!this.verifyLeader(m)) return
    if (this.role !== 'follower' || this.leader !== m.from) this.becomeFollower(this.term, m.from)
    this.electionElapsed = 0
    this.leaderContactElapsed = 0
    switch (m.type) {
      case 'append':
        this.onAppend(m)
        return
      case 'heartbeat':
        this.log.commitTo(m.commit)
        this.send({
          type: 'heartbeat-response',
          from: this.id,
          to: m.from,
          term: this.term,
          sentAt: m.sentAt,
        })
        return
      case 'snapshot':
        this.onSnapshot(m)
        return
      case 'timeout-now':
        if (this.promotable()) this.becomeCandidate(true)
        return
    }
  }

  private onAppend(m: AppendRequest): void {
    const last = this.log.tryAppend(m.prevLogIndex, m.prevLogTerm, m.entries)
    if (last != null) {
      this.log.commitTo(Math.min(m.commit, last))
      this.respondAppend(m, true, last, null)
    } else {
      this.respondAppend(m, false, m.prevLogIndex, this.log.conflictHint(m.prevLogIndex))
    }
  }

  private onSnapshot(m: SnapshotRequest): void {
    const { index } = m.snapshot.meta
    if (index > this.log.committed) this.log.restore(m.snapshot)
    this.send({
      type: 'append-response',
      from: this.id,
      to: m.from,
      term: this.term,
      success: true,
      index: Math.max(index, this.log.committed),
      hint: null,
      sentAt: m.sentAt,
    })
  }

  private respondAppend(
    m: AppendRequest,
    success: boolean,
    index: number,
    hint: AppendResponse['hint'],
  ): void {
    this.send({
      type: 'append-response',
      from: this.id,
      to: m.from,
      term: this.term,
      success,
      index,
      hint,
      sentAt: m.sentAt,
    })
  }

  /** Has a majority of voters we trust elected m.from for m.term? Says "unverified" back when not. */
  private verifyLeader(m: LeaderMessage): boolean {
    if (this.verified?.term === m.term && this.verified.leader === m.from) return true
    const trusted = { latest: this.log.latestConfig(), committed: this.log.committedConfig() }
    const claim = { term: m.term, leader: m.from, certificate: m.certificate }
    const direct = verifyLeader(claim, trusted, null, this.ctx)
    if (direct || verifyLeader(claim, trusted, m.chain, this.ctx)) {
      if (!direct) this.counters.chainVerified++
      this.verified = { term: m.term, leader: m.from }
      return true
    }
    this.counters.unverified++
    this.send({
      type: 'unverified',
      from: this.id,
      to: m.from,
      term: m.term,
      configIndex: trusted.committed.index,
    })
    return false
  }

  // ── plumbing ──────────────────────────────────────────────────────────────

  private send(message: Message): void {
    this.outbox.push(message)
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  private softState(): SoftState {
    return { role: this.role, leader: this.leader, term: this.term }
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term
}

/** What a pre-vote and a vote request share: who asks whom, the log's position, the voters' proof. */
type VoteRequestBase = Pick<VoteRequest, 'from' | 'to' | 'lastLogIndex' | 'lastLogTerm' | 'chain'>
