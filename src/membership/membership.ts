import { setTimeout as sleep } from 'node:timers/promises'
import type { IdentifyResult, Message, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger, Startable } from '../shared/index.js'
import {
  type Channel,
  exchange,
  FrameError,
  messageOf,
  pickRandom,
  serve,
  shuffle,
  TypedEvents,
} from '../shared/index.js'
import { Awareness } from './awareness.js'
import { Backpressure } from './backpressure.js'
import type { MembershipTimers } from './config.js'
import { ConnectionBudget } from './connection-budget.js'
import { BOOTSTRAP_WARN_AFTER, CATCH_UP_SYNCS, MAX_MESSAGE_BYTES } from './constants.js'
import { DetailRelay } from './detail-relay.js'
import { MembershipMessageError } from './errors.js'
import type { MembershipEvents } from './events.js'
import type { Claim, Member, MemberMetadata, MemberRecord } from './member.js'
import { claimsOfRecord } from './member.js'
import type { Detail } from './member-details.js'
import { MemberTable } from './member-table.js'
import {
  decodeGossip,
  decodeProbeAnswer,
  decodeProbeRequest,
  decodeSync,
  encode,
  type ProbeRequest,
  WIRE_VERSION,
} from './messages.js'
import type { MetadataContract } from './metadata-contract.js'
import { type RingNeighbours, ringNeighbours } from './monitoring-rings.js'
import type { MembershipNetwork } from './network.js'
import { type MembershipProtocols, membershipProtocols } from './protocols.js'
import { watchEpochOf } from './roles.js'
import { SelfAnnouncement } from './self-announcement.js'
import { answerPullPush, pullPush } from './sync-exchange.js'

/** Where this node keeps the last incarnation it announced, so a restart goes above it. */
export interface IncarnationStore {
  load(): Promise<number | null>
  save(incarnation: number): Promise<void>
}

export interface MembershipComponents {
  network: MembershipNetwork
  store: IncarnationStore
  logger: Logger
}

export interface MembershipStats {
  probes: number
  probeFailures: number
  indirectProbes: number
  /** Probes that failed only because this node was too slow to tell (not counted as failures). */
  inconclusiveProbes: number
  suspicionsRaised: number
  syncs: number
  gossipSent: number
  gossipReceived: number
  /** Payload bytes of the gossip messages above (once per message, not per peer it reached). */
  gossipBytesSent: number
  gossipBytesReceived: number
  /** Lifeguard local-health score: 0 is healthy; timeouts are stretched by (health + 1). */
  health: number
}

/**
 * SWIM-style membership over libp2p (see docs/architecture.md):
 * - failure detection: probe one member per interval directly, then through k
 *   others, then suspect; suspicions time out into `dead` unless refuted;
 * - dissemination: claims are published on the cluster's gossipsub topic;
 * - anti-entropy: a joining node pulls the whole view from the first member it
 *   reaches, and every sync interval a digest exchange with a random member
 *   repairs what gossip lost.
 */
export class Membership implements Startable {
  readonly events: TypedEvents<MembershipEvents>
  private readonly protocols: MembershipProtocols
  private readonly log: Logger
  private readonly awareness: Awareness
  private readonly backpressure: Backpressure
  /** When this node last published its own record, and whether a publication is waiting. */
  private lastAnnouncedAt = Number.NEGATIVE_INFINITY
  private announcementDue: ReturnType<typeof setTimeout> | null = null
  /** Whether the publication waiting must be the whole record (a refutation). */
  private fullAnnouncementDue = false
  private readonly announcement = new SelfAnnouncement()
  /** Members whose whole record is being fetched (a patch this view could not apply). */
  private readonly fetchingRecords = new Set<string>()
  private table: MemberTable | undefined
  /** Keys of reach `watchers`: this node's to the watchers, a watcher's from everyone (detail-relay.ts). */
  private relay: DetailRelay | undefined
  /** The watch epoch this node announces while it watches: its incarnation at start. */
  private watchEpoch = 0
  private running = false
  private leaving = false
  private abort = new AbortController()
  private probeOrder: string[] = []
  /** This node's place on the monitoring rings, for the view's live set of `version`. */
  private rings: { version: number; neighbours: RingNeighbours } | null = null
  private readonly budget = new ConnectionBudget()
  private readonly probing = new Set<string>()
  private readonly syncing = new Set<string>()
  private readonly lastSync = new Map<string, number>()
  private readonly knownAddrs = new Map<string, string>()
  /** Members declared dead, with their last addresses: tried again now and then (reconnectOne). */
  private readonly failed = new Map<string, { addrs: string[]; since: number }>()
  /** Failed joins in a row per bootstrap address, so a wrong address is reported, not retried silently. */
  private readonly bootstrapFailures = new Map<string, number>()
  private syncRounds = 0
  private readonly foreignPeers = new Set<string>()
  private readonly counters: Omit<MembershipStats, 'health'> = {
    probes: 0,
    probeFailures: 0,
    indirectProbes: 0,
    inconclusiveProbes: 0,
    suspicionsRaised: 0,
    syncs: 0,
    gossipSent: 0,
    gossipReceived: 0,
    gossipBytesSent: 0,
    gossipBytesReceived: 0,
  }

  constructor(
    private readonly init: {
      cluster: string
      timers: MembershipTimers
      bootstrap: string[]
      meta: MemberMetadata
      contract: MetadataContract
    },
    private readonly components: MembershipComponents,
  ) {
    this.log = components.logger.child('membership')
    this.events = new TypedEvents<MembershipEvents>(this.log)
    this.protocols = membershipProtocols(init.cluster)
    this.awareness = new Awareness(init.timers.awarenessMax)
    this.backpressure = new Backpressure(init.timers, this.awareness)
  }

