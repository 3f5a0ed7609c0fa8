/**
 * 10,000 members on one machine: a documented reduction of the simulation.
 *
 * Every member holds a view of every other (N^2 entries in all: at ~1 KB each,
 * 100 GB at N = 10,000), so not every member can run the real code. Here `full`
 * members run the real `Membership` (src/membership) with complete 10,000-entry
 * views; the others are light members that speak the same wire format on the same
 * simulated network but keep no view of their own:
 * - they probe a random member every probe interval (ping, then ping-req through
 *   3 others, with the same deadlines), publish a `suspect` claim when all fail,
 *   and probe a member at once when its connection drops (as Membership does);
 *   an exchange with a member that is up is charged (calibrated bytes, a real
 *   dial) rather than run, so only failures take the real stream path;
 * - they answer ping, ping-req, claims and state syncs (with the true records of
 *   every member, encoded once per change), sync with a random member every sync
 *   interval (charged between two light members, whose digests are equal; run
 *   with a full member), re-publish a member's record when it first syncs with
 *   them, and refute suspicions of themselves with a higher incarnation;
 * - they never declare anyone dead (the full members' suspicion timers do), never
 *   try dead members again, and read gossip only for claims about themselves.
 * Gossip runs in flood mode (network.ts): each message's spread over the mesh is
 * computed at once, every copy counted, delivered to the full members only.
 *
 * The light members join over `joinWindowS` (a rolling start), each through a
 * random member already in; then the same phases as the other sizes, measured at
 * the full members: steady traffic, a late joiner (a full member), a crash (a
 * light member), false suspicions, and the heap of a 10,000-entry view.
 */
import { createHash } from 'node:crypto'
import type { PeerId } from '@libp2p/interface'
import {
  type MemberRecord,
  type MembershipProtocols,
  membershipProtocols,
} from '../../src/membership/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { type Channel, exchange, serve } from '../../src/shared/stream-rpc.js'
import { agentMeta, SimCluster, type SimMember } from './cluster.js'
import { exchangeBytes } from './costs.js'
import { CATEGORIES, type Category, type SimNode } from './network.js'
import type { SimMessage } from './pubsub.js'
import type { ScenarioOptions } from './scenario.js'

const PROBE_INTERVAL_MS = 500
const PROBE_TIMEOUT_MS = 300
const CONNECT_TIMEOUT_MS = 1_000
const INDIRECT_CHECKS = 3
const SYNC_INTERVAL_MS = 15_000
const REAP_MS = 60_000
const MAX_BYTES = 4 * 1024 * 1024
/** The truth's digest and encoded records are recomputed at most this often (virtual ms). */
const TRUTH_REFRESH_MS = 250
const STEADY_FROM_S = 180
const STEADY_WINDOW_S = 30
const PHASE_CAP_MS = 60_000
/** {"t":"ping"}, {"t":"ack"} and a digest-only sync message, bytes. */
const PING_BYTES = 12
const ACK_BYTES = 11
const DIGEST_BYTES = 70

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
  /** From the last light member's start until every full member lists all N alive. */
  completeViewsAfterJoinsMs: number | null
  steady: {
    fromS: number
    windowS: number
    full: TrafficByKind
    light: TrafficByKind
    lostDialsPerNodePerSec: number
    suspectEventsPerSecAtFull: number
    refutationsPerSec: number
  } | null
  joinSeenByAllMs: number | null
  joinerCompleteMs: number | null
  killFirstSuspectMs: number | null
  killSuspectedByAllMs: number | null
  killDeadByAllMs: number | null
  /** Every member changes its metadata at once: until every full member has all updates; bytes per member. */
  wave: { everyUpdateEverywhereMs: number | null; sentBytesPerNode: number; windowMs: number } | null
  falsePositives: { suspect: number; dead: number }
  memory: { perFullMemberMB: number | null; perEntryB: number | null }
  recordBytes: number
  syncMessageBytes: number
  /** For the plots: the full members' sent bytes per second. */
  full: { idleSentBytesPerNodePerSec: number | null; steadySentBytesPerNodePerSec: number | null }
  stats: Record<string, number>
  network: Record<string, number>
  summary: Record<string, unknown>
  notes: string[]
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
  private cache: { at: number; digest: string; encoded: Uint8Array; count: number } | undefined
  private version = 0
  private cachedVersion = -1

  constructor(private readonly clock: { now: number }) {}

  changed(): void {
    this.version++
  }

  ids(): string[] {
    return [...this.light.keys(), ...this.full.keys()]
  }

  incarnationOf(id: string): number {
    return this.light.get(id)?.incarnation ?? this.full.get(id)?.membership.self.incarnation ?? 1
  }

  records(): MemberRecord[] {
    const out: MemberRecord[] = []
    for (const light of this.light.values()) out.push(light.record())
    for (const member of this.full.values()) {
      if (member.stopped) continue
      const { self: _s, since: _t, ...record } = member.membership.self
      out.push(record)
    }
    for (const record of this.crashed.values()) out.push(record)
    return out
  }

  /** The digest MemberTable.digest() would give for a view holding exactly these records. */
  get digest(): string {
    return this.current().digest
  }

  get encoded(): Uint8Array {
    return this.current().encoded
  }

  private current() {
    const now = this.clock.now
    if (this.cache != null && (this.cachedVersion === this.version || now - this.cache.at < TRUTH_REFRESH_MS))
      return this.cache
    const records = this.records()
    const lines = records.map((r) => `${r.id}:${r.incarnation}:${r.state}`).sort()
    const digest = createHash('sha256').update(lines.join('\n')).digest('base64url')
    const encoded = new TextEncoder().encode(JSON.stringify({ v: 1, digest, members: records }))
    this.cache = { at: now, digest, encoded, count: records.length }
    this.cachedVersion = this.version
    return this.cache
  }
}

