/**
 * One simulated size, with the phases of the in-process benchmark (bench/membership.ts)
 * so the two can be compared: a mass join through one member, an idle window, a
 * late joiner, a crash; then a long steady stretch (to 180 s) that the real
 * benchmark does not have, where connection counts reach their limit at N > 400.
 * Every time is virtual ms from the start of its phase.
 */

import { membershipProtocols } from '../../src/membership/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { serve } from '../../src/shared/stream-rpc.js'
import { type Accusation, SimCluster, type SimClusterInit, type SimMember } from './cluster.js'
import type { WireCosts } from './costs.js'
import { CATEGORIES, type Category, type SimWorld } from './network.js'
import { type RolloutWave, rolloutSteps, WAVE_STEP_MS, WAVE_WATCHERS } from './rollout-wave.js'

const SETTLE_S = 3
const SETTLE_CAP_S = 30
const IDLE_WINDOW_S = 10
const CONVERGE_CAP_MS = 120_000
const PHASE_CAP_MS = 30_000
/** The long steady window: from 150 s after the mass join to 180 s. */
const STEADY_FROM_S = 150
const STEADY_WINDOW_S = 30
const SERIES_STEP_S = 5
const SAMPLE_LIMIT = 10

export type Phase = 'converge' | 'idle' | 'join' | 'kill' | 'steady' | 'wave'

export interface Traffic {
  /** Mean over running members, bytes per second. */
  sentBytesPerNodePerSec: number
  receivedBytesPerNodePerSec: number
  /** Sent bytes per node per second by category. */
  sentByCategory: Record<Category, number>
  meanConnections: number
  maxConnections: number
}

export interface SimSizeResult {
  n: number
  seed: number
  /** null: no limit. */
  maxConnections: number | null
  /** Views seeded instead of a mass join (ScenarioOptions.warm). */
  warm: boolean
  wallS: number
  /** Timer callbacks the virtual clock ran (the simulation's work). */
  events: number
  completeViewsMs: number | null
  medianAgentCompleteMs: number | null
  joinSeenByAllMs: number | null
  joinerCompleteMs: number | null
  killFirstSuspectMs: number | null
  killSuspectedByAllMs: number | null
  killDeadByAllMs: number | null
  idle: (Traffic & { settleS: number; fullMesh: boolean; windowS: number }) | null
  steady:
    | (Traffic & {
        fromS: number
        windowS: number
        /** Dials lost to maxConnections (refused by the peer or pruned at once), per node per second. */
        refusedDialsPerNodePerSec: number
        suspectEventsPerSec: number
        deadEvents: number
      })
    | null
  /** A rollout's metadata on every member at once (rollout-wave.ts). */
  wave: RolloutWave | null
  falsePositives: { suspect: number; dead: number; samples: Array<Accusation & { phase: Phase }> }
  /**
   * Heap after a full GC: the whole simulation at start, once converged and in the
   * steady window; and what the Membership objects alone held at the end (found by
   * dropping them all): per member, and per entry of a view (/ N).
   */
  memory: {
    baselineMB: number
    convergedMB: number
    steadyMB: number | null
    perNodeKB: number | null
    perEntryB: number | null
  }
  /** A full state-sync message (every record of one view) at this N, bytes. */
  syncMessageBytes: number
  /** Bytes of one record of the view, mean. */
  recordBytes: number
  /** Membership stats summed over members (health: max) at the end. */
  stats: Record<string, number>
  pubsub: Record<string, number>
  network: SimWorld['totals']
  /** Every SERIES_STEP_S: sent bytes per node per second, mean connections, suspect events. */
  series: Array<{ atS: number; sentBytesPerNodePerSec: number; meanConnections: number; suspects: number }>
  notes: string[]
}

export interface ScenarioOptions {
  n: number
  seed?: number
  costs?: WireCosts
  /**
   * Seed every view instead of a mass join (default from N = 500): the members
   * start alone and each syncs once with a seeder that is no member and does not
   * gossip, and the re-broadcasts this causes are dropped (seedViews). A mass join
   * makes every member decode every joiner's re-broadcast of its view (N^3/2 claim
   * decodes in all), which one core cannot simulate past a few hundred members;
   * `completeViewsMs` is then null.
   */
  warm?: boolean
  /** libp2p's maxConnections (Shoal: 400); null for no limit. */
  maxConnections?: number | null
  /** Skip the long steady stretch (fast runs, the unit test). */
  steady?: boolean
  log?: (line: string) => void
  cluster?: Partial<SimClusterInit>
}