  private get network(): MembershipNetwork {
    return this.components.network
  }

  private get timers(): MembershipTimers {
    return this.init.timers
  }

  get id(): string {
    return this.network.peerId.toString()
  }

  /** This node's own record. */
  get self(): Member {
    return this.view().get(this.id)!
  }

  async start(): Promise<void> {
    if (this.running) return
    this.abort = new AbortController()
    const { view: meta, detail } = this.init.contract.split(this.init.contract.checkOwn(this.init.meta))
    const incarnation = ((await this.components.store.load()) ?? 0) + 1
    await this.components.store.save(incarnation)
    this.watchEpoch = incarnation
    const self: MemberRecord = {
      id: this.id,
      addrs: this.network.getMultiaddrs().map((ma) => ma.toString()),
      incarnation,
      state: 'alive',
      meta,
    }
    this.table = new MemberTable(
      self,
      this.timers,
      this.events,
      {
        declaredDead: (claim) => this.broadcast([claim]),
        refute: (next) => this.refute(next),
        observersOf: (id) => this.aliveObserversOf(id),
        stale: (id) => void this.fetchRecord(id),
      },
      this.log,
      this.init.contract,
    )
    const relay = new DetailRelay(
      { self: this.id, timeoutMs: this.timers.leaveTimeout, gapMs: METADATA_ANNOUNCE_GAP_MS },
      () => this.view(),
      (id, request, timeoutMs) => this.ask(id, request, timeoutMs),
      this.log,
    )
    this.relay = relay
    if (Object.keys(detail).length > 0) relay.publish(detail, incarnation)
    for (const name of ['member:join', 'member:update', 'member:dead', 'member:leave'] as const)
      this.events.on(name, (member) => relay.observe(member, this.watching))
    this.events.on('member:join', this.rememberAddresses)
    this.events.on('member:update', this.rememberAddresses)
    // Members declared dead stay on the reconnect list (with their addresses) until
    // they come back, leave, or the reconnect timeout passes.
    this.events.on('member:dead', (member) => {
      if (member.addrs.length > 0) this.failed.set(member.id, { addrs: member.addrs, since: Date.now() })
    })
    for (const name of ['member:join', 'member:update', 'member:leave'] as const)
      this.events.on(name, (member) => {
        if (member.state === 'dead') return
        const failed = this.failed.get(member.id)
        if (failed == null) return
        this.failed.delete(member.id)
        // Back from the dead through someone else's gossip: a connection that was open
        // while it was unreachable is most likely a cut one (see reconnectOne), and every
        // stream opened on it would wait for TCP's backed-off retransmission.
        if (member.state !== 'left') this.dropStaleConnections(member.id, failed.since)
      })
    // A suspicion of a member this node watches: probe it now, so its observers'
    // verdicts (confirmations, or a refutation prompted by our probe) come within a
    // probe instead of within K probe intervals.
    this.events.on('member:suspect', (member) => {
      if (!this.neighbours().subjects.includes(member.id)) return
      setTimeout(() => {
        const current = this.table?.get(member.id)
        if (this.running && current?.state === 'suspect') void this.probe(current).catch(() => {})
      }, Math.random() * 50).unref()
    })
    this.events.on('member:reap', (member) => {
      relay.forget(member.id)
      this.budget.forget(member.id)
      this.knownAddrs.delete(member.id)
      this.lastSync.delete(member.id)
    })
    // Connections are not closed on dead or left: a leaving member closes its own,
    // a crashed one's are gone already, and a member declared dead by mistake would
    // pay a new handshake for nothing.

    const handlerTimeout = this.timers.probeTimeout * (this.timers.awarenessMax + 1) * 3
    await serve(this.network, this.protocols.probe, this.limits(handlerTimeout), this.log, (ch, conn) =>
      this.answerProbe(ch, conn.remotePeer),
    )
    await serve(
      this.network,
      this.protocols.deltaSync,
      this.limits(Math.max(10_000, handlerTimeout)),
      this.log,
      (ch, conn) => this.answerDeltaSync(ch, conn.remotePeer),
    )
    await serve(
      this.network,
      this.protocols.sync,
      this.limits(Math.max(10_000, handlerTimeout)),
      this.log,
      (ch, conn) => this.answerSync(ch, conn.remotePeer),
    )
    this.network.services.pubsub.subscribe(this.protocols.topic)
    this.network.services.pubsub.addEventListener('message', this.onGossip)
    this.network.addEventListener('peer:identify', this.onIdentify)
    this.network.addEventListener('peer:disconnect', this.onDisconnect)
    this.running = true

    this.broadcast([this.announcement.next(this.view().selfRecord, true)], true)
    void this.loop(
      'probe',
      () => this.awareness.scale(this.timers.probeInterval),
      () => this.probeNext(),
    )
    void this.loop(
      'sync',
      // The first rounds come quickly so a node that joined during a mass start
      // catches up with members its first peer did not know yet.
      () =>
        this.syncRounds++ < CATCH_UP_SYNCS ? this.timers.probeInterval * 2 : jitter(this.timers.syncInterval),
      () => this.syncRandom(),
    )
    void this.loop(
      'trim',
      () => this.timers.probeInterval * 4,
      async () => this.trimConnections(),
    )
    void this.loop(
      'reconnect',
      () => jitter(this.timers.reconnectInterval),
      () => this.reconnectOne(),
    )
    void this.loop(
      'join',
      () => this.timers.joinRetryInterval,
      () => this.joinIfAlone(),
      true,
    )
    this.log.info('membership started', { id: this.id, incarnation, cluster: this.init.cluster })
    this.log.debug('membership timers', { ...this.timers })
  }

