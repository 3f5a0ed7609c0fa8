/**
 * Issue 19's robustness campaign (`npm run bench -- scale-starved --size N --minutes M`):
 * N members on the real code (src/membership, `lan` timers) start one after another
 * (a rolling start) until every view lists all N alive; then, for M simulated
 * minutes:
 * - CPU starvation: 1 % of the members (at least 1) stall, 2 s at a time, at random
 *   moments (gaps between stalls exponential, mean 45 s): a stalled member runs
 *   nothing, and what was due or delivered meanwhile runs late, in order (clock.ts);
 * - 5 % packet loss on every link (each lost message waits a 200 ms retransmission);
 * - one-way loss: 1 % of other members (at least 1) each lose everything they send to
 *   one of their ring neighbours (a subject or an observer, at random) for 2-4
 *   minutes, then 30-120 s clear, then another neighbour, and so on; the first block
 *   starts within the first 2 minutes (network.ts `blockOneWay` models what TCP does).
 * Nobody crashes, so every dead verdict is false, and so is every suspicion. Counted:
 * dead verdicts (a view marking a member dead), suspicions raised by a member's own
 * failed probe (accuser and accused, starved or healthy), suspicions seen by views,
 * refutations, bytes and connections per member. Deterministic for a seed.
 */
import { ringNeighbours } from '../../src/membership/monitoring-rings.js'
import type { Logger } from '../../src/shared/logger.js'
import { mulberry32, shuffle } from '../random.js'
import { machine, round, source } from '../util.js'
import { SimCluster, type SimMember } from './cluster.js'
import type { WireCosts } from './costs.js'
import { CATEGORIES, type Category, type SimNode } from './network.js'

const PHASE_CAP_MS = 180_000
const SAMPLE_EVERY_MS = 5_000
const SAMPLE_LIMIT = 20
/** A suspicion of a starved member raised up to this long after one of its stalls ended counts as caused by it. */
const STALL_SHADOW_MS = 5_000
/** A suspicion between two members counts as over a one-way block while it lasts and this long after. */
const BLOCK_SHADOW_MS = 30_000
/** What a false dead verdict's timeline looks back over. */
const TIMELINE_MS = 60_000

export interface StarvedOptions {
  n: number
  /** Simulated minutes of the measured window. */
  minutes: number
  seed?: number
  costs?: WireCosts
  /** Members that stall: this share of N, at least 1 (or `starved`, a count). */
  starvedShare?: number
  starved?: number
  stallMs?: number
  /** Mean gap between two stalls of one member (exponential), seconds. */
  stallGapMeanS?: number
  /** Share of messages lost on every link during the window. */
  loss?: number
  /** Members that each block one direction to a ring neighbour at a time: this share of N, at least 1 (or `oneWay`). */
  oneWayShare?: number
  oneWay?: number
  /** How long one block lasts, seconds (uniform in the range). */
  blockS?: [number, number]
  /** How long the direction stays clear between two blocks, seconds (uniform; also the first block's start, up to twice this). */
  clearS?: [number, number]
  /** The rolling start's length (default 0.06 s per member, at least 3 s). */
  joinWindowS?: number
  /** Quiet time between convergence and the window, seconds. */
  settleS?: number
  /** libp2p's maxConnections (Shoal: 400). */
  maxConnections?: number
  log?: (line: string) => void
}

interface Stall {
  member: number
  start: number
  end: number
  /** Callbacks of the member that waited for the stall's end. */
  deferred: number
  /** Local health (Lifeguard) just after the stall: > 0 when backpressure noticed the late wake-up. */
  healthAfter: number | null
}

interface Block {
  from: number
  to: number
  start: number
  end: number
}

interface Accusation {
  accuser: number
  accused: number
  at: number
  refused: boolean
}

type Kind = 'starved' | 'healthy'

