/**
 * 10,000 members on one machine: a documented reduction of the simulation.
 *
 * Every member holds a view of every other (N^2 entries in all: at ~1 KB each,
 * 100 GB at N = 10,000), so not every member can run the real code. Here `full`
 * members run the real `Membership` (src/membership) with complete 10,000-entry
 * views; the others are light members that speak the same wire format on the same
 * simulated network, with the same timers (the `lan` preset) and the same
 * connection budget, but keep no view of their own: the truth (every member's
 * current record, a crashed one until a dead claim about it is seen) stands in for
 * it. As Membership does (monitoring rings, agreement, connection budget, delta
 * sync; docs/decisions.md), a light member
 * - probes its subjects on the K monitoring rings (`ringNeighbours` of
 *   src/membership/monitoring-rings.ts over the true live set, recomputed when it
 *   changes), one per probe interval, round-robin over a reshuffled list; a probe
 *   is a ping, then ping-reqs through up to 3 of the target's other observers (then
 *   members it is connected to), with the same deadlines; when all fail it
 *   publishes a `suspect` claim naming itself (`from`), once per incarnation, and
 *   sends it to the suspect;
 * - probes a member at once when its connection drops, and a member it observes
 *   at once when a suspicion of it is published (so its accusation counts as a
 *   witness at the full members, whose views need 3 of them for a dead verdict);
 * - answers ping, ping-req (probing the target itself), direct claims, a request
 *   for its record (a view that could not apply its patch asks), and both
 *   syncs: the delta sync (2.0.0, with src/membership/sync-exchange.ts over the
 *   truth) and the full-view sync (1.0.0); publishes the record of a member that
 *   syncs with it before it has heard of it (as merge() passes on a little news),
 *   and syncs with such a member when its connection is identified;
 * - syncs (delta) with a member it is connected to, every sync interval (the first
 *   4 rounds every 2 probe intervals), any member when it has no connection; what
 *   a sync brings it is not merged (its view is the truth already);
 * - closes connections beyond the budget of 48 every 4 probe intervals, least
 *   recently used first (src/membership/connection-budget.ts), never its ring
 *   neighbours', its gossip mesh peers', or one used in the last 10 s;
 * - publishes its own record as Membership does (self-announcement.ts: the whole
 *   record at start and when it refutes a suspicion of itself, at most once per
 *   probe interval; a patch of the keys that changed for a metadata change, at
 *   most once per 100 ms);
 * - never declares anyone dead (the full members' suspicion timers do), never
 *   tries dead members again, and has no local health (CPU is free here: no
 *   member is ever late).
 * An exchange between two light members that are both up is charged (calibrated
 * bytes, a real dial, each side's connection budget touched) rather than run: a
 * ping and its ack; a delta sync of two equal views (a digest and `same`); for a
 * joiner's first sync, the whole view one way and its record the other, after
 * which the member it joined through passes its record on; between a member and
 * one that never heard of it (its record never reached the gossip: the member it
 * joined through had no gossip peer yet), one bucket's entries and the record,
 * passed on by the one that lacked it. An exchange with a full member, or with a
 * member that is down, runs on the real stream path.
 * Gossip runs in flood mode (network.ts): each message's spread over the mesh is
 * computed at once, every copy counted, delivered to the full members only; the
 * light members read in it claims about themselves, suspicions of the members
 * they observe, and what changes the truth (dead, left, a member heard of).
 *
 * The first member is a full member; the others join over `joinWindowS` (a rolling
 * start), each through a random member already in, the full members at evenly
 * spaced places among the light ones (so they are a fair sample: every join moves
 * ring edges, and the members that joined first are left holding the most
 * connections); then the same phases as the other sizes, measured at the full
 * members: steady traffic (also at the light members, and at all), a late joiner
 * (a full member), a crash (a light member), false suspicions, a metadata wave,
 * and the heap of a 10,000-entry view. With `full` = `n` there is no light member:
 * the full code through the same phases, what the reduction is checked against.
 */
import type { PeerId } from '@libp2p/interface'
import { MEMBER_METADATA } from '../../src/bootstrap/index.js'
import { CONNECTION_BUDGET, ConnectionBudget } from '../../src/membership/connection-budget.js'
import { bucketCount, bucketHashes, PAGE_BYTES } from '../../src/membership/delta-sync.js'
import {
  type Claim,
  type MemberRecord,
  type MembershipProtocols,
  membershipProtocols,
  viewDigest,
} from '../../src/membership/index.js'
import type { MemberTable } from '../../src/membership/member-table.js'
import { DELTA_SYNC_VERSION } from '../../src/membership/messages.js'
import {
  MONITORING_RINGS,
  type RingNeighbours,
  ringNeighbours,
  ringPositions,
} from '../../src/membership/monitoring-rings.js'
import { SelfAnnouncement } from '../../src/membership/self-announcement.js'
import { answerPullPush, pullPush } from '../../src/membership/sync-exchange.js'
import { silentLogger } from '../../src/shared/logger.js'
import { presetTimers } from '../../src/shared/presets.js'
import { pickRandom, shuffle } from '../../src/shared/random-pick.js'
import { type Channel, exchange, serve } from '../../src/shared/stream-rpc.js'
import { agentMeta, SimCluster, type SimMember } from './cluster.js'
import { exchangeBytes } from './costs.js'
import { CATEGORIES, type Category, type SimNode } from './network.js'
import type { SimMessage } from './pubsub.js'
import { type RolloutWave, rolloutSteps, WAVE_STEP_MS, WAVE_WATCHERS } from './rollout-wave.js'
import type { ScenarioOptions } from './scenario.js'

/** The light members' timers: the full members' (the lan preset). */
const TIMERS = presetTimers('lan').membership
/** Sync rounds after start that run every 2 probe intervals (Membership's CATCH_UP_SYNCS). */
const CATCH_UP_SYNCS = 4
/** ms between two publications of a member's own record for metadata changes (Membership's METADATA_ANNOUNCE_GAP_MS). */
const METADATA_ANNOUNCE_GAP_MS = 100
const MAX_BYTES = 4 * 1024 * 1024
/** The truth's digest and records are recomputed at most this often (virtual ms). */
const TRUTH_REFRESH_MS = 250
const STEADY_FROM_S = 180
const STEADY_WINDOW_S = 30
const PHASE_CAP_MS = 60_000
/** {"t":"ping"} and {"t":"ack"}, bytes. */
const PING_BYTES = encode({ t: 'ping' }).byteLength
const ACK_BYTES = encode({ t: 'ack' }).byteLength
/** A delta sync of two equal views: the opening digest (sha256, base64url) and `same`. */
const DIGEST_BYTES = encode({ t: 'digest', v: DELTA_SYNC_VERSION, digest: 'x'.repeat(43) }).byteLength
const SAME_BYTES = encode({ t: 'same' }).byteLength

export interface HybridOptions extends ScenarioOptions {
  full: number
  /** null: no limit (libp2p's maxConnections lifted); Shoal's is 400. */
  maxConnections?: number | null
  joinWindowS?: number
}

export interface TrafficByKind {
  sentBytesPerNodePerSec: number
  sentByCategory: Record<Category, number>
  meanConnections: number
  maxConnections: number
}