  /**
   * Leaves gracefully: tells the cluster (gossip, plus direct notices to a few
   * members that pass it on) and waits up to the leave timeout for their acks.
   */
  async leave(): Promise<void> {
    if (!this.running || this.leaving || this.table == null) return
    this.leaving = true
    const self = this.table.selfRecord
    this.table.setSelf({ ...self, state: 'left' })
    const claim: Claim = { kind: 'left', id: self.id, incarnation: self.incarnation }
    this.broadcast([claim])
    const witnesses = pickRandom(this.table.others('alive'), this.timers.indirectChecks)
    const answers = await Promise.all(witnesses.map((member) => this.notify(member.id, [claim])))
    // A witness that did not answer in time (a busy node) gets one more try: without
    // any ack the leave may not spread before this node's connections close.
    const missed = witnesses.filter((_, i) => !answers[i])
    const retried = await Promise.all(missed.map((member) => this.notify(member.id, [claim])))
    const acked = answers.filter(Boolean).length + retried.filter(Boolean).length
    this.log.info('left the cluster', { notified: witnesses.length, acknowledged: acked })
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.abort.abort()
    this.relay?.stop()
    if (this.announcementDue != null) clearTimeout(this.announcementDue)
    this.announcementDue = null
    this.network.services.pubsub.removeEventListener('message', this.onGossip)
    this.network.removeEventListener('peer:identify', this.onIdentify)
    this.network.removeEventListener('peer:disconnect', this.onDisconnect)
    try {
      this.network.services.pubsub.unsubscribe(this.protocols.topic)
    } catch {
      // pubsub already stopped with the node
    }
    await this.network
      .unhandle([this.protocols.probe, this.protocols.sync, this.protocols.deltaSync])
      .catch(() => {})
    this.table?.clear()
    this.events.removeAll()
  }

  /** Every member in the view (this node included), sorted by id. */
  members(): Member[] {
    return this.view()
      .members()
      .sort((a, b) => a.id.localeCompare(b.id))
  }

  get(id: string): Member | undefined {
    return this.view().get(id)
  }

  /**
   * Replaces this node's metadata and announces it under a new incarnation. Every
   * key must be declared, valid and within its budget (MetadataError otherwise).
   */
  async setMetadata(next: MemberMetadata, options: MetadataUpdateOptions = {}): Promise<void> {
    // After a leave, an announcement would bring this node back as alive.
    if (this.leaving) return
    const { view: meta, detail } = this.init.contract.split(this.init.contract.checkOwn(next))
    const table = this.view()
    // Keys of reach `watchers` go to the watchers only, under their own version.
    this.relay?.publish(detail, table.selfRecord.incarnation, options.urgent === true ? 0 : undefined)
    if (JSON.stringify(meta) !== JSON.stringify(table.selfRecord.meta)) {
      const incarnation = table.selfRecord.incarnation + 1
      // The view changes at once (so concurrent updates compose); the incarnation is
      // durable before anyone hears of it, so a restart always goes above it.
      table.setSelf({ ...table.selfRecord, incarnation, meta })
      await this.components.store.save(incarnation)
      this.announceSelf(METADATA_ANNOUNCE_GAP_MS)
    }
    this.events.emit('member:update', this.self)
  }

  /** True while this node watches: every member sends it its keys of reach `watchers`. */
  get watching(): boolean {
    return this.table != null && watchEpochOf(this.table.selfRecord) != null
  }

  /**
   * Starts or stops watching (a load balancer, a manager voter): while it watches,
   * every member sends this node its keys of reach `watchers`, so `members()` shows
   * them; otherwise only their own record's keys (and what `refreshDetails` fetched).
   */
  async setWatching(on: boolean): Promise<void> {
    if (on === this.watching) return
    await this.updateMetadata({ watch: on ? this.watchEpoch : undefined })
    if (on) for (const member of this.view().members()) this.relay?.observe(member, true)
  }

  /**
   * For readers on a node that does not watch (its API): fetches from a watcher the
   * keys of reach `watchers` that changed since the last fetch, unless that began
   * less than `maxAgeMs` ago, so `members()` shows them. Best effort: without a
   * watcher, nothing.
   */
  refreshDetails(maxAgeMs = 0): Promise<void> {
    return this.relay?.refresh(this.watching, maxAgeMs) ?? Promise.resolve()
  }

  /**
   * Publishes this node's record (its latest incarnation) now, or `gapMs` after the
   * last publication: a burst of changes (a switch moves several components through
   * their states within milliseconds) or of accusations goes out as one claim, the
   * latest. Syncs carry the latest record meanwhile.
   */
  private announceSelf(gapMs: number, full = false): void {
    if (full) this.fullAnnouncementDue = true
    if (this.announcementDue != null || !this.running) return
    const announce = () => {
      this.announcementDue = null
      if (this.leaving) return
      this.lastAnnouncedAt = Date.now()
      this.broadcast([this.announcement.next(this.view().selfRecord, this.fullAnnouncementDue)])
      this.fullAnnouncementDue = false
    }
    const delay = Math.max(0, this.lastAnnouncedAt + gapMs - Date.now())
    if (delay === 0) {
      announce()
      return
    }
    this.announcementDue = setTimeout(announce, delay)
    this.announcementDue.unref?.()
  }