export interface StarvedResult {
  suite: 'scale-starved'
  n: number
  minutes: number
  seed: number
  preset: 'lan'
  settings: Record<string, unknown>
  wallS: number
  wall: { joinS: number; windowS: number; perSimulatedMinuteS: number }
  events: number
  converge: { joinWindowS: number; completeViewsAfterJoinsMs: number | null }
  /** Every dead verdict is false here (nobody crashes). `verdicts`: view-level member:dead events. */
  falseDead: {
    verdicts: number
    members: number
    listedDeadAtEnd: number
    /** The most (view, member) pairs listed dead at one sample (every 5 s). */
    maxListedDeadAtOnce: number
    beforeWindow: number
    timelines: unknown[]
  }
  suspicions: {
    /** Suspicions raised (or confirmed) by a member's own failed probe, in the window. */
    raised: {
      total: number
      refused: number
      byAccused: Record<Kind, number>
      byAccuser: Record<Kind, number>
      byPair: Record<`${Kind}->${Kind}`, number>
      /** Of the starved accused: raised during one of its stalls or within STALL_SHADOW_MS after. */
      starvedAccusedAroundStall: number
      /** Raised across a pair with a one-way block (either direction), during it or soon after. */
      overOneWayBlock: number
      /** Healthy accused, healthy accuser, no block between them: loss alone (or a stalled helper). */
      healthyUnexplained: number
      samples: unknown[]
    }
    /** member:suspect events in views (each view that learnt a suspicion), in the window. */
    seenByViews: { total: number; byAccused: Record<Kind, number>; beforeWindow: number }
    /**
     * How long a view held a member suspect before listing it alive again, ms
     * (count, median, p99, max), by the suspect's kind, and (`byView`) by the kind of
     * the member holding the view (a starved view's refutations wait out its own
     * stalls); against lan's stallTolerance (4 s), the least a suspicion without a
     * refused dial lasts before a dead verdict.
     */
    viewSuspectMs: Record<Kind, Spread> & { byView: Record<Kind, Spread> }
    /** (view, member) pairs still suspect at the end. */
    stillSuspectAtEnd: number
    /** Distinct members suspected at least once in the window. */
    membersSuspected: Record<Kind, number>
    beforeWindow: number
  }
  refutations: { total: number; byStarved: number; byHealthy: number }
  stalls: {
    members: number[]
    count: number
    stalledS: number
    /** Stalls during which the member had nothing due (should be 0: its timers tick every probe interval). */
    withNothingDeferred: number
    deferredCallbacks: number
    healthAfterStall: { min: number | null; median: number | null; max: number | null }
    /** Sends, log lines and view events of a member while stalled (must be 0: a stalled member runs nothing). */
    ranWhileStalled: number
    inconclusiveProbesByStarved: number
  }
  oneWay: {
    members: number[]
    blocks: number
    blockedS: number
    pairs: Array<{ from: number; to: number; startS: number; endS: number }>
    heldMessages: number
    dialsLost: number
  }
  traffic: {
    sentBytesPerMemberPerSec: number
    receivedBytesPerMemberPerSec: number
    sentByCategory: Record<Category, number>
    starvedSentBytesPerSec: number | null
    healthySentBytesPerSec: number
  }
  connections: { mean: number; max: number; meanAtEnd: number; maxAtEnd: number }
  stats: Record<string, number>
  network: Record<string, number>
  series: Array<{
    atMin: number
    raised: number
    seenByViews: number
    dead: number
    refutations: number
    /** Gossip messages members published (their own: accusations, refutations, announcements). */
    gossipPublished: number
    /**
     * Gossip messages members received (first copies and duplicates): about N x the
     * mesh degree per publication, more when old messages spread again (a copy held
     * behind a one-way block for longer than the 2-minute seen cache is news again).
     */
    gossipReceived: number
    sentBytesPerMemberPerSec: number
    sentByCategory: Record<Category, number>
    meanConnections: number
    wallS: number
  }>
  notes: string[]
}

