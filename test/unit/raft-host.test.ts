/**
 * The Raft core in a process (consensus/raft-host.ts): ticks from the monotonic
 * clock (and every missed tick played before a message is handled), one Ready at
 * a time (written, then sent, then applied), proposals answered once applied,
 * fail-stop on a failed write, and a restart from a new genesis.
 *
 * Deterministic: performance.now() is a number the test moves, the tick timer is
 * a fake one, and the storage is in memory with writes the test can hold.
 */
import { performance } from 'node:perf_hooks'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { fakeSigner, fakeVerifier } from '../../bench/raft-sim/keys.js'
import { SimDisk } from '../../bench/raft-sim/storage.js'
import {
  type ClusterChange,
  ClusterMachine,
  encodeChange,
} from '../../src/manager/consensus/cluster-machine.js'
import { RaftHost, type RaftHostComponents } from '../../src/manager/consensus/raft-host.js'
import {
  type Certificate,
  type Entry,
  genesisSnapshot,
  type Message,
  type NodeId,
  type PersistBatch,
  type PersistedState,
  RaftNode,
  type Snapshot,
  voteBytes,
} from '../../src/manager/raft/index.js'
import { silentLogger } from '../../src/shared/index.js'

const CLUSTER = 'host-test'
const TICK_MS = 10
const ELECTION_TICKS = 10

/** Level storage's contract in memory; writes can be held (a slow fsync) or made to fail. */
class MemoryStorage {
  disk: SimDisk | null = null
  readonly meta = new Map<string, string>()
  readonly persisted: PersistBatch[] = []
  resets: Snapshot[] = []
  failWith: Error | null = null
  private holding = false
  private readonly waiting: Array<() => void> = []

  async load(): Promise<PersistedState | null> {
    return this.disk?.load() ?? null
  }
  async init(snapshot: Snapshot): Promise<void> {
    this.disk = new SimDisk(snapshot)
  }
  async persist(batch: PersistBatch): Promise<void> {
    if (this.holding) await new Promise<void>((resolve) => this.waiting.push(resolve))
    if (this.failWith != null) throw this.failWith
    if (this.disk == null) throw new Error('persist before init')
    // In memory nothing is lost: synced or not, a write is kept.
    this.disk.write(batch)
    this.disk.sync()
    this.persisted.push(batch)
  }
  async reset(snapshot: Snapshot): Promise<void> {
    this.resets.push(snapshot)
    this.disk = new SimDisk(snapshot)
  }
  async clear(): Promise<void> {
    this.disk = null
  }
  async saveMeta(key: string, value: string): Promise<void> {
    this.meta.set(key, value)
  }
  async loadMeta(key: string): Promise<string | null> {
    return this.meta.get(key) ?? null
  }

  /** Writes from now on wait for release(). */
  hold(): void {
    this.holding = true
  }
  release(): void {
    this.holding = false
    for (const resolve of this.waiting.splice(0)) resolve()
  }
  get held(): number {
    return this.waiting.length
  }
}

let now = 0

/** Lets every pending promise chain (the host's write → send → apply loop) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** Time passes with a working timer: one tick period at a time. */
async function advance(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += TICK_MS) {
    now += TICK_MS
    vi.advanceTimersByTime(TICK_MS)
    await flush()
  }
}

/** The process stalls (GC, SIGSTOP): the clock moves, no timer fires. */
function stall(ms: number): void {
  now += ms
}

interface Harness {
  host: RaftHost
  storage: MemoryStorage
  machine: ClusterMachine
  sent: Message[]
  changes: number
}