  /**
   * Sets some top-level metadata keys (others stay), so each subsystem owns its
   * keys; announces only when something changed. Checked as setMetadata is.
   */
  async updateMetadata(patch: MemberMetadata, options: MetadataUpdateOptions = {}): Promise<void> {
    const current = this.self.meta
    const next = { ...current, ...patch }
    if (JSON.stringify(next) === JSON.stringify(current)) return
    await this.setMetadata(next, options)
  }

  stats(): MembershipStats {
    return { ...this.counters, health: this.awareness.health }
  }

  private limits(timeoutMs: number) {
    return { timeoutMs, maxBytes: MAX_MESSAGE_BYTES }
  }

  private view(): MemberTable {
    if (this.table == null) throw new Error('membership is not started')
    return this.table
  }

  private refute(incarnation: number): void {
    if (!this.running || this.leaving) return
    const table = this.view()
    if (incarnation <= table.selfRecord.incarnation) return
    table.setSelf({ ...table.selfRecord, incarnation, state: 'alive' })
    // Being accused is a hint that we are the slow one (Lifeguard).
    this.awareness.apply(1)
    this.components.store
      .save(incarnation)
      .catch((err) => this.log.warn('could not persist incarnation', { error: messageOf(err) }))
    this.log.info('refuted a claim about this node', { incarnation })
    // A burst of accusations gets one answer (the latest incarnation) per probe
    // interval at most (backpressure.ts).
    this.announceSelf(this.timers.probeInterval, true)
  }

  /**
   * Asks `id` for its whole record, after a patch this view could not apply (it missed
   * the incarnation patched). Best effort: the next sync repairs what this misses.
   */
  private async fetchRecord(id: string): Promise<void> {
    if (this.fetchingRecords.has(id) || !this.running || id === this.id) return
    this.fetchingRecords.add(id)
    try {
      const record = await exchange(
        this.network,
        peerIdFromString(id),
        this.protocols.probe,
        this.limits(this.timers.probeTimeout + this.timers.connectTimeout),
        async (ch) => {
          await ch.write(encode({ t: 'record' }))
          const answer = decodeProbeAnswer(await ch.read())
          if (answer.t !== 'record' || answer.record.id !== id)
            throw new MembershipMessageError(`asked ${id} for its record, got "${answer.t}"`)
          return answer.record
        },
      )
      this.applyAll(claimsOfRecord(record, id))
    } catch (err) {
      this.log.debug('could not fetch a member record after a patch', { member: id, error: messageOf(err) })
    } finally {
      this.fetchingRecords.delete(id)
    }
  }

  /** Applies claims; the ones that changed the view are returned. */
  private applyAll(claims: Claim[]): Claim[] {
    const table = this.view()
    return claims.filter((claim) => table.apply(claim))
  }

  /**
   * Publishes claims on the topic. With `repeat`, the same bytes go out once more a
   * little later: message ids are content hashes, so members that got the first
   * copy drop the second unseen, and only those that missed it (a subscription not
   * yet known when a node was joining) take it.
   */
  private broadcast(claims: Claim[], repeat = false): void {
    if (claims.length === 0 || !this.running) return
    const publish = (data: Uint8Array) => {
      if (!this.running) return
      this.counters.gossipSent++
      this.counters.gossipBytesSent += data.byteLength
      this.network.services.pubsub
        .publish(this.protocols.topic, data)
        .catch((err) => this.log.debug('gossip publish failed', { error: messageOf(err) }))
    }
    publish(encode({ v: WIRE_VERSION, claims }))
    // Other bytes than the first (gossip names a message by its bytes, and refuses to publish one it has seen).
    if (repeat)
      setTimeout(
        () => publish(encode({ v: WIRE_VERSION, claims, r: 1 })),
        this.timers.probeInterval * 2,
      ).unref()
  }

