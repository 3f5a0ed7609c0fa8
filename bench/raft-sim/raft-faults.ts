/**
 * The faults both simulations inflict on the Raft processes and the network
 * between them: partitions of every shape (symmetric, one-way, non-transitive,
 * around the leader), loss, duplication and reordering, process pauses,
 * crashes that lose unsynced writes, power losses, leadership transfers. Each
 * ends by itself, at the end of the fault window at the latest; healAll ends
 * them all at once.
 */
import { intBetween, pick, type Random } from '../random.js'
import type { EventQueue } from './event-queue.js'
import { CALM, type NetworkConditions, type SimNetwork } from './network.js'
import type { AnyRaftProcess } from './raft-process.js'

export type RaftFaultKind =
  | 'partition'
  | 'one-way'
  | 'non-transitive'
  | 'isolate-leader'
  | 'leader-link'
  | 'loss'
  | 'duplicate'
  | 'reorder'
  | 'pause'
  | 'crash'
  | 'power-loss'
  | 'transfer'

export interface RaftFaultsInit<Process extends AnyRaftProcess> {
  readonly queue: EventQueue
  readonly random: Random
  readonly network: SimNetwork
  readonly processes: readonly Process[]
  /** Every fault ends by this time, ms. */
  readonly faultMs: number
  /** Chance that a fault aimed at one process picks the leader (when there is one). */
  readonly leaderBias: number
  /** Called with a line for each pause, crash and restart. */
  readonly trace?: ((line: string) => void) | null
}

export class RaftFaults<Process extends AnyRaftProcess> {
  /** Leadership transfers the leader accepted. */
  transfers = 0
  private readonly ids: readonly string[]
  /** Network conditions in force, by how many faults set them (the last one to end restores CALM). */
  private readonly conditionsActive: Partial<Record<keyof NetworkConditions, number>> = {}

  constructor(private readonly init: RaftFaultsInit<Process>) {
    this.ids = init.processes.map((p) => p.id)
  }

  leader(): Process | undefined {
    return this.init.processes.find((p) => p.alive && p.raft.status().role === 'leader')
  }

  /** When a fault that lasts `ms` from now ends: within the fault window. */
  until(ms: number): number {
    return Math.min(this.init.queue.now + ms, this.init.faultMs)
  }

  inject(kind: RaftFaultKind, duration: number): void {
    const { queue, random, processes } = this.init
    const ids = this.ids
    const trace = this.init.trace
    switch (kind) {
      case 'partition': {
        const side = new Set(ids.filter(() => random() < 0.5))
        const pairs: Array<readonly [string, string]> = []
        for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) pairs.push([a, b])
        this.cutFor(pairs, duration)
        return
      }
      case 'one-way': {
        const pairs: Array<readonly [string, string]> = []
        for (const a of ids) for (const b of ids) if (a !== b && random() < 0.3) pairs.push([a, b])
        this.cutFor(pairs, duration)
        return
      }
      case 'non-transitive': {
        const a = pick(random, ids)
        const b = pick(
          random,
          ids.filter((x) => x !== a),
        )
        this.cutFor(
          [
            [a, b],
            [b, a],
          ],
          duration,
        )
        return
      }
      case 'isolate-leader': {
        const victim = this.leaderOrAny().id
        const way = random()
        const pairs: Array<readonly [string, string]> = []
        for (const other of ids) {
          if (other === victim) continue
          if (way < 0.8) pairs.push([victim, other])
          if (way < 0.6 || way >= 0.8) pairs.push([other, victim])
        }
        this.cutFor(pairs, duration)
        return
      }
      case 'leader-link': {
        // One follower loses the leader but keeps everyone else: it will campaign, and the
        // others' stickiness (and the leader's lease) are what stands in its way.
        const leader = this.leader()
        if (leader === undefined) return
        const other = pick(
          random,
          ids.filter((id) => id !== leader.id),
        )
        const way = random()
        const pairs: Array<readonly [string, string]> = []
        if (way < 0.7) pairs.push([leader.id, other])
        if (way >= 0.4) pairs.push([other, leader.id])
        this.cutFor(pairs, duration)
        return
      }
      case 'loss':
        this.condition('loss', 0.05 + random() * 0.35, duration)
        return
      case 'duplicate':
        this.condition('duplicate', 0.05 + random() * 0.25, duration)
        return
      case 'reorder':
        this.condition('reorder', 0.1 + random() * 0.3, duration)
        this.condition('reorderDelayMax', 50 + random() * 400, duration)
        return
      case 'pause': {
        const victim = this.leaderOrAny()
        victim.pause()
        trace?.(`  pause ${victim.id}`)
        queue.schedule(this.until(100 + random() * 4000), () => victim.resume())
        return
      }
      case 'crash': {
        this.crashFor(this.leaderOrAny(), 50, 4000)
        return
      }
      case 'power-loss': {
        // Several processes die at once (a rack loses power): what they had not synced is gone on all of them.
        const everyone = random() < 0.3
        const victims = processes.filter(() => everyone || random() < 0.6)
        const back = 50 + random() * 3000
        for (const victim of victims) this.crashFor(victim, back, 200)
        return
      }
      case 'transfer': {
        const leader = this.leader()
        if (leader === undefined) return
        const voters = leader.raft.status().config.voters.filter((v) => v !== leader.id)
        if (voters.length === 0) return
        if (leader.act((r) => r.transferLeadership(pick(random, voters)))) this.transfers++
        return
      }
    }
  }

  /** Every fault ends and every process runs again. */
  healAll(): void {
    this.init.network.healAll()
    for (const process of this.init.processes) {
      process.resume()
      process.restart()
    }
  }

  private leaderOrAny(): Process {
    const leader = this.leader()
    return leader !== undefined && this.init.random() < this.init.leaderBias
      ? leader
      : pick(this.init.random, this.init.processes)
  }

  /** The process dies keeping a random part of its unsynced writes, and restarts `minMs` to `minMs + spreadMs` later. */
  private crashFor(victim: Process, minMs: number, spreadMs: number): void {
    const { queue, random, trace } = this.init
    victim.crash(intBetween(random, 0, victim.disk.unsynced))
    trace?.(`  crash ${victim.id}`)
    queue.schedule(this.until(minMs + random() * spreadMs), () => {
      trace?.(`  restart ${victim.id}`)
      victim.restart()
    })
  }

  private cutFor(pairs: Array<readonly [string, string]>, ms: number): void {
    const { queue, network } = this.init
    for (const [a, b] of pairs) network.cut(a, b)
    queue.schedule(this.until(ms), () => {
      for (const [a, b] of pairs) network.heal(a, b)
    })
  }

  private condition(key: keyof NetworkConditions, value: number, ms: number): void {
    const { queue, network } = this.init
    const active = this.conditionsActive
    network.conditions[key] = value
    active[key] = (active[key] ?? 0) + 1
    queue.schedule(this.until(ms), () => {
      active[key] = (active[key] ?? 1) - 1
      if (active[key] === 0) network.conditions[key] = CALM[key]
    })
  }
}