export async function runScenario(options: ScenarioOptions): Promise<SimSizeResult> {
  const { n } = options
  const seed = options.seed ?? 1
  const log = options.log ?? (() => {})
  const wallStart = process.hrtime.bigint()
  const gc = (globalThis as { gc?: () => void }).gc
  const heapMB = () => {
    gc?.()
    return process.memoryUsage().heapUsed / 2 ** 20
  }
  const baselineMB = heapMB()
  const c = new SimCluster({
    seed,
    cluster: `bench-${n}`,
    ...(options.costs == null ? {} : { costs: options.costs }),
    maxConnections:
      options.maxConnections === null ? Number.POSITIVE_INFINITY : (options.maxConnections ?? 400),
    ...options.cluster,
  })
  const notes: string[] = []
  const phases: Array<{ phase: Phase; at: number }> = []
  let victim: { id: string; at: number } | undefined
  const falsePositives: SimSizeResult['falsePositives'] = { suspect: 0, dead: 0, samples: [] }
  let suspectEvents = 0
  let deadEvents = 0
  c.onAccusation = (a) => {
    if (a.event === 'suspect') suspectEvents++
    else deadEvents++
    if (victim != null && a.target === victim.id && a.at >= victim.at) return
    falsePositives[a.event]++
    const phase = phases.findLast((p) => p.at <= a.at) ?? phases[0]
    if (falsePositives.samples.length < SAMPLE_LIMIT && phase != null)
      falsePositives.samples.push({ ...a, at: Math.round(a.at - phase.at), phase: phase.phase })
  }
  const enter = (phase: Phase) => phases.push({ phase, at: c.now })

  const series: SimSizeResult['series'] = []
  let lastSeries = { at: 0, sent: 0, suspects: 0 }
  const sampleSeries = () => {
    const running = c.running()
    const sent = totalSent(c.members)
    const dt = (c.now - lastSeries.at) / 1000
    if (dt <= 0) return
    series.push({
      atS: Math.round(c.now / 1000),
      sentBytesPerNodePerSec: Math.round((sent - lastSeries.sent) / running.length / dt),
      meanConnections: round(mean(running.map((m) => m.node.connections.size))),
      suspects: suspectEvents - lastSeries.suspects,
    })
    lastSeries = { at: c.now, sent, suspects: suspectEvents }
  }
  const seriesTimer = c.clock.schedule(SERIES_STEP_S * 1000, sampleSeries, [], SERIES_STEP_S * 1000)

  const result: SimSizeResult = {
    n,
    seed,
    maxConnections: options.maxConnections === undefined ? 400 : options.maxConnections,
    warm: false,
    wallS: 0,
    events: 0,
    completeViewsMs: null,
    medianAgentCompleteMs: null,
    joinSeenByAllMs: null,
    joinerCompleteMs: null,
    killFirstSuspectMs: null,
    killSuspectedByAllMs: null,
    killDeadByAllMs: null,
    idle: null,
    steady: null,
    wave: null,
    falsePositives,
    memory: {
      baselineMB: round(baselineMB),
      convergedMB: 0,
      steadyMB: null,
      perNodeKB: null,
      perEntryB: null,
    },
    syncMessageBytes: 0,
    recordBytes: 0,
    stats: {},
    pubsub: {},
    network: c.world.totals,
    series,
    notes,
  }
  c.install()
  try {
    // 1. Member 0, then N-1 at once through it; until every view lists N alive.
    const warm = options.warm ?? n >= 500
    result.warm = warm
    const first = await c.add()
    await c.run(100)
    const boot = [first.addr]
    enter('converge')
    const since = c.now
    for (let i = 1; i < n; i++) await c.add(warm ? [] : boot)
    const complete = new Map<number, number>()
    const allComplete = () => {
      let all = true
      for (const m of c.members) {
        if (m.alive === n) {
          if (!complete.has(m.index)) complete.set(m.index, c.now - since)
        } else all = false
      }
      return all
    }
    if (warm) {
      const seeded = await seedViews(c, 2_000_000_000)
      notes.push(`warm start: views seeded (${seeded} ms virtual), no mass join`)
    } else {
      result.completeViewsMs = await c.until(allComplete, { capMs: CONVERGE_CAP_MS })
    }
    result.medianAgentCompleteMs = warm ? null : median([...complete.values()])
    log(`N = ${n}: views complete in ${result.completeViewsMs} ms (virtual), wall ${wall(wallStart)} s`)
    const records = first.membership.members().map(({ self: _s, since: _t, ...record }) => record)
    result.syncMessageBytes = JSON.stringify({ v: 1, digest: 'x'.repeat(43), members: records }).length
    result.recordBytes = Math.round(result.syncMessageBytes / Math.max(1, records.length))
    result.memory.convergedMB = round(heapMB())
    if (result.completeViewsMs == null && !warm)
      notes.push(`views not complete within ${CONVERGE_CAP_MS / 1000} s`)

    // 2. Idle: at least SETTLE_S, then until every member is connected to every other (cap).
    const settleStart = c.now
    await c.run(SETTLE_S * 1000)
    const meshed = await c.until(
      () => c.running().every((m) => m.node.connections.size >= c.running().length - 1),
      { capMs: SETTLE_CAP_S * 1000 - SETTLE_S * 1000, everyMs: 500 },
    )
    const settleS = round((c.now - settleStart) / 1000)
    enter('idle')
    const idle = await measureTraffic(c, IDLE_WINDOW_S)
    result.idle = { ...idle, settleS, fullMesh: meshed != null, windowS: IDLE_WINDOW_S }
    log(`N = ${n}: idle ${idle.sentBytesPerNodePerSec} B/node/s, wall ${wall(wallStart)} s`)

    // 3. A late joiner: until every earlier member lists it alive, and it lists everyone.
    enter('join')
    const joiner = await c.add(boot)
    let seenAt: number | null = null
    let joinerAt: number | null = null
    const joinStart = c.now
    await c.until(
      () => {
        if (seenAt == null && c.members.every((m) => m === joiner || m.stateOf(joiner.id) === 'alive'))
          seenAt = c.now - joinStart
        if (joinerAt == null && joiner.alive === n + 1) joinerAt = c.now - joinStart
        return seenAt != null && joinerAt != null
      },
      { capMs: PHASE_CAP_MS },
    )
    result.joinSeenByAllMs = seenAt
    result.joinerCompleteMs = joinerAt
    if (seenAt == null) notes.push('late joiner not seen alive by all within 30 s')

    // 4. A crash (no leave): until every remaining member has it dead.
    enter('kill')
    const target = c.members[n - 1]!
    victim = { id: target.id, at: c.now }
    const killStart = c.now
    await c.crash(target)
    const rest = () => c.running()
    const marks: Record<'first' | 'all' | 'dead', number | null> = { first: null, all: null, dead: null }
    await c.until(
      () => {
        const states = rest().map((m) => m.stateOf(target.id))
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
    if (marks.dead == null) notes.push('crashed member not dead everywhere within 30 s')
    log(`N = ${n}: join ${seenAt} ms, dead by all ${marks.dead} ms, wall ${wall(wallStart)} s`)

    // 5. Steady: until STEADY_FROM_S after the mass join, then a window.
    if (options.steady !== false) {
      const from = Math.max(c.now, since + STEADY_FROM_S * 1000)
      await c.run(from - c.now)
      enter('steady')
      const refused = c.world.totals.refusedFull + c.world.totals.prunedOutbound
      const suspects = suspectEvents
      const deads = deadEvents
      const traffic = await measureTraffic(c, STEADY_WINDOW_S)
      const running = c.running().length
      result.steady = {
        ...traffic,
        fromS: round((from - since) / 1000),
        windowS: STEADY_WINDOW_S,
        refusedDialsPerNodePerSec: round(
          (c.world.totals.refusedFull + c.world.totals.prunedOutbound - refused) / running / STEADY_WINDOW_S,
          3,
        ),
        suspectEventsPerSec: round((suspectEvents - suspects) / STEADY_WINDOW_S, 2),
        deadEvents: deadEvents - deads,
      }
      result.memory.steadyMB = round(heapMB())
      log(`N = ${n}: steady ${traffic.sentBytesPerNodePerSec} B/node/s, wall ${wall(wallStart)} s`)
    }
    // 6. A metadata wave: every member changes its metadata at once (what a new
    // cluster-state head does: each agent republishes it); until every member has
    // every other's update, and the bytes it cost.
    enter('wave')
    const running = c.running()
    const watchers = running.slice(0, WAVE_WATCHERS)
    for (const w of watchers) await w.membership.setWatching(true)
    // Everyone's views learn who watches before the wave.
    await c.run(5000)
    const waveStart = c.now
    const sentBefore = totalSent(running)
    const watcherReceivedBefore = watchers.map((w) => w.node.meter.total('received'))
    const steps = rolloutSteps('app@1.0', 'app@1.1')
    for (const step of steps) {
      for (const m of running) void m.membership.updateMetadata(step).catch(() => {})
      await c.run(WAVE_STEP_MS)
    }
    const waveMs = await c.until(
      () =>
        watchers.every((w) => running.every((m) => w.membership.get(m.id)?.meta.distribution === 'app@1.1')),
      { capMs: PHASE_CAP_MS },
    )
    await c.run(2000)
    result.wave = {
      everyUpdateEverywhereMs: waveMs == null ? null : waveMs + steps.length * WAVE_STEP_MS,
      sentBytesPerNode: Math.round((totalSent(running) - sentBefore) / running.length),
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

    // 7. The heap the Membership objects hold, measured by dropping them (ends the run).
    result.stats = sumStats(c.members.map((m) => ({ ...m.membership.stats() })))
    const members = c.members.length
    const bytes = await c.membershipHeapBytes()
    if (bytes != null) {
      result.memory.perNodeKB = Math.round(bytes / members / 1024)
      result.memory.perEntryB = Math.round(bytes / members / n)
    }
  } catch (err) {
    notes.push(`aborted: ${String(err)}`)
  } finally {
    c.clock.cancel(seriesTimer)
    result.pubsub = sumStats(c.members.map((m) => ({ ...m.node.pubsub.stats })))
    result.pubsub.largestPublished = Math.max(...c.members.map((m) => m.node.pubsub.stats.largestPublished))
    result.events = c.clock.fired
    if (c.clock.errors.size > 0) notes.push(`timer callbacks threw: ${JSON.stringify([...c.clock.errors])}`)
    await c.close()
    result.wallS = wall(wallStart)
  }
  return result
}

/**
 * A warm start: a node that is no member (it gossips nothing, nobody's view lists
 * it) answers state syncs with every member's record; each member connects to it,
 * and its own identify handler syncs (the real code path), merges the view and
 * re-broadcasts the news to its topic peers (none yet: nothing goes out). Then
 * every member hangs up. Returns the virtual ms it took.
 */
export async function seedViews(c: SimCluster, index: number): Promise<number> {
  const start = c.now
  const seeder = c.world.addNode(await c.peerIdFor(index))
  seeder.maxConnections = Number.POSITIVE_INFINITY
  seeder.start()
  const records = c.members.map((m) => {
    const { self: _s, since: _t, ...record } = m.membership.self
    return record
  })
  const encoded = new TextEncoder().encode(JSON.stringify({ v: 1, digest: 'seed', members: records }))
  const protocol = membershipProtocols(c.cluster).sync
  await serve(
    seeder as unknown as Parameters<typeof serve>[0],
    protocol,
    { timeoutMs: 30_000, maxBytes: 64 * 2 ** 20 },
    silentLogger,
    async (ch) => {
      await ch.read()
      await ch.write(encoded)
      await ch.read()
    },
  )
  for (const m of c.members) void m.node.dial(seeder.peerId).catch(() => {})
  const n = c.members.length
  await c.until(() => c.members.every((m) => m.alive === n), { capMs: 600_000, everyMs: 50 })
  // Each member re-broadcast its merged view to no one (no topic peers yet), but gossipsub
  // keeps it for IHAVE: within a few heartbeats every member would fetch and decode all of
  // them, the mass-join storm again. Those copies are dropped.
  for (const m of c.members) m.node.pubsub.dropCachedMessages()
  for (const m of c.members) await m.node.hangUp(seeder.peerId)
  seeder.crash()
  await c.run(100)
  return Math.round(c.now - start)
}

async function measureTraffic(c: SimCluster, windowS: number): Promise<Traffic> {
  const before = snapshot(c.members)
  await c.run(windowS * 1000)
  const after = snapshot(c.members)
  const running = c.running()
  const count = running.length
  const perNode = (a: number, b: number) => Math.round((a - b) / count / windowS)
  const sentByCategory = Object.fromEntries(
    CATEGORIES.map((cat, i) => [cat, perNode(after.sent[i]!, before.sent[i]!)]),
  ) as Record<Category, number>
  const connections = running.map((m) => m.node.connections.size)
  return {
    sentBytesPerNodePerSec: perNode(sum(after.sent), sum(before.sent)),
    receivedBytesPerNodePerSec: perNode(sum(after.received), sum(before.received)),
    sentByCategory,
    meanConnections: round(mean(connections)),
    maxConnections: Math.max(...connections),
  }
}

/** Bytes by category summed over the members running now (a crashed member's past traffic is left out). */
function snapshot(members: SimMember[]): { sent: number[]; received: number[] } {
  const sent = CATEGORIES.map(() => 0)
  const received = CATEGORIES.map(() => 0)
  for (const m of members) {
    if (m.stopped) continue
    for (let i = 0; i < CATEGORIES.length; i++) {
      sent[i]! += m.node.meter.sent[i]!
      received[i]! += m.node.meter.received[i]!
    }
  }
  return { sent, received }
}

function totalSent(members: SimMember[]): number {
  let total = 0
  for (const m of members) total += m.node.meter.total('sent')
  return total
}

function sumStats(parts: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {}
  for (const part of parts) {
    for (const [key, value] of Object.entries(part)) {
      total[key] = key === 'health' ? Math.max(total[key] ?? 0, value) : (total[key] ?? 0) + value
    }
  }
  return total
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)
const mean = (values: number[]) => (values.length === 0 ? 0 : sum(values) / values.length)

function median(values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

function wall(start: bigint): number {
  return round(Number(process.hrtime.bigint() - start) / 1e9)
}