  private readonly onGossip = (evt: CustomEvent<Message>): void => {
    const message = evt.detail
    if (message.topic !== this.protocols.topic || !this.running) return
    this.counters.gossipReceived++
    this.counters.gossipBytesReceived += message.data.byteLength
    try {
      this.applyAll(decodeGossip(message.data).claims)
    } catch (err) {
      this.log.debug('dropped gossip message', { error: messageOf(err) })
    }
  }

  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { peerId, protocols } = evt.detail
    const id = peerId.toString()
    if (!protocols.includes(this.protocols.sync)) {
      if (!this.foreignPeers.has(id)) {
        this.foreignPeers.add(id)
        this.log.info(
          'connected peer is not a member of this cluster (another cluster, or not a shoal agent)',
          {
            peer: id,
          },
        )
      }
      return
    }
    const member = this.table?.get(id)
    // Only a stranger (or one back from dead or left) warrants a full exchange;
    // everything else reaches us by gossip and the periodic sync.
    if (member == null || member.state === 'dead' || member.state === 'left') void this.syncWith(peerId)
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const member = this.table?.get(evt.detail.toString())
    // A lost connection is a hint, not a verdict: probe the member now instead of
    // waiting for its turn, so a crashed node is noticed within one probe. Only a
    // subject of ours: the budget never closes those, while probing any member whose
    // connection the budget just closed re-dialled it at once (a simulation at 10,000
    // saw every trimmed connection come back within ~40 ms).
    if (
      member != null &&
      member.state === 'alive' &&
      this.running &&
      this.neighbours().subjects.includes(member.id)
    ) {
      setTimeout(() => void this.probe(member).catch(() => {}), Math.random() * 50).unref()
    }
  }

  private readonly rememberAddresses = (member: Member): void => {
    if (member.self || member.addrs.length === 0) return
    // The peer store re-serializes a peer on every merge: only when addresses change.
    const key = member.addrs.join(' ')
    if (this.knownAddrs.get(member.id) === key) return
    this.knownAddrs.set(member.id, key)
    try {
      const multiaddrs = member.addrs.map((addr) => multiaddr(addr).decapsulateCode(421))
      void this.network.peerStore
        .merge(peerIdFromString(member.id), { multiaddrs })
        .catch((err) => this.log.debug('peer store merge failed', { error: messageOf(err) }))
    } catch (err) {
      this.log.debug('member has unusable addresses', { member: member.id, error: messageOf(err) })
    }
  }

  /** Runs `step` repeatedly with `delay()` ms between runs until stop. */
  private async loop(
    name: string,
    delay: () => number,
    step: () => Promise<void>,
    stepFirst = false,
  ): Promise<void> {
    const { signal } = this.abort
    try {
      // A sleep that ends far later than asked is an event loop that stalled (backpressure.ts).
      const pause = async (ms: number) => {
        const wakeAt = Date.now() + ms
        await sleep(ms, undefined, { signal, ref: false })
        this.backpressure.woke(Date.now() - wakeAt)
      }
      if (!stepFirst) await pause(delay())
      while (!signal.aborted) {
        const started = Date.now()
        await step().catch((err) => this.log.debug(`${name} step failed`, { error: messageOf(err) }))
        await pause(Math.max(0, delay() - (Date.now() - started)))
      }
    } catch (err) {
      if (!signal.aborted) this.log.error(`${name} loop stopped`, { error: messageOf(err) })
    }
  }

  /**
   * Round-robin over this node's subjects on the monitoring rings (monitoring-rings.ts),
   * reshuffled each round: each subject is probed within K intervals by this node, and
   * every member about once an interval by one of its K observers, as SWIM's random
   * order gives, with connections to K members instead of all.
   */
  private async probeNext(): Promise<void> {
    const table = this.view()
    const subjects = new Set(this.neighbours().subjects)
    while (this.probeOrder.length > 0) {
      const id = this.probeOrder.pop()!
      const member = table.get(id)
      if (subjects.has(id) && member != null && (member.state === 'alive' || member.state === 'suspect')) {
        await this.probe(member)
        return
      }
    }
    this.probeOrder = shuffle([...subjects])
  }

  /** This node's subjects and observers for the current live set (recomputed when it changes). */
  private neighbours(): RingNeighbours {
    const table = this.view()
    if (this.rings?.version !== table.liveVersion)
      this.rings = { version: table.liveVersion, neighbours: ringNeighbours(table.liveIds(), this.id) }
    return this.rings.neighbours
  }

  /**
   * Closes the connections beyond the budget (connection-budget.ts), least recently
   * used first; ring neighbours and gossip mesh peers stay, and so does any
   * connection another subsystem has a stream open on.
   */
  private trimConnections(): void {
    if (this.leaving) return
    const { subjects, observers } = this.neighbours()
    const keep = new Set([...subjects, ...observers, ...this.meshPeers()])
    const background = (protocol: string) =>
      protocol === this.protocols.probe ||
      protocol === this.protocols.sync ||
      protocol === this.protocols.deltaSync ||
      BACKGROUND_PROTOCOLS.some((prefix) => protocol.startsWith(prefix))
    const excess = this.budget.excess(this.network.getConnections(), { keep, background })
    for (const connection of excess) {
      this.log.debug('closing a connection beyond the budget', { peer: connection.remotePeer.toString() })
      connection
        .close()
        .catch((err: unknown) => connection.abort(err instanceof Error ? err : new Error(String(err))))
    }
  }

  /** Gossipsub's mesh for the membership topic (empty with a pubsub that has no mesh). */
  private meshPeers(): string[] {
    const pubsub = this.network.services.pubsub as { getMeshPeers?: (topic: string) => unknown[] }
    return (pubsub.getMeshPeers?.(this.protocols.topic) ?? []).map(String)
  }

  /** The members alive in this view that watch `id` on the rings. */
  private aliveObserversOf(id: string): string[] {
    const table = this.view()
    if (id === this.id) return this.neighbours().observers
    return ringNeighbours(table.liveIds(), id).observers.filter((o) => table.get(o)?.state === 'alive')
  }

  private async probe(target: MemberRecord): Promise<void> {
    if (this.probing.has(target.id) || !this.running || this.leaving) return
    this.probing.add(target.id)
    this.budget.touch(target.id)
    try {
      this.counters.probes++
      const timeout = this.deadlineFor(target.id)
      const directStart = performance.now()
      const direct = await this.ping(target.id, timeout)
      if (direct === 'ack') {
        this.awareness.apply(-1)
        return
      }
      if (direct === 'refused') {
        // Its host answered that nothing listens on the port: the process is gone,
        // and no helper can reach it either. Evidence, still to be agreed on.
        this.accuse(target.id, true)
        return
      }
      if (this.overran(directStart, timeout)) return
      const helpers = this.helpersFor(target.id)
      this.counters.indirectProbes += helpers.length
      // A helper may have to connect to us and to the target: room for both.
      const indirectTimeout = this.awareness.scale(
        this.timers.probeTimeout * 2 + this.timers.connectTimeout * 2,
      )
      const indirectStart = performance.now()
      const answers = await Promise.all(
        helpers.map((helper) => this.pingThrough(helper, target, indirectTimeout)),
      )
      if (answers.includes('ack') || this.overran(indirectStart, indirectTimeout)) return
      // Helpers that did not even send a nack suggest our own side is unwell.
      if (answers.includes('none')) this.awareness.apply(1)
      this.accuse(target.id, false)
    } finally {
      this.probing.delete(target.id)
    }
  }

  /** A probe of `id` failed (`refused`: its port is closed): suspect it, or confirm the suspicion. */
  private accuse(id: string, refused: boolean): void {
    this.counters.probeFailures++
    const current = this.view().get(id)
    if (current == null || !this.running) return
    if (current.state !== 'alive' && current.state !== 'suspect') return
    // Stalled lately, or in poor local health: this node's verdict is not worth
    // anyone's time; the target's other observers will tell if it is really gone.
    if (!this.backpressure.reliable) {
      this.counters.inconclusiveProbes++
      return
    }
    // Already suspected by someone else: our failed probe is an independent
    // confirmation, which shortens everyone's suspicion timer (Lifeguard).
    const claim: Claim = {
      kind: 'suspect',
      id,
      incarnation: current.incarnation,
      from: this.id,
      ...(refused ? { refused: true } : {}),
    }
    if (this.view().apply(claim)) {
      this.counters.suspicionsRaised++
      this.log.info('member suspected', { member: id, incarnation: current.incarnation, refused })
      if (this.backpressure.mayAccuse()) this.broadcast([claim])
      // Tell the suspect too: if it is only slow, it refutes at once instead of
      // when gossip or a sync happens to reach it.
      if (!refused) void this.notify(id, [claim])
    }
  }

  /**
   * Members to ask for an indirect probe of `target`: its other observers first (they
   * hold a connection to it and probe it anyway), then members this node is connected
   * to, so a failed probe opens no connection to strangers.
   */
  private helpersFor(target: string): MemberRecord[] {
    const table = this.view()
    const usable = (id: string) => {
      const member = table.get(id)
      return id !== target && id !== this.id && member?.state === 'alive' ? member : null
    }
    const helpers = pickRandom(this.aliveObserversOf(target), this.timers.indirectChecks)
      .map(usable)
      .filter((m) => m != null)
    if (helpers.length < this.timers.indirectChecks) {
      const connected = this.network
        .getConnections()
        .map((c) => c.remotePeer.toString())
        .filter((id) => !helpers.some((h) => h.id === id))
      for (const id of pickRandom([...new Set(connected)], this.timers.indirectChecks - helpers.length)) {
        const member = usable(id)
        if (member != null) helpers.push(member)
      }
    }
    return helpers
  }

  /**
   * The ack deadline for a probe of `id`, stretched by local health. Over TCP the
   * first contact also pays a dial and handshakes, so without a connection the
   * connect timeout is added (a crashed peer still fails at once: refused).
   */
  private deadlineFor(id: string): number {
    const connected = this.network.getConnections(peerIdFromString(id)).length > 0
    return this.awareness.scale(this.timers.probeTimeout + (connected ? 0 : this.timers.connectTimeout))
  }

  /** Sends claims straight to one member (best effort). */
  private async notify(id: string, claims: Claim[]): Promise<boolean> {
    this.budget.touch(id)
    try {
      await exchange(
        this.network,
        peerIdFromString(id),
        this.protocols.probe,
        this.limits(this.timers.leaveTimeout),
        async (ch) => {
          await ch.write(encode({ t: 'claims', claims }))
          decodeProbeAnswer(await ch.read())
        },
      )
      return true
    } catch {
      return false
    }
  }

  /**
   * True when a failed step took far longer than its deadline: then our own event
   * loop was late (an overloaded node), the failure says nothing about the peer, and
   * local health is lowered instead of anyone being suspected (Lifeguard's spirit).
   */
  private overran(started: number, deadline: number): boolean {
    if (performance.now() - started <= deadline * 1.5) return false
    this.awareness.apply(1)
    this.counters.inconclusiveProbes++
    return true
  }

  /**
   * One probe of `id` within `timeout`. A quick failure while a connection to the
   * peer remains (a stream cut because a duplicate connection was closed under it)
   * is retried once in the time left.
   */
  private async ping(id: string, timeout: number): Promise<ProbeOutcome> {
    const started = performance.now()
    const first = await this.pingOnce(id, timeout)
    if (first !== 'failed') return first
    const left = timeout - (performance.now() - started)
    if (left < timeout / 2 || this.network.getConnections(peerIdFromString(id)).length === 0) return first
    return this.pingOnce(id, left)
  }

  private async pingOnce(id: string, timeout: number): Promise<ProbeOutcome> {
    try {
      await exchange(
        this.network,
        peerIdFromString(id),
        this.protocols.probe,
        this.limits(timeout),
        async (ch) => {
          await ch.write(encode({ t: 'ping' }))
          if (decodeProbeAnswer(await ch.read()).t !== 'ack') throw new Error('no ack')
        },
      )
      return 'ack'
    } catch (err) {
      return connectionRefused(err) ? 'refused' : 'failed'
    }
  }

  private async pingThrough(
    helper: MemberRecord,
    target: MemberRecord,
    timeout: number,
  ): Promise<'ack' | 'nack' | 'none'> {
    this.budget.touch(helper.id)
    try {
      return await exchange(
        this.network,
        peerIdFromString(helper.id),
        this.protocols.probe,
        this.limits(timeout),
        async (ch) => {
          await ch.write(encode({ t: 'ping-req', target: target.id, addrs: target.addrs }))
          const answer = decodeProbeAnswer(await ch.read()).t
          return answer === 'ack' || answer === 'nack' ? answer : 'none'
        },
      )
    } catch {
      return 'none'
    }
  }

  private async answerProbe(ch: Channel, from: PeerId): Promise<void> {
    this.budget.touch(from.toString())
    const request = decodeProbeRequest(await ch.read())
    switch (request.t) {
      case 'ping':
        await ch.write(encode({ t: 'ack' }))
        return
      case 'ping-req': {
        const outcome = await this.ping(request.target, this.deadlineFor(request.target))
        await ch.write(encode({ t: outcome === 'ack' ? 'ack' : 'nack' }))
        return
      }
      case 'record':
        await ch.write(encode({ t: 'record', record: this.view().selfRecord }))
        return
      case 'detail':
        // Only from the member itself (the connection's authenticated peer), checked as any claim.
        if (this.watching && request.detail.id === from.toString())
          this.relay?.receive(this.checkedDetail(request.detail))
        await ch.write(encode({ t: 'ack' }))
        return
      case 'details':
        await ch.write(encode(this.relay!.page(request, this.watching ? this.watchEpoch : 0)))
        return
      case 'claims': {
        // Direct notices (a leave) reach only a few members: pass what is news on.
        this.broadcast(this.applyAll(request.claims), true)
        await ch.write(encode({ t: 'ack' }))
        this.log.debug('direct claims received', { from: from.toString(), count: request.claims.length })
        return
      }
    }
  }

  /** A request on the probe protocol to `id`, and its answer. */
  private ask(id: string, request: ProbeRequest, timeoutMs: number) {
    this.budget.touch(id)
    return exchange(
      this.network,
      peerIdFromString(id),
      this.protocols.probe,
      this.limits(timeoutMs),
      async (ch) => {
        await ch.write(encode(request))
        const answer = decodeProbeAnswer(await ch.read())
        if (answer.t === 'details')
          answer.details = answer.details
            .filter((d) => request.t !== 'details' || request.own !== true || d.id === id)
            .map((d) => this.checkedDetail(d))
        return answer
      },
    )
  }

  /** Details from the wire with their metadata checked against the contract (a bad key dropped). */
  private checkedDetail(detail: Detail): Detail {
    return { ...detail, meta: this.init.contract.check(detail.meta).meta }
  }

  private async joinIfAlone(): Promise<void> {
    if (this.init.bootstrap.length === 0 || this.view().others('alive', 'suspect').length > 0) return
    // Dial, then sync ourselves: a connection that already exists raises no new
    // identify event, so waiting for one would leave a node alone after a failed sync.
    await Promise.allSettled(
      this.init.bootstrap.map(async (addr) => {
        try {
          const connection = await this.network.dial(multiaddr(addr), {
            signal: AbortSignal.timeout(this.timers.joinRetryInterval * 2),
          })
          await this.syncWith(connection.remotePeer)
          this.bootstrapFailures.delete(addr)
        } catch (err) {
          const failures = (this.bootstrapFailures.get(addr) ?? 0) + 1
          this.bootstrapFailures.set(addr, failures)
          // The third failure in a row, then every twentieth: a wrong address is worth a line, not a flood.
          if (failures === BOOTSTRAP_WARN_AFTER || failures % (BOOTSTRAP_WARN_AFTER * 20) === 0)
            this.log.warn(
              `cannot join through bootstrap ${addr} (${failures} tries): ${messageOf(err)}; check the address and port, and that both nodes use the same cluster name and --secret-file`,
            )
          throw err
        }
      }),
    )
  }

  /**
   * Tries one member declared dead, at random: dial its last known addresses and
   * sync. A member that really died costs a failed dial; one that was only cut
   * off (a healed split) merges both views at once, and gossip does the rest.
   */
  private async reconnectOne(): Promise<void> {
    const now = Date.now()
    for (const [id, { since }] of this.failed)
      if (now - since > this.timers.reconnectTimeout) this.failed.delete(id)
    const [entry] = pickRandom([...this.failed], 1)
    if (entry == null) return
    const [id, { addrs, since }] = entry
    const current = this.table?.get(id)
    if (current != null && current.state !== 'dead') {
      this.failed.delete(id)
      return
    }
    try {
      const peer = peerIdFromString(id)
      this.dropStaleConnections(id, since)
      const targets = addrs.map((addr) => {
        const ma = multiaddr(addr)
        return ma.getPeerId() == null ? ma.encapsulate(`/p2p/${id}`) : ma
      })
      await this.network.dial(targets, { signal: AbortSignal.timeout(this.timers.connectTimeout * 2) })
      // A sync just tried (and failed) while it was away must not hold this one back.
      this.lastSync.delete(id)
      await this.syncWith(peer)
    } catch (err) {
      this.log.debug('a dead member is still unreachable', { member: id, error: messageOf(err) })
    }
  }

  /**
   * A connection opened before the member was declared dead is not to be trusted:
   * after a split it is a TCP connection whose packets were lost, and whose
   * retransmissions back off exponentially (the next one comes about as long after
   * the heal as the cut lasted, up to minutes). A dial would hand it back, so drop
   * it; a connection opened since (the member dialled us after the heal) is fine.
   */
  private dropStaleConnections(id: string, deadSince: number): void {
    for (const connection of this.network.getConnections(peerIdFromString(id)))
      if (connection.timeline.open <= deadSince)
        connection.abort(new Error('member declared dead: its connection is stale, dialling afresh'))
  }

  /**
   * Anti-entropy with one member: one this node is connected to (its ring neighbours
   * and gossip mesh make a random, well-mixed graph), so syncs open no connections;
   * any member when there is none.
   */
  private async syncRandom(): Promise<void> {
    const table = this.view()
    const connected = new Set(this.network.getConnections().map((c) => c.remotePeer.toString()))
    const alive = table.others('alive')
    const near = alive.filter((m) => connected.has(m.id))
    const [peer] = pickRandom(near.length > 0 ? near : alive, 1)
    if (peer != null) await this.syncWith(peerIdFromString(peer.id))
  }

  /**
   * Anti-entropy with one peer: a delta sync (sync-exchange.ts: digests first, then
   * only the records that differ, both ways); a peer from before the delta sync gets
   * the full-view push/pull it speaks.
   */
  private async syncWith(peer: PeerId): Promise<void> {
    const key = peer.toString()
    if (this.syncing.has(key) || !this.running) return
    // At most one exchange with a peer per few probe intervals, whatever triggers it.
    if (performance.now() - (this.lastSync.get(key) ?? -Infinity) < this.timers.probeInterval * 4) return
    this.lastSync.set(key, performance.now())
    this.syncing.add(key)
    this.budget.touch(key)
    const merge = (records: MemberRecord[]) => this.merge(records, key)
    try {
      try {
        await exchange(this.network, peer, this.protocols.deltaSync, this.limits(10_000), (ch) =>
          pullPush(ch, this.view(), merge),
        )
      } catch (err) {
        if (!(err instanceof Error && err.name === 'UnsupportedProtocolError')) throw err
        await this.fullSyncWith(peer, merge)
      }
      this.counters.syncs++
    } catch (err) {
      const level = err instanceof FrameError ? 'warn' : 'debug'
      this.log[level]('state sync failed', { peer: key, error: messageOf(err) })
    } finally {
      this.syncing.delete(key)
    }
  }

  /** The sync of agents from before the delta sync: digests, then whole views both ways. */
  private async fullSyncWith(peer: PeerId, merge: (records: MemberRecord[]) => void): Promise<void> {
    await exchange(this.network, peer, this.protocols.sync, this.limits(10_000), async (ch) => {
      await ch.write(encode({ v: WIRE_VERSION, digest: this.view().digest(), members: null }))
      const answer = decodeSync(await ch.read())
      if (answer.members == null) return
      merge(answer.members)
      await ch.write(
        encode({ v: WIRE_VERSION, digest: this.view().digest(), members: this.view().records() }),
      )
    })
  }

  private async answerDeltaSync(ch: Channel, from: PeerId): Promise<void> {
    this.budget.touch(from.toString())
    await answerPullPush(ch, this.view(), (records) => this.merge(records, from.toString()))
    this.counters.syncs++
  }

  private async answerSync(ch: Channel, from: PeerId): Promise<void> {
    this.budget.touch(from.toString())
    const opening = decodeSync(await ch.read())
    const digest = this.view().digest()
    if (opening.digest === digest) {
      await ch.write(encode({ v: WIRE_VERSION, digest, members: null }))
      return
    }
    await ch.write(encode({ v: WIRE_VERSION, digest, members: this.view().records() }))
    const theirs = decodeSync(await ch.read())
    if (theirs.members != null) this.merge(theirs.members, from.toString())
    this.counters.syncs++
  }

  /**
   * Merges records from a sync. A little news is passed on by gossip, since only we
   * learned it; a lot means this node was the one behind (a joiner, one side of a
   * healed split), and re-publishing it would flood everyone with what they know.
   */
  private merge(records: MemberRecord[], from: string): void {
    const news = this.applyAll(records.flatMap((record) => claimsOfRecord(record, from)))
    if (news.length <= NEWS_FROM_SYNC_MAX) this.broadcast(news, true)
  }
}