function harness(
  id: NodeId = 'a',
  options: { storage?: MemoryStorage; snapshotThreshold?: number } = {},
): Harness {
  const storage = options.storage ?? new MemoryStorage()
  const machine = new ClusterMachine()
  const sent: Message[] = []
  const h: Harness = { host: null as unknown as RaftHost, storage, machine, sent, changes: 0 }
  const components: RaftHostComponents = {
    storage,
    send: (messages) => sent.push(...messages),
    signer: fakeSigner(id),
    verifier: fakeVerifier,
    machine,
    logger: silentLogger,
    onChange: () => {
      h.changes++
    },
  }
  h.host = new RaftHost(
    {
      cluster: CLUSTER,
      id,
      tickMs: TICK_MS,
      heartbeatTicks: 1,
      electionTicks: ELECTION_TICKS,
      ...(options.snapshotThreshold != null ? { snapshotThreshold: options.snapshotThreshold } : {}),
    },
    components,
  )
  return h
}

const change = (base: number, fields: Partial<ClusterChange> = {}): Uint8Array =>
  encodeChange({ v: 1, base, set: {}, rollouts: [], answer: null, ...fields })

function signed(term: number, leader: NodeId, voters: NodeId[]): Certificate {
  const bytes = voteBytes(CLUSTER, term, leader)
  return { term, leader, votes: voters.map((voter) => ({ voter, signature: fakeSigner(voter).sign(bytes) })) }
}

const voteGrant = (from: NodeId, to: NodeId, term: number): Message => ({
  type: 'vote-response',
  from,
  to,
  term,
  granted: true,
  signature: fakeSigner(from).sign(voteBytes(CLUSTER, term, to)),
})

/**
 * Boots and lets the boot's own drain finish. (Calling into the host in the same
 * microtask burst as a drain that just found nothing to do loses the wake-up
 * until the next timer tick: reported, not what these tests are about.)
 */
async function boot(h: Harness, genesis: Snapshot | null): Promise<boolean> {
  const booted = await h.host.boot(genesis)
  await flush()
  return booted
}

/** A single voter that leads: booted from its genesis, elected, its term start applied. */
async function soloLeader(h: Harness): Promise<void> {
  expect(await boot(h, genesisSnapshot(['a']))).toBe(true)
  h.host.campaign()
  await flush()
  expect(h.host.canDecide()).toBe(true)
}

beforeEach(() => {
  now = 0
  vi.spyOn(performance, 'now').mockImplementation(() => now)
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] })
})

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

describe('booting', () => {
  it('a node with nothing stored and no genesis stays unbooted', async () => {
    const h = harness()
    expect(await boot(h, null)).toBe(false)
    expect(h.host.booted).toBe(false)
    expect(h.host.status()).toBeNull()
    expect(h.host.canDecide()).toBe(false)
    expect(h.storage.disk).toBeNull()
    await expect(h.host.propose(change(0), null)).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    expect(() => h.host.proposeConfigChange({ op: 'add-learner', node: 'b' })).toThrow(
      expect.objectContaining({ code: 'ERR_NO_MANAGER' }),
    )
  })

  it('a new node stores its genesis, then starts from it', async () => {
    const h = harness()
    expect(await boot(h, genesisSnapshot(['a']))).toBe(true)
    expect(h.host.booted).toBe(true)
    expect(h.storage.disk?.load().snapshot.meta.config.config.voters).toEqual(['a'])
    expect(h.host.status()).toMatchObject({ role: 'follower', term: 0, commit: 0 })
    // Booting again does nothing.
    expect(await h.host.boot(genesisSnapshot(['x']))).toBe(true)
    expect(h.host.status()?.config.voters).toEqual(['a'])
    h.host.stop()
  })
})

