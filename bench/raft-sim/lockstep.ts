/**
 * A lock-step cluster for unit tests: every Ready is carried out at once (write,
 * sync, send, apply, advance), messages wait in one queue until the test delivers
 * them, and a filter decides which get through. Time moves only when the test
 * ticks. Small enough to reason about one message at a time.
 */
import {
  genesisSnapshot,
  type Message,
  type NodeId,
  type RaftInit,
  RaftNode,
  type Ready,
} from '../../src/manager/raft/index.js'
import { mulberry32 } from '../random.js'
import { fakeSigner, fakeVerifier } from './keys.js'
import { ListStateMachine } from './state-machine.js'
import { SimDisk } from './storage.js'

export const CLUSTER = 'test-cluster'

export interface LockstepNode {
  readonly id: NodeId
  raft: RaftNode
  readonly disk: SimDisk
  machine: ListStateMachine
  alive: boolean
  /** Every entry applied, by index (what state machine safety compares). */
  appliedTerms: Map<number, number>
}

export interface LockstepOptions {
  /** The genesis voters; the other ids start as outsiders (learners are added by config changes). */
  readonly voters: readonly NodeId[]
  readonly learners?: readonly NodeId[]
  readonly others?: readonly NodeId[]
  readonly seed?: number
  readonly init?: Partial<Omit<RaftInit, 'id' | 'cluster' | 'signer' | 'verifier' | 'random'>>
  /** Compact every node's log once this many entries are applied past its snapshot. */
  readonly compactEvery?: number
}

export class LockstepCluster {
  readonly nodes = new Map<NodeId, LockstepNode>()
  queue: Message[] = []
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true
  readonly delivered: Message[] = []
  private readonly random: () => number
  private readonly genesis

  constructor(private readonly options: LockstepOptions) {
    this.random = mulberry32(options.seed ?? 1)
    this.genesis = genesisSnapshot(options.voters, options.learners ?? [])
    const ids = [...options.voters, ...(options.learners ?? []), ...(options.others ?? [])]
    for (const id of ids) {
      const disk = new SimDisk(this.genesis)
      const node: LockstepNode = {
        id,
        raft: this.makeRaft(id, disk),
        disk,
        machine: new ListStateMachine(),
        alive: true,
        appliedTerms: new Map(),
      }
      this.nodes.set(id, node)
    }
  }

  node(id: NodeId): LockstepNode {
    const node = this.nodes.get(id)
    if (node === undefined) throw new Error(`no node ${id}`)
    return node
  }

  raft(id: NodeId): RaftNode {
    return this.node(id).raft
  }

  /** Carries out every Ready and delivers every message (through the filter) until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false
      for (const node of this.nodes.values()) if (node.alive && this.handleReady(node)) moved = true
      if (this.queue.length > 0) {
        moved = true
        const batch = this.queue
        this.queue = []
        for (const m of batch) this.deliver(m)
      }
      if (!moved) return
    }
    throw new Error('the cluster did not settle')
  }

  /** Delivers one queued message now (tests that order messages by hand). */
  deliver(m: Message): void {
    const to = this.nodes.get(m.to)
    if (to === undefined || !to.alive || !this.filter(m)) return
    this.delivered.push(m)
    to.raft.step(m)
  }

  tick(ids: readonly NodeId[] = [...this.nodes.keys()], times = 1): void {
    for (let t = 0; t < times; t++) for (const id of ids) if (this.node(id).alive) this.node(id).raft.tick()
  }

  /** Ticks everyone and settles, `times` times: time passing with a working network. */
  run(times: number): void {
    for (let t = 0; t < times; t++) {
      this.tick()
      this.stabilize()
    }
  }

  /** Ticks until `pred` holds (settling after each tick); throws after `max` ticks. */
  runUntil(pred: () => boolean, max = 500): void {
    for (let t = 0; t < max; t++) {
      if (pred()) return
      this.tick()
      this.stabilize()
    }
    if (!pred()) throw new Error(`condition not reached in ${max} ticks`)
  }

  leaders(): LockstepNode[] {
    return [...this.nodes.values()].filter((n) => n.alive && n.raft.status().role === 'leader')
  }

  /** The one leader with the highest term among live nodes. */
  leader(): LockstepNode {
    const leaders = this.leaders().sort((a, b) => b.raft.status().term - a.raft.status().term)
    if (leaders.length === 0) throw new Error('no leader')
    return leaders[0]!
  }

  electLeader(max = 500): LockstepNode {
    this.runUntil(() => this.leaders().some((l) => l.raft.leaseRead().ok), max)
    return this.leader()
  }

  /** Proposes a command with a request id at `id` (default: the leader). */
  propose(client: string, seq: number, id: NodeId = this.leader().id): { index: number; term: number } {
    return this.raft(id).propose(new TextEncoder().encode(`${client}#${seq}`), { client, seq })
  }

  crash(id: NodeId, keepUnsynced = 0): void {
    const node = this.node(id)
    node.alive = false
    node.disk.crash(keepUnsynced)
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id)
  }

  restart(id: NodeId): void {
    const node = this.node(id)
    node.raft = this.makeRaft(id, node.disk)
    node.machine = new ListStateMachine()
    node.machine.restore(node.disk.load().snapshot)
    node.appliedTerms = new Map()
    node.alive = true
  }

  private makeRaft(id: NodeId, disk: SimDisk): RaftNode {
    return new RaftNode(
      {
        id,
        cluster: CLUSTER,
        signer: fakeSigner(id),
        verifier: fakeVerifier,
        random: this.random,
        ...this.options.init,
      },
      disk.load(),
    )
  }

  private handleReady(node: LockstepNode): boolean {
    const ready: Ready | null = node.raft.ready()
    if (ready == null) return false
    if (ready.persist != null) {
      node.disk.write(ready.persist)
      node.disk.sync()
    }
    this.queue.push(...ready.send)
    if (ready.apply != null) {
      if (ready.apply.snapshot != null) node.machine.restore(ready.apply.snapshot)
      for (const entry of ready.apply.entries) {
        node.machine.apply(entry)
        node.appliedTerms.set(entry.index, entry.term)
      }
    }
    node.raft.advance(ready)
    const every = this.options.compactEvery
    if (every != null) {
      const status = node.raft.status()
      if (status.applied - status.snapshotIndex >= every)
        node.raft.compact(node.machine.lastIndex, node.machine.encode())
    }
    return true
  }
}