/** ms between two publications of this node's record for metadata changes (announceSelf). */
const METADATA_ANNOUNCE_GAP_MS = 100

export interface MetadataUpdateOptions {
  /**
   * Push the keys of reach `watchers` to the watchers now, not after the usual
   * coalescing gap: a component taken out of rotation (a drain, a version a verdict
   * condemned) must reach the load balancers before more requests go to it.
   */
  urgent?: boolean
}

/** Most claims a sync may bring for them to be passed on by gossip (see merge). */
const NEWS_FROM_SYNC_MAX = 32

/** Streams that every connection carries for its whole life: they do not make it busy. */
const BACKGROUND_PROTOCOLS = ['/meshsub/', '/floodsub/', '/ipfs/id/', '/ipfs/ping/', '/libp2p/autonat/']

/** +-10% so that nodes started together do not sync in lockstep. */
function jitter(ms: number): number {
  return ms * (0.9 + Math.random() * 0.2)
}

/** A direct probe: answered, refused by the target's host (nothing listens: the process is gone), or no answer. */
type ProbeOutcome = 'ack' | 'refused' | 'failed'

/** True when a dial failed because the target's host refused the connection (ECONNREFUSED), however libp2p wrapped it. */
function connectionRefused(err: unknown, depth = 0): boolean {
  if (err == null || typeof err !== 'object' || depth > 4) return false
  const { code, cause, errors } = err as { code?: unknown; cause?: unknown; errors?: unknown }
  if (code === 'ECONNREFUSED') return true
  if (connectionRefused(cause, depth + 1)) return true
  return Array.isArray(errors) && errors.some((e) => connectionRefused(e, depth + 1))
}