describe('a single voter', () => {
  it('campaigns, leads, and can decide once its term start is applied', async () => {
    const h = harness()
    await soloLeader(h)
    const status = h.host.status()!
    expect(status).toMatchObject({ role: 'leader', term: 1, leader: 'a', commit: 1, applied: 1 })
    expect(h.host.isLeader()).toBe(true)
    expect(h.machine.lastIndex).toBe(1)
    expect(h.storage.disk?.load().hardState).toMatchObject({ term: 1, vote: 'a' })
    expect(h.changes).toBeGreaterThan(0)
    // A single voter sends nothing.
    expect(h.sent).toEqual([])
    expect(await h.host.untilCanDecide(0)).toBe(true)
    h.host.stop()
  })

  it('elects itself from its own ticks, without campaign()', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a']))
    expect(h.host.isLeader()).toBe(false)
    await advance(3 * ELECTION_TICKS * TICK_MS)
    expect(h.host.isLeader()).toBe(true)
    expect(h.host.canDecide()).toBe(true)
    h.host.stop()
  })

  it('a proposal resolves once applied, with what applying did and its index', async () => {
    const h = harness()
    await soloLeader(h)
    const request = { client: 'agent-1', seq: 1 }
    const outcome = await h.host.propose(
      change(0, { set: { defaultTarget: 'app@1' }, answer: { rollout: 'r1' } }),
      request,
    )
    expect(outcome).toEqual({ status: 'applied', answer: { rollout: 'r1' }, index: 2 })
    expect(h.machine.state().defaultTarget).toBe('app@1')
    expect(h.machine.version).toBe(2)
    // Durable before it was answered.
    expect(h.storage.disk?.load().entries.map((e) => e.index)).toContain(2)
    // A retry of the same request: the first answer, nothing applied again.
    const again = await h.host.propose(change(2, { set: { defaultTarget: 'app@9' } }), request)
    expect(again).toEqual({ status: 'duplicate', answer: { rollout: 'r1' }, index: 3 })
    expect(h.machine.state().defaultTarget).toBe('app@1')
    // A change decided on an old version.
    expect(await h.host.propose(change(0, { set: { defaultTarget: 'x@1' } }), null)).toEqual({
      status: 'conflict',
      index: 4,
    })
    h.host.stop()
  })

  it('proposals made together resolve in log order', async () => {
    const h = harness()
    await soloLeader(h)
    const done = await Promise.all([
      h.host.propose(change(0, { set: { defaultTarget: 'a@1' } }), null),
      h.host.propose(change(0, { set: { defaultTarget: 'b@1' } }), null),
      h.host.propose(change(0, { set: { defaultTarget: 'c@1' } }), null),
    ])
    expect(done.map((d) => [d.index, d.status])).toEqual([
      [2, 'applied'],
      [3, 'conflict'],
      [4, 'conflict'],
    ])
    h.host.stop()
  })

  it('a follower refuses proposals (not the leader)', async () => {
    const h = harness('b')
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    expect(() => h.host.propose(change(0), null)).toThrow(expect.objectContaining({ code: 'ERR_NOT_LEADER' }))
    expect(h.host.canDecide()).toBe(false)
    const waited = h.host.untilCanDecide(30)
    await advance(5 * TICK_MS)
    expect(await waited).toBe(false)
    h.host.stop()
  })

  it('saves the state machine as a snapshot when the log grows past the threshold', async () => {
    const h = harness('a', { snapshotThreshold: 3 })
    await soloLeader(h)
    for (let i = 0; i < 4; i++)
      await h.host.propose(change(h.machine.version, { set: { targets: { n1: `app@${i}` } } }), null)
    await flush()
    const snapshots = h.storage.persisted.filter((b) => b.snapshot != null).map((b) => b.snapshot!)
    expect(snapshots.length).toBeGreaterThan(0)
    const last = snapshots.at(-1)!
    const copy = new ClusterMachine()
    copy.restore(last)
    expect(copy.lastIndex).toBe(last.meta.index)
    expect(h.host.status()!.snapshotIndex).toBe(last.meta.index)
    // compactNow() saves what is applied now.
    await h.host.propose(change(h.machine.version, { set: { defaultTarget: 'now@1' } }), null)
    h.host.compactNow()
    await flush()
    expect(h.host.status()!.snapshotIndex).toBe(h.machine.lastIndex)
    const saved = new ClusterMachine()
    saved.restore(h.storage.disk!.load().snapshot)
    expect(saved.state()).toEqual(h.machine.state())
    h.host.stop()
  })

  it('a host started again on the same disk comes back to the same state', async () => {
    const h = harness()
    await soloLeader(h)
    await h.host.propose(change(0, { set: { defaultTarget: 'app@1' }, answer: { rollout: 'r1' } }), {
      client: 'c',
      seq: 1,
    })
    await h.host.propose(change(2, { set: { targets: { n1: 'app@2' } } }), null)
    h.host.stop()
    const again = harness('a', { storage: h.storage })
    expect(await boot(again, null)).toBe(true)
    again.host.campaign()
    await flush()
    expect(again.host.canDecide()).toBe(true)
    expect(again.machine.state()).toEqual(h.machine.state())
    expect(again.machine.answered({ client: 'c', seq: 1 })).toEqual({ rollout: 'r1' })
    again.host.stop()
  })
})

