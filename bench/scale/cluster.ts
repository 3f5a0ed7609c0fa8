/**
 * A simulated cluster: the real `Membership` (src/membership) on every node of a
 * simulated network (network.ts) under a virtual clock (clock.ts). Peer ids are
 * real Ed25519 ids from seeded keys, and Math.random is seeded while the cluster
 * runs, so a run is repeatable for a given seed.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MEMBER_METADATA } from '../../src/bootstrap/index.js'
import {
  createMembership,
  type Member,
  type MemberMetadata,
  type MemberState,
  type Membership,
  type MembershipTimers,
} from '../../src/membership/index.js'
import { type Logger, silentLogger } from '../../src/shared/logger.js'
import { presetTimers, type TimerPreset } from '../../src/shared/presets.js'
import { mulberry32 } from '../random.js'
import { memoryIncarnations } from '../util.js'
import { VirtualClock } from './clock.js'
import { DEFAULT_COSTS, type WireCosts } from './costs.js'
import { type SimNode, SimWorld, type WorldInit } from './network.js'

export interface SimClusterInit {
  seed?: number
  cluster?: string
  preset?: TimerPreset
  timers?: Partial<MembershipTimers>
  costs?: WireCosts
  latencyMinMs?: number
  latencyMaxMs?: number
  loss?: number
  maxConnections?: number
  gossip?: WorldInit['gossip']
  interested?: WorldInit['interested']
  onFlood?: WorldInit['onFlood']
  /** Metadata each member announces (default: an idle agent's, about 120 B). */
  meta?: (index: number, id: string) => MemberMetadata
  /** The logger each member's Membership gets (default: silent); `index` is the member's place in `members`. */
  logger?: (index: number, node: SimNode) => Logger
}

export interface Accusation {
  event: 'suspect' | 'dead'
  observer: number
  target: string
  /** Virtual ms. */
  at: number
}

/** One member: its simulated node, its real Membership, and a mirror of its view's states. */
export class SimMember {
  /** Member id -> state, kept from the view's events (counting members() would sort the view each time). */
  readonly states = new Map<string, MemberState>()
  alive = 1
  stopped = false
  /** member:update events about other members (metadata changes, refutations). */
  updates = 0

  constructor(
    readonly index: number,
    readonly node: SimNode,
    readonly membership: Membership,
  ) {
    this.states.set(node.id, 'alive')
  }

  /** Drops the reference to the Membership (for measuring its heap). */
  forget(): void {
    Reflect.deleteProperty(this, 'membership')
  }

  get id(): string {
    return this.node.id
  }

  get addr(): string {
    return this.node.addr.toString()
  }

  stateOf(id: string): MemberState | undefined {
    return this.states.get(id)
  }

  track(member: Member, state: MemberState | null): void {
    const before = this.states.get(member.id)
    if (before === 'alive') this.alive--
    if (state == null) this.states.delete(member.id)
    else {
      this.states.set(member.id, state)
      if (state === 'alive') this.alive++
    }
  }
}

/** An idle agent's metadata (measured: dists, fetching and the cluster-state head), about 120 bytes. */
export function agentMeta(_index: number, manager: string): MemberMetadata {
  return { dists: {}, fetching: [], cluster: { term: 1, seq: 1, manager } }
}

export class SimCluster {
  readonly clock = new VirtualClock()
  readonly world: SimWorld
  readonly members: SimMember[] = []
  readonly accusations: Accusation[] = []
  /** Called on every suspect or dead event (for counting false ones as they happen). */
  onAccusation: ((accusation: Accusation) => void) | undefined
  /** Called for each member added, before its Membership starts. */
  onMemberAdded: ((member: SimMember) => void) | undefined
  private readonly random: () => number
  private readonly seed: number
  private uninstall: (() => void) | undefined
  private realRandom: (() => number) | undefined

  constructor(private readonly init: SimClusterInit = {}) {
    this.seed = init.seed ?? 1
    this.random = mulberry32(this.seed)
    this.world = new SimWorld({
      clock: this.clock,
      costs: init.costs ?? DEFAULT_COSTS,
      random: mulberry32(this.seed ^ 0x5bd1e995),
      latencyMinMs: init.latencyMinMs ?? 1,
      latencyMaxMs: init.latencyMaxMs ?? 5,
      loss: init.loss ?? 0,
      maxConnections: init.maxConnections ?? 400,
      ...(init.gossip == null ? {} : { gossip: init.gossip }),
      ...(init.interested == null ? {} : { interested: init.interested }),
      ...(init.onFlood == null ? {} : { onFlood: init.onFlood }),
    })
  }