/** A member that speaks the protocol without a view of its own (see the file comment). */
class LightMember {
  incarnation = 1
  private readonly abort = new AbortController()
  private readonly probing = new Set<string>()
  private readonly announced = new Set<string>()
  meta: Record<string, unknown>

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
    const limits = { timeoutMs: PROBE_TIMEOUT_MS * 9 * 3, maxBytes: MAX_BYTES }
    await serve(this.network, protocols.probe, limits, silentLogger, (ch) => this.answerProbe(ch))
    await serve(this.network, protocols.sync, { ...limits, timeoutMs: 10_000 }, silentLogger, (ch, conn) =>
      this.answerSync(ch, conn.remotePeer),
    )
    this.node.pubsub.subscribe(protocols.topic)
    this.node.addEventListener('peer:disconnect', (evt) => {
      const id = String(evt.detail)
      if (this.hybrid.probeable(id)) setTimeout(() => void this.probe(id), Math.random() * 50)
    })
    void this.loop(PROBE_INTERVAL_MS, Math.random() * PROBE_INTERVAL_MS, () => this.probeRandom())
    void this.loop(SYNC_INTERVAL_MS, Math.random() * SYNC_INTERVAL_MS, () => this.syncRandom())
    if (bootstrap != null) await this.sync(bootstrap.peerId).catch(() => {})
  }

  stop(): void {
    this.abort.abort()
  }

  /** Someone claimed we are suspect or dead: announce a higher incarnation. */
  refute(incarnation: number): void {
    if (this.abort.signal.aborted || incarnation <= this.incarnation) return
    this.incarnation = incarnation
    this.hybrid.truth.changed()
    this.hybrid.stats.refutations++
    this.publish(this.aliveClaim())
  }

  private claimFields() {
    return { id: this.id, incarnation: this.incarnation, addrs: [this.node.addr.toString()], meta: this.meta }
  }

  private get network() {
    return this.node as unknown as Parameters<typeof serve>[0]
  }

  private publish(...claims: object[]): void {
    const data = new TextEncoder().encode(JSON.stringify({ v: 1, claims }))
    this.node.pubsub.publish(this.hybrid.protocols.topic, data).catch(() => {})
  }

  private async loop(every: number, first: number, step: () => Promise<void>): Promise<void> {
    const { signal } = this.abort
    await sleep(first, signal)
    while (!signal.aborted) {
      const started = performance.now()
      await step().catch(() => {})
      await sleep(Math.max(0, every - (performance.now() - started)), signal)
    }
  }

  private probeRandom(): Promise<void> {
    const target = this.hybrid.randomMember(this.id)
    return target == null ? Promise.resolve() : this.probe(target)
  }

  /** SWIM's probe as Membership does it: direct, then through 3 others, then suspect. */
  private async probe(target: string): Promise<void> {
    if (this.probing.has(target) || this.abort.signal.aborted) return
    this.probing.add(target)
    try {
      this.hybrid.stats.lightProbes++
      if (await this.quickPing(target)) return
      if (await this.ping(target)) return
      const helpers: string[] = []
      for (let i = 0; i < INDIRECT_CHECKS * 3 && helpers.length < INDIRECT_CHECKS; i++) {
        const helper = this.hybrid.randomMember(this.id)
        if (helper != null && helper !== target && !helpers.includes(helper)) helpers.push(helper)
      }
      const answers = await Promise.all(helpers.map((helper) => this.pingThrough(helper, target)))
      if (answers.includes(true) || this.abort.signal.aborted || !this.hybrid.probeable(target)) return
      this.hybrid.stats.lightSuspicions++
      this.publish({
        kind: 'suspect',
        id: target,
        incarnation: this.hybrid.truth.incarnationOf(target),
        from: this.id,
      })
    } finally {
      this.probing.delete(target)
    }
  }

  /**
   * A ping to a member that is up, charged instead of run: the dial is real (it
   * makes the connection, or fails on the limit), the exchange's bytes are
   * counted with the calibrated costs (costs.ts). False sends the caller down the
   * real path (a crashed target, a refused dial).
   */
  private async quickPing(target: string): Promise<boolean> {
    const remote = this.hybrid.nodeOf(target)
    if (remote == null || !remote.up) return false
    try {
      await this.node.dial(remote.peerId)
    } catch {
      return false
    }
    this.hybrid.chargeExchange(this.node, remote, 'probe', PING_BYTES, ACK_BYTES)
    return true
  }

  async ping(target: string): Promise<boolean> {
    const peer = this.hybrid.peerOf(target)
    if (peer == null) return false
    const connected = this.node.connections.has(target)
    const timeoutMs = PROBE_TIMEOUT_MS + (connected ? 0 : CONNECT_TIMEOUT_MS)
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
      return true
    } catch {
      return false
    }
  }

  private async pingThrough(helper: string, target: string): Promise<boolean> {
    const peer = this.hybrid.peerOf(helper)
    if (peer == null) return false
    const timeoutMs = PROBE_TIMEOUT_MS * 2 + CONNECT_TIMEOUT_MS * 2
    const addrs = [this.hybrid.addrOf(target)]
    try {
      return await exchange(
        this.network,
        peer,
        this.hybrid.protocols.probe,
        { timeoutMs, maxBytes: MAX_BYTES },
        async (ch) => {
          await ch.write(encode({ t: 'ping-req', target, addrs }))
          return (JSON.parse(new TextDecoder().decode(await ch.read())) as { t: string }).t === 'ack'
        },
      )
    } catch {
      return false
    }
  }

  private async answerProbe(ch: Channel): Promise<void> {
    const request = JSON.parse(new TextDecoder().decode(await ch.read())) as { t: string; target?: string }
    if (request.t === 'ping-req' && request.target != null) {
      const ok = (await this.quickPing(request.target)) || (await this.ping(request.target))
      await ch.write(encode({ t: ok ? 'ack' : 'nack' }))
      return
    }
    await ch.write(encode({ t: 'ack' }))
  }

  /** With another light member (same truth, same digest) the exchange is charged; with a full member it runs. */
  private async syncRandom(): Promise<void> {
    const target = this.hybrid.randomMember(this.id)
    const remote = target == null ? undefined : this.hybrid.nodeOf(target)
    if (remote == null || !remote.up) return
    if (this.hybrid.truth.light.has(remote.id)) {
      await this.node.dial(remote.peerId)
      this.hybrid.chargeExchange(this.node, remote, 'sync', DIGEST_BYTES, DIGEST_BYTES)
      return
    }
    await this.sync(remote.peerId)
  }

  /** Push/pull as Membership.syncWith: our digest; their records if they differ; then ours. */
  private async sync(peer: PeerId): Promise<void> {
    const truth = this.hybrid.truth
    await exchange(
      this.network,
      peer,
      this.hybrid.protocols.sync,
      { timeoutMs: 10_000, maxBytes: MAX_BYTES },
      async (ch) => {
        await ch.write(encode({ v: 1, digest: truth.digest, members: null }))
        const answer = await ch.read()
        // {"v":1,"digest":"...","members":null} is short; a full answer means the views differ.
        if (answer.byteLength < 120) return
        await ch.write(truth.encoded)
      },
    )
  }

  private async answerSync(ch: Channel, from: PeerId): Promise<void> {
    const truth = this.hybrid.truth
    const opening = JSON.parse(new TextDecoder().decode(await ch.read())) as { digest: string }
    if (opening.digest === truth.digest) {
      await ch.write(encode({ v: 1, digest: truth.digest, members: null }))
      return
    }
    await ch.write(truth.encoded)
    await ch.read()
    // A member that synced with us for the first time is news: pass its record on, as merge() does.
    const id = from.toString()
    if (this.announced.has(id) || this.hybrid.announced.has(id)) return
    const claim = this.hybrid.aliveClaimOf(id)
    if (claim == null) return
    this.announced.add(id)
    this.hybrid.announced.add(id)
    this.publish(claim)
  }

  /** A metadata change: a higher incarnation, announced. */
  updateMeta(meta: Record<string, unknown>): void {
    if (this.abort.signal.aborted) return
    this.meta = meta
    this.incarnation++
    this.hybrid.truth.changed()
    this.publish(this.aliveClaim())
  }

  aliveClaim(): object {
    return { kind: 'alive', ...this.claimFields() }
  }
}