describe('write, then send', () => {
  it("a Ready's messages leave only once its write is durable", async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.storage.hold()
    h.host.campaign()
    await flush()
    // The vote for itself and the new term are being written: the vote requests wait.
    expect(h.storage.held).toBe(1)
    expect(h.sent).toEqual([])
    await advance(3 * TICK_MS)
    expect(h.sent).toEqual([])
    h.storage.release()
    await flush()
    expect(h.storage.disk?.load().hardState).toMatchObject({ term: 1, vote: 'a' })
    expect(h.sent.map((m) => [m.type, m.to, m.term])).toEqual([
      ['vote', 'b', 1],
      ['vote', 'c', 1],
    ])
    h.host.stop()
  })

  it('messages that arrive during a write reach the core; the next Ready waits for the write', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.storage.hold()
    h.host.campaign()
    await flush()
    // b's grant arrives while the vote is still being written: the core becomes leader.
    h.host.receive(voteGrant('b', 'a', 1))
    expect(h.host.status()?.role).toBe('leader')
    expect(h.sent).toEqual([])
    h.storage.release()
    await flush()
    // The first Ready's vote requests, then (after the term start was written) the appends.
    const types = h.sent.map((m) => m.type)
    expect(types.slice(0, 2)).toEqual(['vote', 'vote'])
    expect(types.slice(2)).toContain('append')
    const termStart = h.storage.persisted.findIndex((b) => b.entries.some((e) => e.kind === 'term-start'))
    expect(termStart).toBeGreaterThan(0)
    // The term start is not committed until a follower has it on disk.
    expect(h.host.status()?.commit).toBe(0)
    expect(h.host.canDecide()).toBe(false)
    h.host.stop()
  })

  it('the leader counts its own entry only once its own write is durable', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.host.campaign()
    await flush()
    h.host.receive(voteGrant('b', 'a', 1))
    await flush()
    h.storage.hold()
    const sentBefore = h.sent.length
    const proposal = h.host.propose(change(0), null)
    await flush()
    // b acknowledges index 2 (it got it some other way): without a's own write it is one of three.
    h.host.receive({
      type: 'append-response',
      from: 'b',
      to: 'a',
      term: 1,
      success: true,
      index: 2,
      hint: null,
      sentAt: 0,
    })
    await flush()
    expect(h.host.status()?.commit).toBeLessThan(2)
    expect(h.sent.slice(sentBefore).filter((m) => m.type === 'append')).toEqual([])
    h.storage.release()
    await flush()
    expect(h.host.status()?.commit).toBe(2)
    expect(await proposal).toEqual({ status: 'applied', answer: null, index: 2 })
    h.host.stop()
  })
})