export async function runStarved(options: StarvedOptions): Promise<StarvedResult> {
  const { n, minutes } = options
  const seed = options.seed ?? 1
  const stallMs = options.stallMs ?? 2_000
  const stallGapMeanS = options.stallGapMeanS ?? 45
  const loss = options.loss ?? 0.05
  const blockS = options.blockS ?? [120, 240]
  const clearS = options.clearS ?? [30, 120]
  const joinWindowS = options.joinWindowS ?? Math.max(3, round(n * 0.06))
  const settleS = options.settleS ?? 10
  const starvedCount = options.starved ?? Math.max(1, Math.round(n * (options.starvedShare ?? 0.01)))
  const oneWayCount = options.oneWay ?? Math.max(1, Math.round(n * (options.oneWayShare ?? 0.01)))
  if (starvedCount + oneWayCount > n) throw new Error('more starved and one-way members than members')
  const log = options.log ?? (() => {})
  const wallStart = process.hrtime.bigint()
  const random = mulberry32(seed ^ 0x2545f491)
  const between = ([lo, hi]: [number, number]) => lo + (hi - lo) * random()

  const starved = new Set<number>()
  const oneWay = new Set<number>()
  const order = shuffle(
    random,
    Array.from({ length: n }, (_, i) => i),
  )
  for (const i of order.slice(0, starvedCount)) starved.add(i)
  for (const i of order.slice(starvedCount, starvedCount + oneWayCount)) oneWay.add(i)
  const kind = (index: number): Kind => (starved.has(index) ? 'starved' : 'healthy')

  let windowStart = Number.POSITIVE_INFINITY
  const inWindow = (at: number) => at >= windowStart
  const stalls: Stall[] = []
  const blocks: Block[] = []
  const accusations: Accusation[] = []
  const refutations = new Map<number, number>()
  const deadVerdicts: Array<{ observer: number; target: number; at: number }> = []
  let suspectEventsBefore = 0
  let raisedBefore = 0
  const seen = { total: 0, byAccused: { starved: 0, healthy: 0 } as Record<Kind, number> }
  let ranWhileStalled = 0

  const c = new SimCluster({
    seed,
    cluster: `starved-${n}`,
    preset: 'lan',
    ...(options.costs == null ? {} : { costs: options.costs }),
    maxConnections: options.maxConnections ?? 400,
    logger: (index, node) => memberLogger(index, node),
  })
  const indexOf = new Map<string, number>()
  // How long each view held a member suspect (from its suspect event until it lists it
  // alive again): the margin left before a suspicion timer would have declared it dead.
  const suspectSince = new Map<string, number>()
  const suspectMs: Record<Kind, number[]> = { starved: [], healthy: [] }
  const suspectMsByView: Record<Kind, number[]> = { starved: [], healthy: [] }
  const cleared = (observer: number, id: string) => {
    const key = `${observer} ${id}`
    const since = suspectSince.get(key)
    if (since == null) return
    suspectSince.delete(key)
    const target = indexOf.get(id)
    if (target == null || !inWindow(since)) return
    suspectMs[kind(target)].push(c.now - since)
    suspectMsByView[kind(observer)].push(c.now - since)
  }
  c.onMemberAdded = (m) => {
    indexOf.set(m.id, m.index)
    const alive = (x: { id: string; state: string }) => {
      if (x.state === 'alive') cleared(m.index, x.id)
    }
    m.membership.events.on('member:update', alive)
    m.membership.events.on('member:join', alive)
  }
  const stalled = (node: SimNode) => c.clock.isStalled(node)

  // What each member's Membership logs: its own accusations and refutations.
  function memberLogger(index: number, node: SimNode): Logger {
    const logger: Logger = {
      debug: () => {
        if (stalled(node)) ranWhileStalled++
      },
      info: (message, fields) => {
        if (stalled(node)) ranWhileStalled++
        if (message === 'member suspected') {
          const accused = indexOf.get(String(fields?.member))
          if (accused == null) return
          if (!inWindow(c.now)) raisedBefore++
          else accusations.push({ accuser: index, accused, at: c.now, refused: fields?.refused === true })
        } else if (message === 'refuted a claim about this node' && inWindow(c.now)) {
          refutations.set(index, (refutations.get(index) ?? 0) + 1)
        }
      },
      warn: () => {},
      error: () => {},
      child: () => logger,
    }
    return logger
  }

  c.onAccusation = (a) => {
    const observer = c.members[a.observer]
    if (observer != null && stalled(observer.node)) ranWhileStalled++
    const target = indexOf.get(a.target)
    if (target == null) return
    if (a.event === 'dead') {
      deadVerdicts.push({ observer: a.observer, target, at: a.at })
      cleared(a.observer, a.target)
      return
    }
    const key = `${a.observer} ${a.target}`
    if (!suspectSince.has(key)) suspectSince.set(key, a.at)
    if (!inWindow(a.at)) {
      suspectEventsBefore++
      return
    }
    seen.total++
    seen.byAccused[kind(target)]++
  }

  const notes: string[] = []
  const series: StarvedResult['series'] = []
  const connectionSamples: number[] = []
  let connectionMax = 0
  let maxListedDeadAtOnce = 0
  let joinWallS = 0
  let completeViewsAfterJoinsMs: number | null = null
  let before = snapshot([])
  let after = before
  c.install()
  try {
    // 1. A rolling start: one member after another, each through a random member already in.
    await c.add()
    await c.run(100)
    const gap = (joinWindowS * 1000) / Math.max(1, n - 1)
    for (let j = 1; j < n; j++) {
      const through = c.members[Math.floor(random() * c.members.length)]!
      void c.addAt(j, [through.addr])
      await c.run(gap)
      if (j % 100 === 0)
        log(`N = ${n}: ${j + 1} members started at ${round(c.now / 1000)} s, wall ${wall(wallStart)} s`)
    }
    completeViewsAfterJoinsMs = await c.until(
      () => c.members.length === n && c.members.every((m) => m.alive === n),
      {
        capMs: PHASE_CAP_MS,
        everyMs: 100,
      },
    )
    if (completeViewsAfterJoinsMs == null)
      notes.push(`views not complete ${PHASE_CAP_MS / 1000} s after the last start`)
    log(
      `N = ${n}: views complete ${completeViewsAfterJoinsMs} ms after the last start, wall ${wall(wallStart)} s`,
    )
    await c.run(settleS * 1000)
    joinWallS = wall(wallStart)

    // 2. The window: stalls, loss on every link, one-way blocks.
    windowStart = c.now
    const windowEnd = windowStart + minutes * 60_000
    c.world.setLoss(loss)
    before = snapshot(c.members)
    const scheduleStall = (member: SimMember, from: number) => {
      const at = from + -Math.log(1 - random()) * stallGapMeanS * 1000
      if (at + stallMs > windowEnd) return
      c.clock.schedule(
        at - c.now,
        () => {
          const stall: Stall = {
            member: member.index,
            start: c.now,
            end: c.now + stallMs,
            deferred: -(c.clock.deferred.get(member.node) ?? 0),
            healthAfter: null,
          }
          stalls.push(stall)
          c.clock.stall(member.node, stallMs)
          // Just after the stall's backlog has run: what the member's own lateness measure made of it.
          c.clock.schedule(
            stallMs + 1,
            () => {
              stall.deferred += c.clock.deferred.get(member.node) ?? 0
              stall.healthAfter = member.membership.stats().health
            },
            [],
            null,
            null,
          )
          scheduleStall(member, stall.end)
        },
        [],
        null,
        null,
      )
    }
    for (const i of starved) scheduleStall(c.members[i]!, windowStart)

    const ids = c.members.map((m) => m.id)
    const scheduleBlock = (member: SimMember, at: number) => {
      if (at >= windowEnd) return
      c.clock.schedule(
        at - c.now,
        () => {
          const { subjects, observers } = ringNeighbours(ids, member.id)
          const neighbours = [...new Set([...subjects, ...observers])]
          const to = c.members[indexOf.get(neighbours[Math.floor(random() * neighbours.length)]!)!]!
          const ms = Math.min(between(blockS) * 1000, windowEnd - c.now)
          blocks.push({ from: member.index, to: to.index, start: c.now, end: c.now + ms })
          c.world.blockOneWay(member.node, to.node, ms)
          scheduleBlock(member, c.now + ms + between(clearS) * 1000)
        },
        [],
        null,
        null,
      )
    }
    for (const i of oneWay) scheduleBlock(c.members[i]!, windowStart + 2 * between(clearS) * 1000)

    const sample = () => {
      const counts = c.members.map((m) => m.node.connections.size)
      connectionSamples.push(mean(counts))
      connectionMax = Math.max(connectionMax, ...counts)
      // (view, member) pairs listed dead now: only worth a scan once there was a verdict.
      if (deadVerdicts.length === 0) return
      let listed = 0
      for (const m of c.members) for (const state of m.states.values()) if (state === 'dead') listed++
      maxListedDeadAtOnce = Math.max(maxListedDeadAtOnce, listed)
    }
    const sampler = c.clock.schedule(SAMPLE_EVERY_MS, sample, [], SAMPLE_EVERY_MS, null)
    const counts = () => ({
      at: c.now,
      snap: snapshot(c.members),
      raised: accusations.length,
      seen: seen.total,
      dead: deadVerdicts.length,
      refuted: sumArray([...refutations.values()]),
      published: sumArray(c.members.map((m) => m.node.pubsub.stats.published)),
      received: sumArray(
        c.members.map((m) => m.node.pubsub.stats.delivered + m.node.pubsub.stats.duplicates),
      ),
    })
    let last = counts()
    for (let minute = 1; minute <= minutes; minute++) {
      await c.run(windowStart + minute * 60_000 - c.now)
      const now = counts()
      const perMember = (a: number, b: number) => Math.round((a - b) / n / ((now.at - last.at) / 1000))
      const row = {
        atMin: minute,
        raised: now.raised - last.raised,
        seenByViews: now.seen - last.seen,
        dead: now.dead - last.dead,
        refutations: now.refuted - last.refuted,
        gossipPublished: now.published - last.published,
        gossipReceived: now.received - last.received,
        sentBytesPerMemberPerSec: perMember(sumArray(now.snap.sent), sumArray(last.snap.sent)),
        sentByCategory: Object.fromEntries(
          CATEGORIES.map((cat, i) => [cat, perMember(now.snap.sent[i]!, last.snap.sent[i]!)]),
        ) as Record<Category, number>,
        meanConnections: round(mean(c.members.map((m) => m.node.connections.size))),
        wallS: wall(wallStart),
      }
      series.push(row)
      last = now
      log(`N = ${n}: minute ${minute}/${minutes}: ${JSON.stringify(row)}`)
    }
    c.clock.cancel(sampler)
    after = snapshot(c.members)
  } catch (err) {
    notes.push(`aborted: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  }
  const windowWallS = round(wall(wallStart) - joinWallS)

  // Views listing a member dead at the end (every member is alive).
  let listedDeadAtEnd = 0
  for (const m of c.members)
    for (const record of m.membership.members()) if (record.state === 'dead') listedDeadAtEnd++
  const stats = sumStats(c.members.map((m) => ({ ...m.membership.stats() })))
  const inconclusiveProbesByStarved = [...starved].reduce(
    (total, i) => total + (c.members[i]?.membership.stats().inconclusiveProbes ?? 0),
    0,
  )
  const events = c.clock.fired
  if (c.clock.errors.size > 0) notes.push(`timer callbacks threw: ${JSON.stringify([...c.clock.errors])}`)
  const network = { ...c.world.totals }
  await c.close()

  // Dead verdicts: a timeline for each member declared dead.
  const windowDead = deadVerdicts.filter((d) => inWindow(d.at))
  const deadTargets = [...new Set(windowDead.map((d) => d.target))]
  const since = (at: number) => round((at - windowStart) / 1000, 2)
  const timelines = deadTargets.slice(0, SAMPLE_LIMIT).map((target) => {
    const verdicts = windowDead.filter((d) => d.target === target)
    const firstAt = verdicts[0]!.at
    const near = (at: number) => at >= firstAt - TIMELINE_MS && at <= firstAt + 10_000
    return {
      member: target,
      kind: kind(target),
      oneWayMember: oneWay.has(target),
      firstVerdictS: since(firstAt),
      verdicts: verdicts.map((d) => ({
        observer: d.observer,
        observerKind: kind(d.observer),
        atS: since(d.at),
      })),
      accusations: accusations
        .filter((a) => a.accused === target && near(a.at))
        .map((a) => ({
          accuser: a.accuser,
          accuserKind: kind(a.accuser),
          atS: since(a.at),
          refused: a.refused,
        })),
      stalls: stalls
        .filter((s) => s.member === target && near(s.end))
        .map((s) => ({ startS: since(s.start), endS: since(s.end) })),
      blocks: blocks
        .filter(
          (b) =>
            (b.from === target || b.to === target) && b.start <= firstAt && b.end >= firstAt - TIMELINE_MS,
        )
        .map((b) => ({ from: b.from, to: b.to, startS: since(b.start), endS: since(b.end) })),
      refutationsInWindow: refutations.get(target) ?? 0,
    }
  })

  // Suspicions raised by probes, by who accused whom and why.
  const aroundStall = (a: Accusation) =>
    stalls.some((s) => s.member === a.accused && a.at >= s.start && a.at <= s.end + STALL_SHADOW_MS)
  const overBlock = (a: Accusation) =>
    blocks.some(
      (b) =>
        ((b.from === a.accuser && b.to === a.accused) || (b.from === a.accused && b.to === a.accuser)) &&
        a.at >= b.start &&
        a.at <= b.end + BLOCK_SHADOW_MS,
    )
  const byPair = {
    'starved->starved': 0,
    'starved->healthy': 0,
    'healthy->starved': 0,
    'healthy->healthy': 0,
  }
  const byAccused = { starved: 0, healthy: 0 }
  const byAccuser = { starved: 0, healthy: 0 }
  let starvedAccusedAroundStall = 0
  let overOneWayBlock = 0
  let healthyUnexplained = 0
  const unexplained: Accusation[] = []
  for (const a of accusations) {
    byAccused[kind(a.accused)]++
    byAccuser[kind(a.accuser)]++
    byPair[`${kind(a.accuser)}->${kind(a.accused)}`]++
    if (kind(a.accused) === 'starved' && aroundStall(a)) starvedAccusedAroundStall++
    if (overBlock(a)) overOneWayBlock++
    else if (kind(a.accused) === 'healthy' && kind(a.accuser) === 'healthy') {
      healthyUnexplained++
      unexplained.push(a)
    }
  }
  const suspected = { starved: new Set<number>(), healthy: new Set<number>() }
  for (const a of accusations) suspected[kind(a.accused)].add(a.accused)
  const refutationsBy = (k: Kind) =>
    [...refutations].filter(([i]) => kind(i) === k).reduce((total, [, count]) => total + count, 0)
  const health = stalls.map((s) => s.healthAfter).filter((h): h is number => h != null)
  const windowS = minutes * 60
  const sentIn = (filter: (i: number) => boolean) => {
    let total = 0
    for (let i = 0; i < n; i++)
      if (filter(i)) total += sumArray(after.perMember[i] ?? []) - sumArray(before.perMember[i] ?? [])
    return total
  }
  const endCounts = after.connections

  const result: StarvedResult = {
    suite: 'scale-starved',
    n,
    minutes,
    seed,
    preset: 'lan',
    settings: {
      starvedMembers: starvedCount,
      stallMs,
      stallGapMeanS,
      loss,
      retransmitMs: 200,
      oneWayMembers: oneWayCount,
      blockS,
      clearS,
      joinWindowS,
      settleS,
      maxConnections: options.maxConnections ?? 400,
      latencyMs: [1, 5],
    },
    wallS: wall(wallStart),
    wall: { joinS: joinWallS, windowS: windowWallS, perSimulatedMinuteS: round(windowWallS / minutes) },
    events,
    converge: { joinWindowS, completeViewsAfterJoinsMs },
    falseDead: {
      verdicts: windowDead.length,
      members: deadTargets.length,
      listedDeadAtEnd,
      maxListedDeadAtOnce,
      beforeWindow: deadVerdicts.length - windowDead.length,
      timelines,
    },
    suspicions: {
      raised: {
        total: accusations.length,
        refused: accusations.filter((a) => a.refused).length,
        byAccused,
        byAccuser,
        byPair,
        starvedAccusedAroundStall,
        overOneWayBlock,
        healthyUnexplained,
        samples: unexplained.slice(0, SAMPLE_LIMIT).map((a) => ({
          accuser: a.accuser,
          accused: a.accused,
          atS: since(a.at),
          refused: a.refused,
        })),
      },
      seenByViews: { ...seen, beforeWindow: suspectEventsBefore },
      viewSuspectMs: {
        starved: spread(suspectMs.starved),
        healthy: spread(suspectMs.healthy),
        byView: { starved: spread(suspectMsByView.starved), healthy: spread(suspectMsByView.healthy) },
      },
      stillSuspectAtEnd: suspectSince.size,
      membersSuspected: { starved: suspected.starved.size, healthy: suspected.healthy.size },
      beforeWindow: raisedBefore,
    },
    refutations: {
      total: refutationsBy('starved') + refutationsBy('healthy'),
      byStarved: refutationsBy('starved'),
      byHealthy: refutationsBy('healthy'),
    },
    stalls: {
      members: [...starved].sort((a, b) => a - b),
      count: stalls.length,
      stalledS: round((stalls.length * stallMs) / 1000),
      withNothingDeferred: stalls.filter((s) => s.deferred <= 0).length,
      deferredCallbacks: stalls.reduce((total, s) => total + Math.max(0, s.deferred), 0),
      healthAfterStall: {
        min: health.length === 0 ? null : Math.min(...health),
        median: median(health),
        max: health.length === 0 ? null : Math.max(...health),
      },
      ranWhileStalled: ranWhileStalled + network.sentWhileStalled,
      inconclusiveProbesByStarved,
    },
    oneWay: {
      members: [...oneWay].sort((a, b) => a - b),
      blocks: blocks.length,
      blockedS: round(blocks.reduce((total, b) => total + (b.end - b.start), 0) / 1000),
      pairs: blocks.map((b) => ({ from: b.from, to: b.to, startS: since(b.start), endS: since(b.end) })),
      heldMessages: network.heldByOneWayLoss,
      dialsLost: network.dialsLostToOneWayLoss,
    },
    traffic: {
      sentBytesPerMemberPerSec: Math.round((sumArray(after.sent) - sumArray(before.sent)) / n / windowS),
      receivedBytesPerMemberPerSec: Math.round(
        (sumArray(after.received) - sumArray(before.received)) / n / windowS,
      ),
      sentByCategory: Object.fromEntries(
        CATEGORIES.map((cat, i) => [cat, Math.round((after.sent[i]! - before.sent[i]!) / n / windowS)]),
      ) as Record<Category, number>,
      starvedSentBytesPerSec:
        starvedCount === 0 ? null : Math.round(sentIn((i) => starved.has(i)) / starvedCount / windowS),
      healthySentBytesPerSec: Math.round(sentIn((i) => !starved.has(i)) / (n - starvedCount) / windowS),
    },
    connections: {
      mean: round(mean(connectionSamples)),
      max: connectionMax,
      meanAtEnd: round(mean(endCounts)),
      maxAtEnd: endCounts.length === 0 ? 0 : Math.max(...endCounts),
    },
    stats,
    network,
    series,
    notes,
  }
  return result
}

/**
 * The `scale-starved` suite: the baseline (the same members, seed and start, then
 * `baselineMinutes` with no stall, no loss and no one-way block), then the campaign,
 * each in a child process (its own heap and clock; by hand:
 * `node dist/bench/scale/sim-process.js '{"starved":{"n":100,"minutes":5}}'`), with
 * the machine and the code they ran, and the two compared over the baseline's minutes.
 */
export async function runScaleStarved(options: {
  n: number
  minutes: number
  seed: number
  baselineMinutes: number
}) {
  const began = Date.now()
  const { simulate } = await import('./index.js')
  const { baselineMinutes, ...campaign } = options
  const baseline =
    baselineMinutes > 0
      ? await simulate<StarvedResult>({
          starved: { ...campaign, minutes: baselineMinutes, starved: 0, oneWay: 0, loss: 0 },
        })
      : null
  const result = await simulate<StarvedResult>({ starved: campaign })
  const firstMinutes = (r: StarvedResult, pick: (row: StarvedResult['series'][number]) => number) =>
    round(mean(r.series.slice(0, baselineMinutes).map(pick)))
  const report = {
    ...result,
    baseline:
      baseline == null
        ? null
        : {
            minutes: baseline.minutes,
            wallS: baseline.wallS,
            falseDead: baseline.falseDead.verdicts,
            suspicionsRaised: baseline.suspicions.raised.total,
            traffic: baseline.traffic,
            connections: baseline.connections,
            series: baseline.series,
          },
    /** The campaign's first `baselineMinutes` minutes against the baseline's (same start). */
    comparison:
      baseline == null
        ? null
        : {
            minutes: baseline.minutes,
            sentBytesPerMemberPerSec: {
              campaign: firstMinutes(result, (row) => row.sentBytesPerMemberPerSec),
              baseline: firstMinutes(baseline, (row) => row.sentBytesPerMemberPerSec),
            },
            meanConnectionsAtEnd: {
              campaign: result.series[baseline.minutes - 1]?.meanConnections ?? null,
              baseline: baseline.series.at(-1)?.meanConnections ?? null,
            },
          },
    date: new Date(began).toISOString(),
    durationS: Math.round((Date.now() - began) / 1000),
    machine: machine(),
    source: source(),
  }
  const against =
    report.comparison == null
      ? ''
      : `\nbaseline (${report.comparison.minutes} min, no stall, loss or block): ` +
        `${report.comparison.sentBytesPerMemberPerSec.baseline} B/s per member against the campaign's ` +
        `${report.comparison.sentBytesPerMemberPerSec.campaign} over the same minutes; connections ` +
        `${report.comparison.meanConnectionsAtEnd.baseline} against ${report.comparison.meanConnectionsAtEnd.campaign}; ` +
        `false dead ${baseline?.falseDead.verdicts}, suspicions ${baseline?.suspicions.raised.total}`
  return { report, text: starvedSummary(result) + against }
}

/** A one-paragraph summary of a result, for the console. */
export function starvedSummary(r: StarvedResult): string {
  const s = r.suspicions.raised
  return [
    `N = ${r.n}, ${r.minutes} simulated min, seed ${r.seed}: wall ${r.wallS} s (join ${r.wall.joinS} s, ${r.wall.perSimulatedMinuteS} s per simulated minute)`,
    `false dead verdicts: ${r.falseDead.verdicts} (members ${r.falseDead.members}, listed dead at end ${r.falseDead.listedDeadAtEnd})`,
    `suspicions raised by probes: ${s.total} (accused starved ${s.byAccused.starved} [${s.starvedAccusedAroundStall} around a stall], healthy ${s.byAccused.healthy}; accusers starved ${s.byAccuser.starved}, healthy ${s.byAccuser.healthy}; over a one-way block ${s.overOneWayBlock}; healthy->healthy otherwise ${s.healthyUnexplained})`,
    `suspicions seen by views: ${r.suspicions.seenByViews.total} (of starved ${r.suspicions.seenByViews.byAccused.starved}, of healthy ${r.suspicions.seenByViews.byAccused.healthy}); refutations ${r.refutations.total} (starved ${r.refutations.byStarved}, healthy ${r.refutations.byHealthy})`,
    `a view held a starved member suspect ${fmt(r.suspicions.viewSuspectMs.starved)} ms, a healthy one ${fmt(r.suspicions.viewSuspectMs.healthy)} ms (median/p99/max); starved views ${fmt(r.suspicions.viewSuspectMs.byView.starved)}, healthy views ${fmt(r.suspicions.viewSuspectMs.byView.healthy)}`,
    `stalls: ${r.stalls.count} on ${r.stalls.members.length} members, health after a stall min/median/max ${r.stalls.healthAfterStall.min}/${r.stalls.healthAfterStall.median}/${r.stalls.healthAfterStall.max}, ran while stalled ${r.stalls.ranWhileStalled}`,
    `one-way blocks: ${r.oneWay.blocks} (${r.oneWay.blockedS} s), messages held ${r.oneWay.heldMessages}, dials lost ${r.oneWay.dialsLost}`,
    `traffic: ${r.traffic.sentBytesPerMemberPerSec} B/s sent per member (starved ${r.traffic.starvedSentBytesPerSec}, healthy ${r.traffic.healthySentBytesPerSec}); connections mean ${r.connections.mean}, max ${r.connections.max}`,
  ].join('\n')
}

const fmt = (s: { median: number | null; p99: number | null; max: number | null }) =>
  `${s.median ?? '-'}/${s.p99 ?? '-'}/${s.max ?? '-'}`

/** Bytes sent and received by category over `members`, and each member's sent bytes and connections. */
function snapshot(members: SimMember[]) {
  const sent = CATEGORIES.map(() => 0)
  const received = CATEGORIES.map(() => 0)
  const perMember: number[][] = []
  for (const m of members) {
    perMember[m.index] = [...m.node.meter.sent]
    for (let i = 0; i < CATEGORIES.length; i++) {
      sent[i]! += m.node.meter.sent[i]!
      received[i]! += m.node.meter.received[i]!
    }
  }
  return { sent, received, perMember, connections: members.map((m) => m.node.connections.size) }
}

function sumStats(parts: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {}
  for (const part of parts)
    for (const [key, value] of Object.entries(part))
      total[key] = key === 'health' ? Math.max(total[key] ?? 0, value) : (total[key] ?? 0) + value
  return total
}

const sumArray = (values: number[]) => values.reduce((a, b) => a + b, 0)
const mean = (values: number[]) => (values.length === 0 ? 0 : sumArray(values) / values.length)

interface Spread {
  count: number
  median: number | null
  p99: number | null
  max: number | null
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) =>
    sorted.length === 0 ? null : Math.round(sorted[Math.floor(q * (sorted.length - 1))]!)
  return { count: sorted.length, median: at(0.5), p99: at(0.99), max: at(1) }
}

function median(values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function wall(start: bigint): number {
  return round(Number(process.hrtime.bigint() - start) / 1e9)
}