/** The run: a SimCluster in flood mode, its full members, the light members and the truth. */
class Hybrid {
  readonly cluster: SimCluster
  readonly truth: Truth
  readonly protocols: MembershipProtocols
  readonly light: LightMember[] = []
  readonly announced = new Set<string>()
  private readonly peers = new Map<string, SimNode>()
  private readonly memberIds: string[] = []
  readonly stats = { lightProbes: 0, lightSuspicions: 0, refutations: 0 }

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
      onFlood: (message, _publisher, arrival) => this.onFlood(message, arrival),
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
    this.memberIds.push(node.id)
    this.truth.changed()
  }

  aliveClaimOf(id: string): object | undefined {
    const light = this.truth.light.get(id)
    if (light != null) return light.aliveClaim()
    const member = this.truth.full.get(id)
    if (member == null || member.stopped) return undefined
    const { id: _id, addrs, incarnation, meta } = member.membership.self
    return { kind: 'alive', id, incarnation, addrs, meta }
  }

  nodeOf(id: string): SimNode | undefined {
    return this.peers.get(id)
  }

  /** Counts one request/answer exchange's bytes on each side, as costs.ts frames it. */
  chargeExchange(from: SimNode, to: SimNode, category: Category, request: number, answer: number): void {
    const world = this.cluster.world
    const protocol = category === 'sync' ? this.protocols.sync : this.protocols.probe
    const { initiator, responder } = exchangeBytes(world.costs, protocol, request, answer)
    world.charge(from, to, category, initiator)
    world.charge(to, from, category, responder)
  }

  peerOf(id: string): PeerId | undefined {
    return this.peers.get(id)?.peerId
  }

  addrOf(id: string): string {
    return this.peers.get(id)?.addr.toString() ?? ''
  }

  probeable(id: string): boolean {
    return this.peers.has(id) && !this.truth.declared.has(id)
  }

  /** A random member (full or light, joined, not declared dead) other than `self`. */
  randomMember(self: string): string | undefined {
    for (let i = 0; i < 8; i++) {
      const id = this.memberIds[Math.floor(Math.random() * this.memberIds.length)]
      if (id != null && id !== self && !this.truth.declared.has(id)) return id
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
    this.cluster.clock.schedule(REAP_MS, () => {
      this.truth.crashed.delete(id)
      this.truth.changed()
    })
  }

  /** Claims about light members reach them here (refutation); dead and left claims stop probes. */
  private onFlood(message: SimMessage, arrival: (node: SimNode) => number | null): void {
    if (message.data.byteLength > 400_000) return
    let claims: Array<{ kind: string; id: string; incarnation: number }>
    try {
      claims = (JSON.parse(new TextDecoder().decode(message.data)) as { claims: typeof claims }).claims
    } catch {
      return
    }
    if (!Array.isArray(claims) || claims.length > 1024) return
    for (const claim of claims) {
      if (claim.kind === 'dead' || claim.kind === 'left') this.truth.declared.add(claim.id)
      if (claim.kind === 'dead') this.declaredDead(claim.id)
      if (claim.kind === 'alive') this.truth.declared.delete(claim.id)
      if (claim.kind !== 'suspect' && claim.kind !== 'dead') continue
      const light = this.truth.light.get(claim.id)
      if (light == null || claim.incarnation < light.incarnation) continue
      const at = arrival(light.node)
      if (at != null)
        this.cluster.clock.schedule(at - this.cluster.clock.now, () => light.refute(claim.incarnation + 1))
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
    // 1. The full members: one, then the rest through it (a small mass join).
    const first = await c.add()
    await c.run(100)
    for (let i = 1; i < full; i++) await c.add([first.addr])
    await c.until(() => c.members.every((m) => m.alive === full), { capMs: PHASE_CAP_MS })
    log(`N = ${n}: ${full} full members converged at ${c.now} ms (virtual), wall ${wall(wallStart)} s`)

    // 2. The light members: a rolling start over joinWindowS, each through a random member already in.
    const lightCount = n - full
    const gap = (joinWindowS * 1000) / lightCount
    const nodes = () => [...c.members.map((m) => m.node), ...h.light.map((l) => l.node)]
    let all = nodes()
    for (let i = 0; i < lightCount; i++) {
      if (i % 200 === 0) all = nodes()
      const bootstrap = all[Math.floor(Math.random() * all.length)]
      void h.addLight(full + i, bootstrap, first.id)
      await c.run(gap)
      if (i % 1000 === 999)
        log(`N = ${n}: ${i + 1} light members in at ${Math.round(c.now / 1000)} s, wall ${wall(wallStart)} s`)
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
    const before = [snapshot(fullNodes), snapshot(lightNodes)]
    await c.run(STEADY_WINDOW_S * 1000)
    const after = [snapshot(fullNodes), snapshot(lightNodes)]
    const traffic = (k: number, nodesOf: SimNode[]): TrafficByKind => {
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
      light: traffic(1, lightNodes),
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
    const boot = h.light[Math.floor(Math.random() * h.light.length)]!
    const joiner = await c.addAt(n + 1, [boot.node.addr.toString()])
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

    // 5. A crash of a light member: until every full member has it dead.
    const target = h.light[Math.floor(Math.random() * h.light.length)]!
    victim = { id: target.id, at: c.now }
    const killStart = c.now
    h.crashLight(target)
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

    // 6. A metadata wave: every member changes its metadata at once (a new cluster-state
    // head); until every full member has every other member's update.
    const running = c.running()
    const lights = h.light.filter((l) => l.node.up)
    const others = running.length + lights.length - 1
    const waveStart = c.now
    const sentBefore = sum(snapshot(running.map((m) => m.node))) + sum(snapshot(lights.map((l) => l.node)))
    const updatesBefore = new Map(running.map((m) => [m, m.updates]))
    const meta = { ...agentMeta(0, first.id), cluster: { term: 1, seq: 2, manager: first.id } }
    for (const m of running) void m.membership.updateMetadata(meta).catch(() => {})
    for (const l of lights) l.updateMeta(meta)
    const waveMs = await c.until(() => running.every((m) => m.updates - updatesBefore.get(m)! >= others), {
      capMs: PHASE_CAP_MS,
      everyMs: 50,
    })
    await c.run(2000)
    const sentAfter = sum(snapshot(running.map((m) => m.node))) + sum(snapshot(lights.map((l) => l.node)))
    result.wave = {
      everyUpdateEverywhereMs: waveMs,
      sentBytesPerNode: Math.round((sentAfter - sentBefore) / (running.length + lights.length)),
      windowMs: Math.round(c.now - waveStart),
    }
    log(
      `N = ${n}: metadata wave ${waveMs} ms, ${result.wave.sentBytesPerNode} B/node, wall ${wall(wallStart)} s`,
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
      lightSent: result.steady?.light.sentBytesPerNodePerSec,
      connections: result.steady?.full.meanConnections,
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