export interface HybridResult {
  n: number
  fullMembers: number
  seed: number
  maxConnections: number | null
  joinWindowS: number
  wallS: number
  events: number
  /** From the last member's start until every full member lists all N alive. */
  completeViewsAfterJoinsMs: number | null
  steady: {
    fromS: number
    windowS: number
    full: TrafficByKind
    /** Null with no light members (`full` = `n`: the full code through the same phases). */
    light: TrafficByKind | null
    /** Every member, full and light: the cluster's figure (the full members include the first one, which holds the most connections). */
    all: TrafficByKind
    lostDialsPerNodePerSec: number
    suspectEventsPerSecAtFull: number
    refutationsPerSec: number
  } | null
  joinSeenByAllMs: number | null
  joinerCompleteMs: number | null
  killFirstSuspectMs: number | null
  killSuspectedByAllMs: number | null
  killDeadByAllMs: number | null
  /** A rollout's metadata on every member at once (rollout-wave.ts). */
  wave: RolloutWave | null
  falsePositives: { suspect: number; dead: number }
  memory: { perFullMemberMB: number | null; perEntryB: number | null }
  recordBytes: number
  syncMessageBytes: number
  /** For the plots: the full members' sent bytes per second. */
  full: { idleSentBytesPerNodePerSec: number | null; steadySentBytesPerNodePerSec: number | null }
  stats: Record<string, number>
  /** The light members' own counters (probes, suspicions, syncs, connections closed, ...). */
  lightStats: Record<string, number>
  network: Record<string, number>
  summary: Record<string, unknown>
  notes: string[]
}

/**
 * The true live set (members not known dead or gone, a crashed one until a dead
 * claim about it is seen) sorted by position on each monitoring ring, so that a
 * member's ring neighbours come from a few entries around it instead of a pass over
 * all N. The decision stays `ringNeighbours`'s: it is given every entry that can
 * win (the nearest other position each way on each ring, with all that share it,
 * and those that share the member's own position).
 */
class RingIndex {
  private readonly rings = Array.from({ length: MONITORING_RINGS }, () => ({
    ids: [] as string[],
    positions: [] as number[],
  }))
  private readonly live = new Set<string>()
  /** Grows whenever the live set changes (a cached neighbourhood is recomputed). */
  version = 0

  has(id: string): boolean {
    return this.live.has(id)
  }

  add(id: string): void {
    if (this.live.has(id)) return
    this.live.add(id)
    const mine = ringPositions(id)
    for (let r = 0; r < MONITORING_RINGS; r++) {
      const ring = this.rings[r]!
      const i = this.lowerBound(r, mine[r]!, id)
      ring.ids.splice(i, 0, id)
      ring.positions.splice(i, 0, mine[r]!)
    }
    this.version++
  }

  remove(id: string): void {
    if (!this.live.delete(id)) return
    const mine = ringPositions(id)
    for (let r = 0; r < MONITORING_RINGS; r++) {
      const ring = this.rings[r]!
      const i = this.lowerBound(r, mine[r]!, id)
      if (ring.ids[i] !== id) throw new Error(`ring index out of order at ${id}`)
      ring.ids.splice(i, 1)
      ring.positions.splice(i, 1)
    }
    this.version++
  }

  /** `id`'s subjects and observers among the live set, as ringNeighbours(live, id) gives them. */
  neighbours(id: string): RingNeighbours {
    const candidates = new Set<string>()
    const mine = ringPositions(id)
    for (let r = 0; r < MONITORING_RINGS; r++) {
      const { ids, positions } = this.rings[r]!
      const n = ids.length
      if (n === 0) continue
      const p = mine[r]!
      const start = this.lowerBound(r, p, id)
      for (const step of [1, -1]) {
        let group: number | undefined
        for (let k = 0; k < n; k++) {
          const j = (((start + (step === 1 ? k : -1 - k)) % n) + n) % n
          const other = ids[j]!
          const q = positions[j]!
          if (other === id) continue
          if (q === p) {
            candidates.add(other)
            continue
          }
          if (group === undefined) group = q
          else if (q !== group) break
          candidates.add(other)
        }
      }
    }
    return ringNeighbours(candidates, id)
  }