describe('a proposal whose entry another leader replaced', () => {
  it('rejects: its outcome is not that of the entry applied at its index', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.host.campaign()
    await flush()
    h.host.receive(voteGrant('b', 'a', 1))
    await flush()
    // Term start (1) and the command (2) are only on a's disk.
    const proposal = h.host.propose(change(0, { set: { defaultTarget: 'lost@1' } }), null)
    const settled = proposal.then(
      (v) => ({ ok: true as const, v }),
      (err: unknown) => ({ ok: false as const, err }),
    )
    await flush()
    // c was elected in term 2 by b and c; its log holds a's term start, then its own.
    const certificate = signed(2, 'c', ['b', 'c'])
    const entries: Entry[] = [{ kind: 'term-start', index: 2, term: 2, certificate }]
    h.host.receive({
      type: 'append',
      from: 'c',
      to: 'a',
      term: 2,
      certificate,
      chain: null,
      sentAt: 5,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries,
      commit: 2,
    })
    await flush()
    expect(h.host.status()).toMatchObject({ role: 'follower', leader: 'c', term: 2, commit: 2 })
    const result = await settled
    expect(result.ok).toBe(false)
    expect(result.ok ? null : result.err).toMatchObject({ code: 'ERR_NO_MANAGER' })
    expect(h.machine.state().defaultTarget).toBeNull()
    expect(h.machine.lastIndex).toBe(2)
    h.host.stop()
  })
})