  /** The peer id of simulated node `index` (seeded: the same in every run). */
  async peerIdFor(index: number): Promise<PeerId> {
    const seed = new Uint8Array(32)
    new DataView(seed.buffer).setUint32(0, this.seed)
    new DataView(seed.buffer).setUint32(4, index)
    return peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed))
  }

  /**
   * The heap the members' Membership objects hold (views, maps, timers): every
   * Membership is stopped and dropped, and the difference in heap after a full GC
   * is theirs. Ends the run: call last. Null without --expose-gc.
   */
  async membershipHeapBytes(members: SimMember[] = this.members): Promise<number | null> {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc == null) return null
    for (const m of this.members) m.states.clear()
    gc()
    const before = process.memoryUsage().heapUsed
    for (const m of members) {
      m.stopped = true
      await m.membership.stop()
      m.forget()
    }
    // Timers the memberships left (aborted probes' deadlines, broadcast repeats) run out.
    await this.run(15_000)
    this.clock.compact()
    gc()
    return before - process.memoryUsage().heapUsed
  }

  get now(): number {
    return this.clock.now
  }

  get cluster(): string {
    return this.init.cluster ?? 'sim'
  }

  /** Installs the virtual clock and the seeded Math.random (call before start, undo with `close`). */
  install(): void {
    if (this.uninstall != null) return
    this.uninstall = this.clock.install()
    this.realRandom = Math.random
    Math.random = this.random
  }

  /** Starts one member; `bootstrap` as the agent's --bootstrap. */
  async add(bootstrap: string[] = []): Promise<SimMember> {
    return this.addAt(this.members.length, bootstrap)
  }

  /** Starts a member on simulated node `index` (its peer id follows from the seed and the index). */
  async addAt(index: number, bootstrap: string[] = []): Promise<SimMember> {
    const node = this.world.addNode(await this.peerIdFor(index))
    // Timers the node and its member make are theirs (a stall holds them: clock.ts).
    this.clock.runAs(node, () => node.start())
    const cluster = this.init.cluster ?? 'sim'
    const manager = this.members[0]?.id ?? node.id
    const membership = createMembership(
      {
        cluster,
        timers: { ...presetTimers(this.init.preset ?? 'lan').membership, ...this.init.timers },
        bootstrap,
        meta: (this.init.meta ?? agentMeta)(index, manager),
        contract: MEMBER_METADATA,
      },
      {
        network: node.asNetwork(),
        store: memoryIncarnations(),
        logger: this.init.logger?.(this.members.length, node) ?? silentLogger,
      },
    )
    const member = new SimMember(this.members.length, node, membership)
    const track = (state: MemberState | null) => (m: Member) => member.track(m, state)
    membership.events.on('member:join', track('alive'))
    membership.events.on('member:update', (m) => {
      member.track(m, m.state)
      if (!m.self) member.updates++
    })
    membership.events.on('member:suspect', track('suspect'))
    membership.events.on('member:dead', track('dead'))
    membership.events.on('member:leave', track('left'))
    membership.events.on('member:reap', track(null))
    for (const event of ['suspect', 'dead'] as const) {
      membership.events.on(`member:${event}`, (m) => {
        const accusation = { event, observer: member.index, target: m.id, at: this.clock.now }
        this.accusations.push(accusation)
        this.onAccusation?.(accusation)
      })
    }
    this.members.push(member)
    this.onMemberAdded?.(member)
    await this.clock.runAs(node, () => membership.start())
    return member
  }

  /** Stops a member without a leave: its peers see a crash. */
  async crash(member: SimMember): Promise<void> {
    member.stopped = true
    member.node.crash()
    await member.membership.stop()
  }

  running(): SimMember[] {
    return this.members.filter((m) => !m.stopped)
  }

  /** Runs the simulation for `ms` virtual ms. */
  run(ms: number): Promise<void> {
    return this.clock.runUntil(this.clock.now + ms)
  }

  /**
   * Runs until `done()` holds, checking every `everyMs` virtual ms; the virtual ms
   * it took, or null after `capMs`.
   */
  async until(done: () => boolean, { capMs = 60_000, everyMs = 10 } = {}): Promise<number | null> {
    const since = this.clock.now
    while (!done()) {
      if (this.clock.now - since >= capMs) return null
      await this.run(everyMs)
    }
    return this.clock.now - since
  }

  async close(): Promise<void> {
    for (const member of this.members) {
      if (!member.stopped && member.membership != null) {
        member.stopped = true
        member.node.crash()
        await member.membership.stop()
      }
    }
    await this.clock.settle()
    this.uninstall?.()
    this.uninstall = undefined
    if (this.realRandom != null) Math.random = this.realRandom
  }
}