  /** The first index of ring `r` whose (position, id) is not below (p, id). */
  private lowerBound(r: number, p: number, id: string): number {
    const { ids, positions } = this.rings[r]!
    let lo = 0
    let hi = ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const q = positions[mid]!
      if (q < p || (q === p && ids[mid]! < id)) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * What the light members answer syncs with: every member's record as the cluster
 * knows it (light members' own, full members' own), and a crashed member as it
 * was, until a dead claim about it is seen on gossip; then dead until reaped.
 */
class Truth {
  readonly light = new Map<string, LightMember>()
  readonly full = new Map<string, SimMember>()
  readonly crashed = new Map<string, MemberRecord>()
  /** Members a dead or left claim was seen about (light members stop probing them). */
  readonly declared = new Set<string>()
  /** Members under suspicion on gossip, with the incarnation suspected (cleared by a newer alive claim). */
  readonly suspected = new Map<string, number>()
  /** The live set on the monitoring rings. */
  readonly rings = new RingIndex()
  private cache:
    | {
        at: number
        records: MemberRecord[]
        /** The records' JSON bytes (estimated from a sample). */
        viewBytes: number
        byId: Map<string, MemberRecord>
        digest: string
        buckets: Map<number, string[]>
        encoded?: Uint8Array
      }
    | undefined
  private version = 0
  private cachedVersion = -1

  constructor(private readonly clock: { now: number }) {}

  changed(): void {
    this.version++
  }

  incarnationOf(id: string): number {
    return (
      this.light.get(id)?.incarnation ??
      this.crashed.get(id)?.incarnation ??
      this.full.get(id)?.membership.self.incarnation ??
      1
    )
  }

  /** Every record, as a view that knows everything holds them. */
  records(): MemberRecord[] {
    return this.current().records
  }

  /** The digest MemberTable.digest() gives for a view holding exactly these records. */
  get digest(): string {
    return this.current().digest
  }

  /** The JSON bytes of every record (estimated from a sample of them). */
  get viewBytes(): number {
    return this.current().viewBytes
  }

  /** A full-view sync message (1.0.0) with every record. */
  get encoded(): Uint8Array {
    const current = this.current()
    current.encoded ??= encode({ v: 1, digest: current.digest, members: current.records })
    return current.encoded
  }

  /** The truth as sync-exchange.ts reads a view (digest, bucket hashes, records). */
  readonly table = {
    digest: () => this.digest,
    bucketHashes: (count: number) => {
      const current = this.current()
      let hashes = current.buckets.get(count)
      if (hashes == null) {
        hashes = bucketHashes(current.records, count)
        current.buckets.set(count, hashes)
      }
      return hashes
    },
    records: () => this.records(),
    recordsById: () => this.current().byId,
  } as unknown as MemberTable

  private current() {
    const now = this.clock.now
    if (this.cache != null && (this.cachedVersion === this.version || now - this.cache.at < TRUTH_REFRESH_MS))
      return this.cache
    const records: MemberRecord[] = []
    for (const light of this.light.values()) records.push(light.record())
    for (const member of this.full.values()) {
      if (member.stopped) continue
      try {
        const { self: _s, since: _t, ...record } = member.membership.self
        records.push(record)
      } catch {
        // not started yet
      }
    }
    for (const record of this.crashed.values()) records.push(record)
    let sample = 0
    const step = Math.max(1, Math.floor(records.length / 50))
    for (let i = 0; i < records.length; i += step) sample += JSON.stringify(records[i]).length + 1
    this.cache = {
      at: now,
      records,
      viewBytes: Math.round((sample / Math.ceil(records.length / step)) * records.length),
      byId: new Map(records.map((r) => [r.id, r])),
      digest: viewDigest(records),
      buckets: new Map(),
    }
    this.cachedVersion = this.version
    return this.cache
  }
}

/** A member that speaks the protocol without a view of its own (see the file comment). */
class LightMember {
  incarnation = 1
  meta: Record<string, unknown>
  readonly budget = new ConnectionBudget()
  private readonly abort = new AbortController()
  private readonly probing = new Set<string>()
  private readonly syncing = new Set<string>()
  private readonly lastSync = new Map<string, number>()
  /** Incarnation at which this member accused each target (one accusation each). */
  private readonly accused = new Map<string, number>()
  private probeOrder: string[] = []
  private rings: { version: number; neighbours: RingNeighbours } | null = null
  private syncRounds = 0
  /** False until the first sync (the join through the bootstrap): until then its view is itself alone. */
  private joined = false
  private readonly announcement = new SelfAnnouncement()
  private lastAnnouncedAt = Number.NEGATIVE_INFINITY
  private announcementDue = false
  private fullAnnouncementDue = false

  constructor(
    readonly node: SimNode,
    private readonly hybrid: Hybrid,
    manager: string,
  ) {
    this.meta = agentMeta(0, manager)
  }

  get id(): string {
    return this.node.id
  }

  get stopped(): boolean {
    return this.abort.signal.aborted
  }

  record(): MemberRecord {
    return {
      id: this.id,
      addrs: [this.node.addr.toString()],
      incarnation: this.incarnation,
      state: 'alive',
      meta: this.meta,
    }
  }

  async start(bootstrap: SimNode | undefined): Promise<void> {
    const { protocols } = this.hybrid
    this.node.start()
    const limits = { timeoutMs: TIMERS.probeTimeout * (TIMERS.awarenessMax + 1) * 3, maxBytes: MAX_BYTES }
    const syncLimits = { ...limits, timeoutMs: Math.max(10_000, limits.timeoutMs) }
    await serve(this.network, protocols.probe, limits, silentLogger, (ch, conn) =>
      this.answerProbe(ch, conn.remotePeer.toString()),
    )
    await serve(this.network, protocols.deltaSync, syncLimits, silentLogger, (ch, conn) =>
      this.answerDeltaSync(ch, conn.remotePeer.toString()),
    )
    await serve(this.network, protocols.sync, syncLimits, silentLogger, (ch, conn) =>
      this.answerSync(ch, conn.remotePeer.toString()),
    )
    this.node.pubsub.subscribe(protocols.topic)
    this.node.addEventListener('peer:disconnect', (evt) => {
      // A lost connection is a hint: probe the member now (Membership.onDisconnect).
      const id = String(evt.detail)
      if (this.hybrid.usable(id)) setTimeout(() => void this.probe(id), Math.random() * 50)
    })
    this.node.addEventListener('peer:identify', (evt) => {
      // Only a stranger warrants a sync (Membership.onIdentify).
      const { peerId } = evt.detail as { peerId: PeerId }
      const id = peerId.toString()
      if (this.hybrid.strangerTo(this, id)) void this.syncWith(id)
    })
    this.publish(true, this.announcement.next(this.record(), true))
    void this.loop(
      () => TIMERS.probeInterval,
      () => this.probeNext(),
    )
    void this.loop(
      () =>
        this.syncRounds++ < CATCH_UP_SYNCS
          ? TIMERS.probeInterval * 2
          : TIMERS.syncInterval * (0.9 + Math.random() * 0.2),
      () => this.syncNext(),
    )
    void this.loop(
      () => TIMERS.probeInterval * 4,
      async () => this.trimConnections(),
    )
    if (bootstrap != null) {
      await this.node.dial(bootstrap.peerId).catch(() => {})
      await this.syncWith(bootstrap.id)
    }
  }

  stop(): void {
    this.abort.abort()
  }

  /** Someone claimed we are suspect or dead: announce a higher incarnation (the whole record, one per probe interval). */
  refute(incarnation: number): void {
    if (this.stopped || incarnation <= this.incarnation) return
    this.incarnation = incarnation
    this.hybrid.truth.changed()
    this.hybrid.stats.refutations++
    this.announceSelf(TIMERS.probeInterval, true)
  }

  /**
   * Publishes this member's record now, or `gapMs` after the last publication, as a
   * patch of the keys that changed when that is worth it (Membership.announceSelf,
   * src/membership/self-announcement.ts).
   */
  private announceSelf(gapMs: number, full = false): void {
    if (full) this.fullAnnouncementDue = true
    if (this.announcementDue) return
    const announce = () => {
      this.announcementDue = false
      if (this.stopped) return
      this.lastAnnouncedAt = Date.now()
      this.publish(false, this.announcement.next(this.record(), this.fullAnnouncementDue))
      this.fullAnnouncementDue = false
    }
    const delay = Math.max(0, this.lastAnnouncedAt + gapMs - Date.now())
    if (delay === 0) {
      announce()
      return
    }
    this.announcementDue = true
    setTimeout(announce, delay)
  }

  /** A suspicion of `target` was published: its observers probe it at once (Membership's member:suspect). */
  suspicionHeard(target: string): void {
    if (this.stopped || !this.neighbours().subjects.includes(target)) return
    setTimeout(() => {
      if (this.hybrid.truth.suspected.has(target) && this.hybrid.probeable(target)) {
        this.hybrid.stats.lightSuspectProbes++
        void this.probe(target)
      }
    }, Math.random() * 50)
  }

  /**
   * A metadata change (keys set, as Membership.updateMetadata): the keys of reach
   * `view` go out as a higher incarnation (a patch), those of reach `watchers` are
   * sent straight to each watcher under their own version (detail-relay.ts).
   */
  updateMeta(patch: Record<string, unknown>): void {
    if (this.stopped) return
    const { view, detail } = MEMBER_METADATA.split({ ...this.meta, ...this.detail.meta, ...patch })
    if (JSON.stringify(detail) !== JSON.stringify(this.detail.meta)) {
      this.detail = { inc: this.incarnation, dv: this.detail.dv + 1, meta: detail }
      const sent = { id: this.id, ...this.detail }
      const limits = { timeoutMs: TIMERS.leaveTimeout, maxBytes: MAX_BYTES }
      for (const watcher of this.hybrid.watchers) {
        const peer = this.hybrid.peerOf(watcher)
        if (peer == null) continue
        void exchange(this.network, peer, this.hybrid.protocols.probe, limits, async (ch) => {
          await ch.write(encode({ t: 'detail', detail: sent }))
          await ch.read()
        }).catch(() => {})
      }
    }
    if (JSON.stringify(view) === JSON.stringify(this.meta)) return
    this.meta = view
    this.incarnation++
    this.hybrid.truth.changed()
    this.announceSelf(METADATA_ANNOUNCE_GAP_MS)
  }

  /** Its keys of reach `watchers`, as sent to the watchers. */
  private detail: { inc: number; dv: number; meta: Record<string, unknown> } = { inc: 0, dv: 0, meta: {} }

  aliveClaim(): Claim {
    return {
      kind: 'alive',
      id: this.id,
      incarnation: this.incarnation,
      addrs: [this.node.addr.toString()],
      meta: this.meta,
    }
  }

  /** This member's subjects and observers on the rings, for the current live set. */
  neighbours(): RingNeighbours {
    const index = this.hybrid.truth.rings
    if (this.rings?.version !== index.version)
      this.rings = { version: index.version, neighbours: index.neighbours(this.id) }
    return this.rings.neighbours
  }

  private get network() {
    return this.node as unknown as Parameters<typeof serve>[0]
  }

  /** Publishes claims; with `repeat`, the same bytes once more 2 probe intervals later (Membership.broadcast). */
  private publish(repeat: boolean, ...claims: Claim[]): void {
    const data = encode({ v: 1, claims })
    const send = () => {
      if (!this.stopped) this.node.pubsub.publish(this.hybrid.protocols.topic, data).catch(() => {})
    }
    send()
    if (repeat) setTimeout(send, TIMERS.probeInterval * 2)
  }

  private async loop(delay: () => number, step: () => Promise<void>): Promise<void> {
    const { signal } = this.abort
    await sleep(delay(), signal)
    while (!signal.aborted) {
      const started = performance.now()
      await step().catch(() => {})
      await sleep(Math.max(0, delay() - (performance.now() - started)), signal)
    }
  }

  /** Round-robin over the ring subjects, reshuffled each round (Membership.probeNext). */
  private async probeNext(): Promise<void> {
    const subjects = new Set(this.neighbours().subjects)
    while (this.probeOrder.length > 0) {
      const id = this.probeOrder.pop()!
      if (subjects.has(id) && this.hybrid.probeable(id)) {
        await this.probe(id)
        return
      }
    }
    this.probeOrder = shuffle([...subjects])
  }

  /** SWIM's probe as Membership does it: direct, then through the target's other observers, then suspect. */
  private async probe(target: string): Promise<void> {
    if (this.probing.has(target) || this.stopped) return
    this.probing.add(target)
    this.budget.touch(target)
    try {
      this.hybrid.stats.lightProbes++
      const direct = await this.ping(target, this.deadlineFor(target))
      if (direct === 'ack') return
      // Refused: the port is closed (a crashed process); no helper is asked (Membership.probe).
      if (direct !== 'refused') {
        const helpers = this.helpersFor(target)
        this.hybrid.stats.lightIndirectProbes += helpers.length
        const timeout = TIMERS.probeTimeout * 2 + TIMERS.connectTimeout * 2
        const answers = await Promise.all(helpers.map((helper) => this.pingThrough(helper, target, timeout)))
        if (answers.includes('ack')) return
      }
      if (this.stopped || !this.hybrid.probeable(target)) return
      const incarnation = this.hybrid.truth.incarnationOf(target)
      if (this.accused.get(target) === incarnation) return
      this.accused.set(target, incarnation)
      this.hybrid.stats.lightSuspicions++
      const claim: Claim = {
        kind: 'suspect',
        id: target,
        incarnation,
        from: this.id,
        ...(direct === 'refused' ? { refused: true } : {}),
      }
      this.publish(false, claim)
      if (direct !== 'refused') void this.notify(target, [claim])
    } finally {
      this.probing.delete(target)
    }
  }

  /** The target's other observers alive (not suspected), then members this one is connected to. */
  private helpersFor(target: string): string[] {
    const { truth } = this.hybrid
    const usable = (id: string) => id !== target && id !== this.id && this.hybrid.usable(id)
    const helpers = pickRandom(truth.rings.neighbours(target).observers.filter(usable), TIMERS.indirectChecks)
    if (helpers.length < TIMERS.indirectChecks) {
      const connected = [...this.node.connections.keys()].filter((id) => usable(id) && !helpers.includes(id))
      helpers.push(...pickRandom(connected, TIMERS.indirectChecks - helpers.length))
    }
    return helpers
  }

  /** The ack deadline: the probe timeout, plus the connect timeout without a connection. */
  private deadlineFor(id: string): number {
    return TIMERS.probeTimeout + (this.node.connections.has(id) ? 0 : TIMERS.connectTimeout)
  }

  /** A ping: charged with a light member that is up, the real exchange otherwise (retried once as Membership.ping). */
  private async ping(target: string, timeout: number): Promise<'ack' | 'refused' | 'failed'> {
    if (await this.quickPing(target)) return 'ack'
    const started = performance.now()
    const first = await this.pingOnce(target, timeout)
    if (first !== 'failed') return first
    const left = timeout - (performance.now() - started)
    if (left < timeout / 2 || !this.node.connections.has(target)) return first
    return this.pingOnce(target, left)
  }

  /**
   * A ping to a light member that is up, charged instead of run: the dial is real
   * (it makes the connection, or fails on the limit), the exchange's bytes are
   * counted with the calibrated costs (costs.ts) and both budgets are touched.
   * False sends the caller down the real path (a full member, a crashed target, a
   * refused dial).
   */
  private async quickPing(target: string): Promise<boolean> {
    const remote = this.hybrid.truth.light.get(target)
    if (remote == null || !remote.node.up) return false
    try {
      await this.node.dial(remote.node.peerId)
    } catch {
      return false
    }
    remote.budget.touch(this.id)
    this.hybrid.chargeExchange(this.node, remote.node, this.hybrid.protocols.probe, PING_BYTES, ACK_BYTES)
    return true
  }

  private async pingOnce(target: string, timeoutMs: number): Promise<'ack' | 'refused' | 'failed'> {
    const peer = this.hybrid.peerOf(target)
    if (peer == null) return 'failed'
    try {
      await exchange(
        this.network,
        peer,
        this.hybrid.protocols.probe,
        { timeoutMs, maxBytes: MAX_BYTES },
        async (ch) => {
          await ch.write(encode({ t: 'ping' }))
          const answer = JSON.parse(new TextDecoder().decode(await ch.read())) as { t: string }
          if (answer.t !== 'ack') throw new Error('no ack')
        },
      )
      return 'ack'
    } catch (err) {
      return (err as { code?: unknown }).code === 'ECONNREFUSED' ? 'refused' : 'failed'
    }
  }

  private async pingThrough(
    helper: string,
    target: string,
    timeoutMs: number,
  ): Promise<'ack' | 'nack' | 'none'> {
    const peer = this.hybrid.peerOf(helper)
    if (peer == null) return 'none'
    this.budget.touch(helper)
    const addrs = [this.hybrid.addrOf(target)]
    try {
      return await exchange(
        this.network,
        peer,
        this.hybrid.protocols.probe,
        { timeoutMs, maxBytes: MAX_BYTES },
        async (ch) => {
          await ch.write(encode({ t: 'ping-req', target, addrs }))
          const { t } = JSON.parse(new TextDecoder().decode(await ch.read())) as { t: 'ack' | 'nack' }
          return t
        },
      )
    } catch {
      return 'none'
    }
  }

  /** Sends claims straight to one member (best effort), as Membership.notify. */
  private async notify(target: string, claims: Claim[]): Promise<void> {
    const peer = this.hybrid.peerOf(target)
    if (peer == null) return
    this.budget.touch(target)
    await exchange(
      this.network,
      peer,
      this.hybrid.protocols.probe,
      { timeoutMs: TIMERS.leaveTimeout, maxBytes: MAX_BYTES },
      async (ch) => {
        await ch.write(encode({ t: 'claims', claims }))
        await ch.read()
      },
    ).catch(() => {})
  }

  private async answerProbe(ch: Channel, from: string): Promise<void> {
    this.budget.touch(from)
    const request = JSON.parse(new TextDecoder().decode(await ch.read())) as {
      t: string
      target?: string
      claims?: Array<{ kind: string; id: string; incarnation: number }>
    }
    if (request.t === 'ping-req' && request.target != null) {
      const ok = await this.ping(request.target, this.deadlineFor(request.target))
      await ch.write(encode({ t: ok ? 'ack' : 'nack' }))
      return
    }
    if (request.t === 'record') {
      // A view that could not apply our patch asks for the whole record.
      await ch.write(encode({ t: 'record', record: this.record() }))
      return
    }
    if (request.t === 'claims') {
      for (const claim of request.claims ?? [])
        if (claim.id === this.id && claim.kind !== 'alive' && claim.incarnation >= this.incarnation)
          this.refute(claim.incarnation + 1)
    }
    await ch.write(encode({ t: 'ack' }))
  }

  /** Delta sync with a member this one is connected to; any member when there is none (Membership.syncRandom). */
  private async syncNext(): Promise<void> {
    const connected = [...this.node.connections.keys()].filter((id) => this.hybrid.usable(id))
    const [peer] = connected.length > 0 ? pickRandom(connected, 1) : [this.hybrid.randomMember(this.id)]
    if (peer != null) await this.syncWith(peer)
  }

  /**
   * A delta sync (2.0.0) with `target`, at most one per 4 probe intervals: with a
   * light member, whose view is the same truth, charged as two equal digests; with a
   * full member, run (sync-exchange.ts over the truth). What the other side sends is
   * the truth already, so nothing is merged.
   */
  async syncWith(target: string): Promise<void> {
    if (this.syncing.has(target) || this.stopped) return
    if (performance.now() - (this.lastSync.get(target) ?? -Infinity) < TIMERS.probeInterval * 4) return
    const peer = this.hybrid.peerOf(target)
    if (peer == null) return
    this.lastSync.set(target, performance.now())
    this.syncing.add(target)
    this.budget.touch(target)
    try {
      const light = this.hybrid.truth.light.get(target)
      if (light?.node.up) {
        await this.node.dial(peer)
        light.budget.touch(this.id)
        const { deltaSync } = this.hybrid.protocols
        const charge = ({ request, answer }: { request: number; answer: number }) =>
          this.hybrid.chargeExchange(this.node, light.node, deltaSync, request, answer)
        if (!this.joined) {
          // Our join: the other side sends its whole view and takes our record, then passes it on.
          charge(this.hybrid.joinSyncBytes(this.record()))
          light.merged(this.id, [this.record()])
        } else if (this.hybrid.strangerTo(light, this.id)) {
          // It never heard of us: one bucket differs, it takes our record and passes it on.
          charge(this.hybrid.bucketSyncBytes(this.record()))
          light.merged(this.id, [this.record()])
        } else if (this.hybrid.strangerTo(this, target)) {
          charge(this.hybrid.bucketSyncBytes(light.record()))
          this.merged(target, [light.record()])
        } else {
          charge({ request: DIGEST_BYTES, answer: SAME_BYTES })
        }
        this.joined = true
        this.hybrid.stats.lightSyncsCharged++
        return
      }
      await exchange(
        this.network,
        peer,
        this.hybrid.protocols.deltaSync,
        { timeoutMs: 10_000, maxBytes: MAX_BYTES },
        (ch) => pullPush(ch, this.hybrid.truth.table, () => {}),
      )
      this.joined = true
      this.hybrid.stats.lightSyncsRun++
    } catch {
      // a member that is down, or a refused dial: as Membership, a log line
    } finally {
      this.syncing.delete(target)
    }
  }

  private async answerDeltaSync(ch: Channel, from: string): Promise<void> {
    this.budget.touch(from)
    await answerPullPush(ch, this.hybrid.truth.table, (records) => this.merged(from, records))
    this.hybrid.stats.lightSyncsAnswered++
  }

  /** The full-view sync (1.0.0) of agents from before the delta sync. */
  private async answerSync(ch: Channel, from: string): Promise<void> {
    this.budget.touch(from)
    const truth = this.hybrid.truth
    const opening = JSON.parse(new TextDecoder().decode(await ch.read())) as { digest: string }
    if (opening.digest === truth.digest) {
      await ch.write(encode({ v: 1, digest: truth.digest, members: null }))
      return
    }
    await ch.write(truth.encoded)
    const theirs = JSON.parse(new TextDecoder().decode(await ch.read())) as { members: MemberRecord[] | null }
    this.merged(from, theirs.members ?? [])
  }

  /** A member that synced with us before we heard of it is news: pass its record on, as merge() does. */
  merged(from: string, records: MemberRecord[]): void {
    if (!this.hybrid.strangerTo(this, from) || !records.some((r) => r.id === from)) return
    const claim = this.hybrid.aliveClaimOf(from)
    if (claim != null) this.publish(true, claim)
  }

  /** Closes connections beyond the budget, least recently used first (Membership.trimConnections). */
  private trimConnections(): void {
    if (this.node.connections.size <= CONNECTION_BUDGET) return
    const { subjects, observers } = this.neighbours()
    const keep = new Set([...subjects, ...observers, ...this.node.pubsub.mesh.keys()])
    // Light members open streams of membership's protocols only: all background.
    const excess = this.budget.excess(this.node.getConnections(), { keep, background: () => true })
    for (const connection of excess) {
      this.hybrid.stats.lightConnectionsClosed++
      void connection.close()
    }
  }
}

/** The run: a SimCluster in flood mode, its full members, the light members and the truth. */
class Hybrid {
  readonly cluster: SimCluster
  readonly truth: Truth
  readonly protocols: MembershipProtocols
  readonly light: LightMember[] = []
  /** Members whose alive claim reached someone on gossip (a member that knows of them is no stranger). */
  readonly heard = new Set<string>()
  private readonly peers = new Map<string, SimNode>()
  /** Order in which members were added: a light member knows every member added before it (its join sync). */
  private readonly order = new Map<string, number>()
  private readonly memberIds: string[] = []
  /** Full members that watch (the rollout wave's voters and load balancer): light members push details to them. */
  watchers: string[] = []
  readonly stats = {
    lightProbes: 0,
    lightIndirectProbes: 0,
    lightSuspectProbes: 0,
    lightSuspicions: 0,
    lightSyncsCharged: 0,
    lightSyncsRun: 0,
    lightSyncsAnswered: 0,
    lightConnectionsClosed: 0,
    refutations: 0,
  }

  constructor(options: HybridOptions) {
    const fullNodes = new Set<SimNode>()
    this.cluster = new SimCluster({
      seed: options.seed ?? 1,
      cluster: `bench-${options.n}`,
      ...(options.costs == null ? {} : { costs: options.costs }),
      maxConnections:
        options.maxConnections === null ? Number.POSITIVE_INFINITY : (options.maxConnections ?? 400),
      gossip: 'flood',
      interested: (node) => fullNodes.has(node),
      onFlood: (message, _publisher, arrival, reached) => this.onFlood(message, arrival, reached),
    })
    this.cluster.onMemberAdded = (member) => {
      fullNodes.add(member.node)
      this.truth.full.set(member.id, member)
      this.known(member.node)
    }
    this.truth = new Truth(this.cluster.clock)
    this.protocols = membershipProtocols(`bench-${options.n}`)
  }

  known(node: SimNode): void {
    if (this.peers.has(node.id)) return
    this.peers.set(node.id, node)
    this.order.set(node.id, this.memberIds.length)
    this.memberIds.push(node.id)
    this.truth.rings.add(node.id)
    this.truth.changed()
  }

  /** True when `light` would not have `id` in its view yet: it joined later and no claim of it was heard. */
  strangerTo(light: LightMember, id: string): boolean {
    const order = this.order.get(id)
    return order != null && !this.heard.has(id) && order > (this.order.get(light.id) ?? Infinity)
  }

  aliveClaimOf(id: string): Claim | undefined {
    const light = this.truth.light.get(id)
    if (light != null) return light.aliveClaim()
    const member = this.truth.full.get(id)
    if (member == null || member.stopped) return undefined
    const { addrs, incarnation, meta } = member.membership.self
    return { kind: 'alive', id, incarnation, addrs, meta }
  }

  /** Counts one request/answer exchange's bytes on each side, as costs.ts frames it. */
  chargeExchange(from: SimNode, to: SimNode, protocol: string, request: number, answer: number): void {
    const world = this.cluster.world
    const category: Category = protocol.includes('/sync/') ? 'sync' : 'probe'
    const { initiator, responder } = exchangeBytes(world.costs, protocol, request, answer)
    world.charge(from, to, category, initiator)
    world.charge(to, from, category, responder)
  }

  /**
   * A joiner's delta sync with a member that knows everyone, as sync-exchange.ts
   * runs it: our digest, their bucket hashes, our one entry, their every record (in
   * pages), our record.
   */
  joinSyncBytes(joiner: MemberRecord): { request: number; answer: number } {
    const count = bucketCount(this.memberIds.length)
    const hashes = encode({ t: 'buckets', buckets: new Array(count).fill('x'.repeat(11)) }).byteLength
    const entries = encode({
      t: 'entries',
      buckets: Array.from({ length: count }, (_, i) => i),
      entries: [[joiner.id, joiner.incarnation, 0]],
    }).byteLength
    const page = encode({ t: 'records', records: [], want: [], done: true }).byteLength
    const pages = Math.max(1, Math.ceil(this.truth.viewBytes / PAGE_BYTES))
    return {
      request: DIGEST_BYTES + entries + page + JSON.stringify(joiner).length,
      answer: hashes + this.truth.viewBytes + pages * page + JSON.stringify(joiner.id).length,
    }
  }

  /**
   * A delta sync between two views that differ in one member (one has never heard
   * of it): digest, bucket hashes, the entries of that bucket, the record.
   */
  bucketSyncBytes(record: MemberRecord): { request: number; answer: number } {
    const count = bucketCount(this.memberIds.length)
    const hashes = encode({ t: 'buckets', buckets: new Array(count).fill('x'.repeat(11)) }).byteLength
    const entry = JSON.stringify([record.id, record.incarnation, 0]).length + 1
    const entries = encode({ t: 'entries', buckets: [0], entries: [] }).byteLength
    const page = encode({ t: 'records', records: [], want: [], done: true }).byteLength
    return {
      request: DIGEST_BYTES + entries + Math.ceil(this.memberIds.length / count) * entry + page,
      answer: hashes + page + JSON.stringify(record).length,
    }
  }

  peerOf(id: string): PeerId | undefined {
    return this.peers.get(id)?.peerId
  }

  addrOf(id: string): string {
    return this.peers.get(id)?.addr.toString() ?? ''
  }

  /** A member still on the rings (not declared dead or gone): light members probe it. */
  probeable(id: string): boolean {
    return this.truth.rings.has(id)
  }

  /** A member alive as far as gossip tells (on the rings, not under suspicion): a helper, a sync partner. */
  usable(id: string): boolean {
    return this.truth.rings.has(id) && !this.truth.suspected.has(id)
  }

  /** A random member (full or light, joined, not declared dead) other than `self`. */
  randomMember(self: string): string | undefined {
    for (let i = 0; i < 8; i++) {
      const id = this.memberIds[Math.floor(Math.random() * this.memberIds.length)]
      if (id != null && id !== self && this.usable(id)) return id
    }
    return undefined
  }

  async addLight(index: number, bootstrap: SimNode | undefined, manager: string): Promise<LightMember> {
    const node = this.cluster.world.addNode(await this.cluster.peerIdFor(index))
    const light = new LightMember(node, this, manager)
    this.light.push(light)
    this.truth.light.set(light.id, light)
    this.known(node)
    await light.start(bootstrap)
    return light
  }

  /** A light member crashes; the truth keeps it alive until the cluster declares it dead (onFlood). */
  crashLight(light: LightMember): void {
    light.stop()
    light.node.crash()
    this.truth.light.delete(light.id)
    this.truth.crashed.set(light.id, light.record())
    this.truth.changed()
  }

  private declaredDead(id: string): void {
    const record = this.truth.crashed.get(id)
    if (record == null || record.state === 'dead') return
    this.truth.crashed.set(id, { ...record, state: 'dead' })
    this.truth.changed()
    this.cluster.clock.schedule(TIMERS.reapTimeout, () => {
      this.truth.crashed.delete(id)
      this.truth.changed()
    })
  }

  /**
   * What light members read in gossip: claims about themselves (refutation), the
   * first suspicion of a member at an incarnation (its light observers probe it at
   * once), dead and left claims (off the rings), alive claims (heard; back on the
   * rings; a suspicion cleared).
   */
  private onFlood(message: SimMessage, arrival: (node: SimNode) => number | null, reached: number): void {
    if (message.data.byteLength > 400_000) return
    let claims: Claim[]
    try {
      claims = (JSON.parse(new TextDecoder().decode(message.data)) as { claims: Claim[] }).claims
    } catch {
      return
    }
    if (!Array.isArray(claims) || claims.length > 1024) return
    const { truth } = this
    const at = (node: SimNode, fn: () => void) => {
      const time = arrival(node)
      if (time != null) this.cluster.clock.schedule(time - this.cluster.clock.now, fn)
    }
    for (const claim of claims) {
      const { id, incarnation } = claim
      switch (claim.kind) {
        case 'alive':
        case 'patch':
          if (claim.kind === 'alive' && reached > 0) this.heard.add(id)
          if (truth.declared.delete(id) && this.peers.get(id)?.up === true) truth.rings.add(id)
          if ((truth.suspected.get(id) ?? Infinity) < incarnation) truth.suspected.delete(id)
          break
        case 'dead':
        case 'left':
          truth.declared.add(id)
          truth.suspected.delete(id)
          truth.rings.remove(id)
          if (claim.kind === 'dead') this.declaredDead(id)
          break
        case 'suspect': {
          if (!truth.rings.has(id) || incarnation < truth.incarnationOf(id)) break
          if ((truth.suspected.get(id) ?? -1) >= incarnation) break
          truth.suspected.set(id, incarnation)
          for (const observer of truth.rings.neighbours(id).observers) {
            const light = truth.light.get(observer)
            if (light != null) at(light.node, () => light.suspicionHeard(id))
          }
          break
        }
      }
      if (claim.kind !== 'suspect' && claim.kind !== 'dead') continue
      const light = truth.light.get(id)
      if (light == null || incarnation < light.incarnation) continue
      at(light.node, () => light.refute(incarnation + 1))
    }
  }
}

export async function runHybrid(options: HybridOptions): Promise<HybridResult> {
  const { n, full } = options
  const log = options.log ?? (() => {})
  const joinWindowS = options.joinWindowS ?? 60
  const wallStart = process.hrtime.bigint()
  const h = new Hybrid(options)
  const c = h.cluster
  const notes: string[] = []
  const result: HybridResult = {
    n,
    fullMembers: full,
    seed: options.seed ?? 1,
    maxConnections: options.maxConnections === undefined ? 400 : options.maxConnections,
    joinWindowS,
    wallS: 0,
    events: 0,
    completeViewsAfterJoinsMs: null,
    steady: null,
    joinSeenByAllMs: null,
    joinerCompleteMs: null,
    killFirstSuspectMs: null,
    killSuspectedByAllMs: null,
    killDeadByAllMs: null,
    wave: null,
    falsePositives: { suspect: 0, dead: 0 },
    memory: { perFullMemberMB: null, perEntryB: null },
    recordBytes: 0,
    syncMessageBytes: 0,
    full: { idleSentBytesPerNodePerSec: null, steadySentBytesPerNodePerSec: null },
    stats: {},
    lightStats: h.stats,
    network: c.world.totals,
    summary: {},
    notes,
  }
  let victim: { id: string; at: number } | undefined
  let suspectsAtFull = 0
  c.onAccusation = (a) => {
    if (a.event === 'suspect') suspectsAtFull++
    if (victim != null && a.target === victim.id && a.at >= victim.at) return
    result.falsePositives[a.event]++
  }
  c.install()
  try {
    // 1. The first member (a full member), alone.
    const first = await c.add()
    await c.run(100)

    // 2. The others join over joinWindowS (a rolling start), each through a random
    // member already in: the full members at evenly spaced places among the light
    // ones, so that they are as old as a typical member and hold the connections one
    // does (the members that joined first hold the most: every join moved ring edges
    // away from them).
    const gap = (joinWindowS * 1000) / (n - 1)
    const isFull = (j: number) =>
      Math.floor(((j + 1) * (full - 1)) / (n - 1)) > Math.floor((j * (full - 1)) / (n - 1))
    const nodes = () => [...c.members.map((m) => m.node), ...h.light.map((l) => l.node)]
    let all = nodes()
    for (let j = 0; j < n - 1; j++) {
      if (j % 200 === 0) all = nodes()
      const bootstrap = all[Math.floor(Math.random() * all.length)]!
      if (isFull(j)) void c.addAt(j + 1, [bootstrap.addr.toString()])
      else void h.addLight(j + 1, bootstrap, first.id)
      await c.run(gap)
      if (j % 1000 === 999)
        log(`N = ${n}: ${j + 2} members in at ${Math.round(c.now / 1000)} s, wall ${wall(wallStart)} s`)
    }
    const joinedAt = c.now
    result.completeViewsAfterJoinsMs = await c.until(() => c.members.every((m) => m.alive === n), {
      capMs: PHASE_CAP_MS * 2,
      everyMs: 100,
    })
    log(
      `N = ${n}: full views complete ${result.completeViewsAfterJoinsMs} ms after the last join, wall ${wall(wallStart)} s`,
    )
    const records = h.truth.records()
    result.syncMessageBytes = h.truth.encoded.byteLength
    result.recordBytes = Math.round(result.syncMessageBytes / records.length)
    void joinedAt

    // 3. Steady window, at the full and the light members separately.
    await c.run(Math.max(0, STEADY_FROM_S * 1000 - c.now))
    const lost0 = c.world.totals.refusedFull + c.world.totals.prunedOutbound
    const suspects0 = suspectsAtFull
    const refutations0 = h.stats.refutations
    const fullNodes = c.members.map((m) => m.node)
    const lightNodes = h.light.map((l) => l.node)
    const allNodes = [...fullNodes, ...lightNodes]
    const before = [snapshot(fullNodes), snapshot(lightNodes), snapshot(allNodes)]
    await c.run(STEADY_WINDOW_S * 1000)
    const after = [snapshot(fullNodes), snapshot(lightNodes), snapshot(allNodes)]
    const traffic = (k: number, nodesOf: SimNode[]): TrafficByKind => {
      if (nodesOf.length === 0) throw new Error('no members to measure')
      const per = (a: number, b: number) => Math.round((a - b) / nodesOf.length / STEADY_WINDOW_S)
      const connections = nodesOf.map((node) => node.connections.size)
      return {
        sentBytesPerNodePerSec: per(sum(after[k]!), sum(before[k]!)),
        sentByCategory: Object.fromEntries(
          CATEGORIES.map((cat, i) => [cat, per(after[k]![i]!, before[k]![i]!)]),
        ) as Record<Category, number>,
        meanConnections: Math.round(mean(connections) * 10) / 10,
        maxConnections: Math.max(...connections),
      }
    }
    result.steady = {
      fromS: STEADY_FROM_S,
      windowS: STEADY_WINDOW_S,
      full: traffic(0, fullNodes),
      light: lightNodes.length === 0 ? null : traffic(1, lightNodes),
      all: traffic(2, allNodes),
      lostDialsPerNodePerSec:
        Math.round(
          ((c.world.totals.refusedFull + c.world.totals.prunedOutbound - lost0) / n / STEADY_WINDOW_S) * 1000,
        ) / 1000,
      suspectEventsPerSecAtFull: Math.round(((suspectsAtFull - suspects0) / STEADY_WINDOW_S) * 100) / 100,
      refutationsPerSec: Math.round(((h.stats.refutations - refutations0) / STEADY_WINDOW_S) * 100) / 100,
    }
    result.full = {
      idleSentBytesPerNodePerSec: result.steady.full.sentBytesPerNodePerSec,
      steadySentBytesPerNodePerSec: result.steady.full.sentBytesPerNodePerSec,
    }
    log(`N = ${n}: steady ${JSON.stringify(result.steady)}, wall ${wall(wallStart)} s`)

    // 4. A late joiner (a full member, through a random light member): seen by all full members.
    const joinStart = c.now
    const boot = pickRandom(h.light.length > 0 ? h.light.map((l) => l.node) : fullNodes, 1)[0]!
    const joiner = await c.addAt(n + 1, [boot.addr.toString()])
    const joinMarks: { seen: number | null; complete: number | null } = { seen: null, complete: null }
    await c.until(
      () => {
        const t = c.now - joinStart
        if (
          joinMarks.seen == null &&
          c.members.every((m) => m === joiner || m.stateOf(joiner.id) === 'alive')
        )
          joinMarks.seen = t
        if (joinMarks.complete == null && joiner.alive >= n + 1) joinMarks.complete = t
        return joinMarks.seen != null && joinMarks.complete != null
      },
      { capMs: PHASE_CAP_MS },
    )
    result.joinSeenByAllMs = joinMarks.seen
    result.joinerCompleteMs = joinMarks.complete
    log(`N = ${n}: join seen by all full members ${joinMarks.seen} ms, wall ${wall(wallStart)} s`)

    // 5. A crash of a light member (a full member when there is none): until every full member has it dead.
    const target: LightMember | SimMember = pickRandom<LightMember | SimMember>(
      h.light.length > 0 ? h.light : c.members.slice(1, n),
      1,
    )[0]!
    victim = { id: target.id, at: c.now }
    const killStart = c.now
    if (target instanceof LightMember) h.crashLight(target)
    else await c.crash(target)
    const marks: Record<'first' | 'all' | 'dead', number | null> = { first: null, all: null, dead: null }
    await c.until(
      () => {
        const states = c.running().map((m) => m.stateOf(target.id))
        const t = c.now - killStart
        if (marks.first == null && states.some((s) => s === 'suspect' || s === 'dead')) marks.first = t
        if (marks.all == null && states.every((s) => s === 'suspect' || s === 'dead')) marks.all = t
        if (marks.dead == null && states.every((s) => s === 'dead')) marks.dead = t
        return marks.dead != null
      },
      { capMs: PHASE_CAP_MS },
    )
    result.killFirstSuspectMs = marks.first
    result.killSuspectedByAllMs = marks.all
    result.killDeadByAllMs = marks.dead
    log(`N = ${n}: crash dead at all full members ${marks.dead} ms, wall ${wall(wallStart)} s`)

    // 6. A rollout's metadata wave: every member goes through a rolling update's steps
    // at once (rollout-wave.ts), the manager's 5 voters and a load balancer watching;
    // until every watcher holds every member's final details.
    const running = c.running()
    const lights = h.light.filter((l) => l.node.up)
    const watchers = running.slice(0, WAVE_WATCHERS)
    for (const w of watchers) await w.membership.setWatching(true)
    h.watchers = watchers.map((w) => w.id)
    // Everyone's views learn who watches (their records changed) before the wave.
    await c.run(5000)
    const waveNodes = [...running.map((m) => m.node), ...lights.map((l) => l.node)]
    const waveStart = c.now
    const sentBefore = sum(snapshot(waveNodes))
    const watcherReceivedBefore = watchers.map((w) => w.node.meter.total('received'))
    const steps = rolloutSteps('app@1.0', 'app@1.1')
    for (const step of steps) {
      for (const m of running) void m.membership.updateMetadata(step).catch(() => {})
      for (const l of lights) l.updateMeta(step)
      await c.run(WAVE_STEP_MS)
    }
    const everyone = [...running.map((m) => m.id), ...lights.map((l) => l.id)]
    const waveMs = await c.until(
      () =>
        watchers.every((w) => everyone.every((id) => w.membership.get(id)?.meta.distribution === 'app@1.1')),
      { capMs: PHASE_CAP_MS, everyMs: 100 },
    )
    await c.run(2000)
    const waveCount = running.length + lights.length
    result.wave = {
      everyUpdateEverywhereMs: waveMs == null ? null : waveMs + steps.length * WAVE_STEP_MS,
      sentBytesPerNode: Math.round((sum(snapshot(waveNodes)) - sentBefore) / waveCount),
      windowMs: Math.round(c.now - waveStart),
      steps: steps.length,
      watchers: watchers.length,
      watcherReceivedBytes: Math.round(
        watchers.reduce((s, w, i) => s + w.node.meter.total('received') - watcherReceivedBefore[i]!, 0) /
          watchers.length,
      ),
    }
    log(
      `N = ${n}: rollout wave ${result.wave.everyUpdateEverywhereMs} ms, ${result.wave.sentBytesPerNode} B/node, watcher received ${result.wave.watcherReceivedBytes} B, wall ${wall(wallStart)} s`,
    )

    // 7. The heap of the full members' Membership objects (10,000-entry views).
    result.stats = sumStats(c.members.map((m) => ({ ...m.membership.stats() })))
    for (const light of h.light) light.stop()
    const bytes = await c.membershipHeapBytes()
    if (bytes != null) {
      result.memory.perFullMemberMB = Math.round((bytes / c.members.length / 2 ** 20) * 100) / 100
      result.memory.perEntryB = Math.round(bytes / c.members.length / n)
    }
  } catch (err) {
    notes.push(`aborted: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  } finally {
    result.events = c.clock.fired
    if (c.clock.errors.size > 0) notes.push(`timer callbacks threw: ${JSON.stringify([...c.clock.errors])}`)
    for (const light of h.light) light.stop()
    await c.close()
    result.wallS = wall(wallStart)
    result.summary = {
      completeViewsAfterJoinsMs: result.completeViewsAfterJoinsMs,
      joinSeenByAllMs: result.joinSeenByAllMs,
      killDeadByAllMs: result.killDeadByAllMs,
      fullSent: result.steady?.full.sentBytesPerNodePerSec,
      lightSent: result.steady?.light?.sentBytesPerNodePerSec,
      connections: result.steady?.full.meanConnections,
      lightConnections: result.steady?.light?.meanConnections,
      allSent: result.steady?.all.sentBytesPerNodePerSec,
      allConnections: result.steady?.all.meanConnections,
      allMaxConnections: result.steady?.all.maxConnections,
      falsePositives: result.falsePositives,
      perEntryB: result.memory.perEntryB,
      wave: result.wave,
      syncMessageBytes: result.syncMessageBytes,
      wallS: result.wallS,
    }
  }
  return result
}

function snapshot(nodes: SimNode[]): number[] {
  const out = CATEGORIES.map(() => 0)
  for (const node of nodes) {
    if (!node.up) continue
    for (let i = 0; i < CATEGORIES.length; i++) out[i]! += node.meter.sent[i]!
  }
  return out
}

function sumStats(parts: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {}
  for (const part of parts)
    for (const [key, value] of Object.entries(part))
      total[key] = key === 'health' ? Math.max(total[key] ?? 0, value) : (total[key] ?? 0) + value
  return total
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const onAbort = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)
const mean = (values: number[]) => (values.length === 0 ? 0 : sum(values) / values.length)

function wall(start: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - start) / 1e8) / 10
}
