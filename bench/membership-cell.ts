/**
 * A cell of the membership benchmark: the agents that share one event loop. The
 * main thread drives a cell directly (`--workers 1`) or through a worker thread
 * (membership-worker.ts), always with plain, cloneable arguments and results.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { Agent, MEMBER_METADATA } from '../src/bootstrap/index.js'
import { createNode } from '../src/bootstrap/libp2p-node.js'
import type { WireTraffic } from '../src/bootstrap/wire-meter.js'
import { createMembership, type Member, type MemberState, type Membership } from '../src/membership/index.js'
import { createLogger } from '../src/shared/logger.js'
import { presetTimers, type TimerPreset } from '../src/shared/presets.js'
import { VERSION } from '../src/shared/version.js'
import { loopDelay, memoryIncarnations, TempDirs } from './util.js'

const logger = createLogger({ level: 'error' })

export interface CellAgent {
  index: number
  id: string
  addrs: string[]
}

/** Alive counts for every agent or the listed indexes (counting sorts each view: not free); the watched member's state for all. */
export interface ViewQuery {
  alive: 'all' | number[]
  watch?: string
}

/** One agent's view: how many members it lists alive, and what it thinks of the watched member. */
export interface ViewSample {
  index: number
  alive: number | null
  watched: MemberState | null
}

export interface TrafficSample {
  index: number
  sentBytes: number
  receivedBytes: number
  connections: number
}

/** A suspect/dead event as an agent emitted it; `at` is epoch ms (comparable across threads). */
export interface RawAccusation {
  event: 'suspect' | 'dead'
  observer: number
  target: string
  at: number
}

export interface Delay {
  p99Ms: number
  maxMs: number
}

export type Stats = Record<string, number>

/** The calls a cell answers; every argument and result survives structured cloning. */
export interface CellApi {
  start(index: number, cluster: string, bootstrap: string[]): Promise<CellAgent>
  /** Stops one agent without a leave announcement: peers see a crash. */
  stop(index: number): Promise<void>
  views(query: ViewQuery): ViewSample[]
  traffic(): TrafficSample[]
  /** Membership stats summed over this cell's running agents (health: max). */
  stats(): Stats
  loopBegin(): void
  loopEnd(): Delay | null
  stopAll(): Promise<void>
}

export type CellMethod = keyof CellApi

/** Main thread to worker: call `method` on the worker's cell. */
export interface CellRequest {
  id: number
  method: CellMethod
  args: unknown[]
}

/** Worker to main thread: a call's outcome, or an accusation as it happens. */
export type CellMessage =
  | { kind: 'reply'; id: number; result?: unknown; error?: string }
  | { kind: 'accusation'; accusation: RawAccusation }

/**
 * What the benchmark runs per member: a whole agent (API, state, manager, runtime), or
 * only what membership and gossip need (the libp2p node as agents build it, and
 * Membership): a lighter member, so that more of them fit on the machine's cores.
 */
export type CellKind = 'agent' | 'membership'

/** The parts of a running member the cell reads. */
interface Runner {
  id: string
  membership: Membership
  node: Pick<Libp2p, 'getConnections'>
  wireTraffic(): WireTraffic
  stop(options: { leave: boolean }): Promise<void>
}

export class AgentCell implements CellApi {
  private readonly agents = new Map<number, Runner>()
  private readonly dirs = new TempDirs()
  private endLoop: (() => Delay) | undefined

  constructor(
    private readonly accused: (accusation: RawAccusation) => void,
    private readonly kind: CellKind = 'agent',
    private readonly preset: TimerPreset = 'lan',
  ) {}

  async start(index: number, cluster: string, bootstrap: string[]): Promise<CellAgent> {
    const agent =
      this.kind === 'agent'
        ? await this.startAgent(cluster, bootstrap)
        : await startMember(cluster, bootstrap, this.preset)
    this.agents.set(index, agent)
    const accuse = (event: RawAccusation['event']) => (member: Member) =>
      this.accused({
        event,
        observer: index,
        target: member.id,
        at: performance.timeOrigin + performance.now(),
      })
    agent.membership.events.on('member:suspect', accuse('suspect'))
    agent.membership.events.on('member:dead', accuse('dead'))
    return { index, id: agent.id, addrs: agent.membership.self.addrs }
  }

  private async startAgent(cluster: string, bootstrap: string[]): Promise<Runner> {
    return await Agent.start(
      {
        cluster,
        dataDir: await this.dirs.make('shoal-bench-'),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        api: '127.0.0.1:0',
        bootstrap,
        mdns: false,
        preset: this.preset,
      },
      logger,
    )
  }

  async stop(index: number): Promise<void> {
    const agent = this.agents.get(index)
    this.agents.delete(index)
    await agent?.stop({ leave: false })
  }

  views({ alive, watch }: ViewQuery): ViewSample[] {
    const count = (index: number) => alive === 'all' || alive.includes(index)
    return [...this.agents].map(([index, agent]) => ({
      index,
      alive: count(index) ? agent.membership.members().filter((m) => m.state === 'alive').length : null,
      watched: watch == null ? null : (agent.membership.get(watch)?.state ?? null),
    }))
  }

  traffic(): TrafficSample[] {
    return [...this.agents].map(([index, agent]) => ({
      index,
      ...agent.wireTraffic(),
      connections: agent.node.getConnections().length,
    }))
  }

  stats(): Stats {
    return mergeStats([...this.agents.values()].map((agent) => ({ ...agent.membership.stats() })))
  }

  loopBegin(): void {
    this.endLoop = loopDelay()
  }

  loopEnd(): Delay | null {
    const end = this.endLoop
    this.endLoop = undefined
    return end?.() ?? null
  }

  async stopAll(): Promise<void> {
    const agents = [...this.agents.values()]
    this.agents.clear()
    await Promise.all(agents.map((agent) => agent.stop({ leave: false }).catch(() => {})))
    await this.dirs.removeAll()
  }
}

/** A member without the agent around it: the libp2p node as agents assemble it, and Membership (incarnation kept in memory). */
async function startMember(cluster: string, bootstrap: string[], preset: TimerPreset): Promise<Runner> {
  const traffic: WireTraffic = { sentBytes: 0, receivedBytes: 0 }
  const timers = presetTimers(preset)
  const node = await createNode(
    {
      cluster,
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap,
      secret: null,
      mdns: false,
      mdnsIntervalMs: timers.mdns.intervalMs,
      traffic,
      version: VERSION,
    },
    logger,
  )
  await node.start()
  const membership = createMembership(
    { cluster, timers: timers.membership, bootstrap, contract: MEMBER_METADATA },
    { network: node, store: memoryIncarnations(), logger },
  )
  await membership.start()
  return {
    id: node.peerId.toString(),
    membership,
    node,
    wireTraffic: () => ({ ...traffic }),
    async stop({ leave }) {
      if (leave) await membership.leave()
      await membership.stop()
      await node.stop()
    },
  }
}

/** Sums stats (health: the worst, i.e. max); associative, so cells merge the same way. */
export function mergeStats(parts: Stats[]): Stats {
  const total: Stats = {}
  for (const part of parts) {
    for (const [key, value] of Object.entries(part)) {
      total[key] = key === 'health' ? Math.max(total[key] ?? 0, value) : (total[key] ?? 0) + value
    }
  }
  return total
}