describe('fail-stop', () => {
  it('a failed write stops the host: pending and later proposals reject, nothing more is sent', async () => {
    const h = harness()
    await soloLeader(h)
    h.storage.failWith = new Error('EIO: the disk is gone')
    const pending = h.host.propose(change(0), null)
    await expect(pending).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    await flush()
    await expect(h.host.propose(change(0), null)).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    expect(h.host.canDecide()).toBe(false)
    expect(h.host.isLeader()).toBe(false)
    expect(await h.host.untilCanDecide(100)).toBe(false)
    // The disk recovers: the host stays stopped (a node that broke a promise makes no more).
    h.storage.failWith = null
    await advance(5 * ELECTION_TICKS * TICK_MS)
    expect(h.host.canDecide()).toBe(false)
    expect(h.storage.disk?.load().entries.map((e) => e.index)).toEqual([1])
    h.host.stop()
  })

  it('messages of a Ready whose write failed are never sent', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.storage.failWith = new Error('EIO')
    h.host.campaign()
    await flush()
    await advance(5 * ELECTION_TICKS * TICK_MS)
    h.host.receive(voteGrant('b', 'a', 1))
    await flush()
    expect(h.sent).toEqual([])
    h.host.stop()
  })

  it('restartFrom() resets the storage and boots again from the snapshot given', async () => {
    const h = harness()
    await soloLeader(h)
    await h.host.propose(change(0, { set: { defaultTarget: 'app@1' } }), null)
    h.storage.failWith = new Error('EIO')
    await expect(h.host.propose(change(2), null)).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    h.storage.failWith = null
    // As `shoal voters reset` does: a new genesis carrying the applied state.
    const state = h.machine.state()
    const base = genesisSnapshot(['a'])
    await h.host.restartFrom({ meta: base.meta, data: h.machine.encode() })
    await flush()
    expect(h.storage.resets).toHaveLength(1)
    expect(h.storage.disk?.load().entries).toEqual([])
    expect(h.host.booted).toBe(true)
    expect(h.host.status()).toMatchObject({ term: 0, commit: 0 })
    expect(h.machine.state()).toEqual(state)
    h.host.campaign()
    await flush()
    expect(h.host.canDecide()).toBe(true)
    const outcome = await h.host.propose(change(h.machine.version, { set: { defaultTarget: 'app@2' } }), null)
    expect(outcome).toEqual({ status: 'applied', answer: null, index: 2 })
    expect(h.machine.state().defaultTarget).toBe('app@2')
    h.host.stop()
  })

  it('restartFrom() rejects the proposals still pending', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.host.campaign()
    await flush()
    h.host.receive(voteGrant('b', 'a', 1))
    await flush()
    const pending = h.host.propose(change(0), null)
    await h.host.restartFrom(genesisSnapshot(['a']))
    await expect(pending).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    expect(h.host.status()?.config.voters).toEqual(['a'])
    h.host.stop()
  })

  it('stop() rejects pending proposals and stops ticking', async () => {
    const h = harness()
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    h.host.campaign()
    await flush()
    h.host.receive(voteGrant('b', 'a', 1))
    await flush()
    const pending = h.host.propose(change(0), null)
    h.host.stop()
    await expect(pending).rejects.toMatchObject({ code: 'ERR_NO_MANAGER' })
    expect(h.host.booted).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('ticks from the monotonic clock', () => {
  it('one tick per period elapsed', async () => {
    const tick = vi.spyOn(RaftNode.prototype, 'tick')
    const h = harness('b')
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    await advance(25 * TICK_MS)
    expect(tick).toHaveBeenCalledTimes(25)
    h.host.stop()
  })

  it('ticks missed during a stall are played before a received message is handled', async () => {
    const tick = vi.spyOn(RaftNode.prototype, 'tick')
    const step = vi.spyOn(RaftNode.prototype, 'step')
    const h = harness('b')
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    await advance(2 * TICK_MS)
    expect(tick).toHaveBeenCalledTimes(2)
    stall(50 * TICK_MS)
    h.host.receive(voteGrant('c', 'b', 9))
    expect(tick).toHaveBeenCalledTimes(52)
    expect(step).toHaveBeenCalledTimes(1)
    const lastTick = Math.max(...tick.mock.invocationCallOrder)
    expect(step.mock.invocationCallOrder[0]).toBeGreaterThan(lastTick)
    h.host.stop()
  })

  it('a vote request after a stall is judged with the time that passed', async () => {
    const request = (): Message => ({
      type: 'vote',
      from: 'c',
      to: 'b',
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      chain: [],
      transfer: false,
    })
    // Just started: within the minimum election timeout, b grants no vote.
    const fresh = harness('b')
    await boot(fresh, genesisSnapshot(['a', 'b', 'c']))
    fresh.host.receive(request())
    await flush()
    expect(fresh.sent.filter((m) => m.type === 'vote-response')).toEqual([])
    fresh.host.stop()
    // The same request after a stall of several election timeouts, no timer having fired.
    const stalled = harness('b')
    await boot(stalled, genesisSnapshot(['a', 'b', 'c']))
    stall(5 * ELECTION_TICKS * TICK_MS)
    stalled.host.receive(request())
    await flush()
    expect(stalled.sent.filter((m) => m.type === 'vote-response')).toMatchObject([
      { to: 'c', term: 1, granted: true },
    ])
    stalled.host.stop()
  })

  it('status() and canDecide() catch up too: a stalled leader is judged after its missed ticks', async () => {
    const tick = vi.spyOn(RaftNode.prototype, 'tick')
    const h = harness()
    await soloLeader(h)
    const before = tick.mock.calls.length
    stall(7 * TICK_MS)
    h.host.status()
    expect(tick.mock.calls.length - before).toBe(7)
    stall(3 * TICK_MS)
    h.host.canDecide()
    expect(tick.mock.calls.length - before).toBe(10)
    h.host.stop()
  })

  it('a very long stall plays a bounded number of ticks', async () => {
    const tick = vi.spyOn(RaftNode.prototype, 'tick')
    const h = harness('b')
    await boot(h, genesisSnapshot(['a', 'b', 'c']))
    stall(1_000_000 * TICK_MS)
    h.host.status()
    expect(tick).toHaveBeenCalledTimes(10_000)
    // And the clock is not owed the rest afterwards.
    stall(TICK_MS)
    h.host.status()
    expect(tick).toHaveBeenCalledTimes(10_001)
    h.host.stop()
  })
})
