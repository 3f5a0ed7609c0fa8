/**
 * Watches the membership views of agent processes through their APIs: each
 * watched agent's `GET /api/members` is polled on its own schedule (staggered,
 * one request in flight per agent, stamped on receipt), and every time an
 * observer lists a member `suspect` or `dead` that it should not is recorded,
 * with when it was first and last seen.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { MemberState } from '../src/membership/index.js'

type Verdict = 'suspect' | 'dead'

/** One observer listing one member suspect or dead, over consecutive polls or not. */
export interface Sighting {
  observer: string
  target: string
  state: Verdict
  /** ms since the watch began: first and last poll that showed it. */
  firstMs: number
  lastMs: number
  polls: number
}

export interface PollStats {
  ok: number
  failed: number
  /** Slowest answer, ms: an agent whose event loop is late answers late. */
  maxLatencyMs: number
}

/** Per observer, ms: its first poll listing the member suspect (or dead), dead, and when the last poll before that was sent. */
interface Tracked {
  suspect: Map<string, number>
  dead: Map<string, number>
  /** Sent time of the last poll that did not list it dead: the verdict came after it. */
  notDeadYet: Map<string, number>
}

interface Entry {
  state: MemberState
  incarnation: number
}

export interface WatchInit {
  /** performance.now() the times count from. */
  since: number
  everyMs: number
  /** An answer later than this counts as a failed poll. */
  timeoutMs?: number
}

export class VerdictWatch {
  /** Latest view of each observer: member id → state and incarnation. */
  private readonly views = new Map<string, Map<string, Entry>>()
  /** For each observed member, per observer: ms of the first poll that listed it suspect (or dead), and dead. */
  private readonly firstSeen = new Map<string, Tracked>()
  private readonly sightings = new Map<string, Sighting>()
  private readonly excused = new Map<string, Set<Verdict>>()
  private readonly loops = new Map<string, AbortController>()
  private readonly pollStats = new Map<string, PollStats>()
  private readonly running = new Set<Promise<void>>()

  constructor(private readonly init: WatchInit) {}

  /** Starts polling an agent, `offsetMs` into the first interval (so that polls spread over it). */
  watch(agent: { id: string; api: string }, offsetMs = 0): void {
    this.unwatch(agent.id)
    const stop = new AbortController()
    this.loops.set(agent.id, stop)
    const loop = this.poll(agent, offsetMs, stop.signal).finally(() => this.running.delete(loop))
    this.running.add(loop)
  }

  /** Stops polling an agent (its last view is kept). */
  unwatch(id: string): void {
    this.loops.get(id)?.abort()
    this.loops.delete(id)
  }

  /** Watches each agent, their first polls spread evenly over one interval. */
  watchAll(agents: Array<{ id: string; api: string }>): void {
    for (const [i, agent] of agents.entries()) this.watch(agent, (i * this.init.everyMs) / agents.length)
  }

  /** Records, per observer, when it first listed `target` suspect and dead (`seen`). */
  track(target: string): void {
    this.firstSeen.set(
      target,
      this.firstSeen.get(target) ?? { suspect: new Map(), dead: new Map(), notDeadYet: new Map() },
    )
  }

  /** Tracks `target` in these states (a member killed, or restarting) but not as a false verdict. */
  excuse(target: string, states: Verdict[]): void {
    this.excused.set(target, new Set(states))
    this.track(target)
  }

  /** Stops every poll and waits for those in flight. */
  async stop(): Promise<void> {
    for (const id of [...this.loops.keys()]) this.unwatch(id)
    await Promise.all([...this.running])
  }

  /** Whether every observer in `observers` last listed every member of `members` alive (and nothing else not alive). */
  allAlive(observers: string[], members: string[]): boolean {
    return observers.every((o) => {
      const view = this.views.get(o)
      return view != null && members.every((id) => view.get(id)?.state === 'alive')
    })
  }

  /** Per observer: ms since the watch began of its first poll listing `target` dead (or suspect or dead). */
  seen(target: string, state: Verdict): Map<string, number> {
    return this.firstSeen.get(target)?.[state] ?? new Map()
  }

  /** Per observer: when the last poll that still did not list `target` dead was sent (a lower bound of the verdict). */
  notDeadYet(target: string): Map<string, number> {
    return this.firstSeen.get(target)?.notDeadYet ?? new Map()
  }

  /** How the observers last listed `target`: state → observers. */
  lastStates(observers: string[], target: string): Record<string, number> {
    const out: Record<string, number> = {}
    for (const o of observers) {
      const state = this.views.get(o)?.get(target)?.state ?? 'absent'
      out[state] = (out[state] ?? 0) + 1
    }
    return out
  }

  /** The highest incarnation of `target` any observer listed. */
  incarnation(target: string): number | null {
    let best: number | null = null
    for (const view of this.views.values()) {
      const entry = view.get(target)
      if (entry != null && (best == null || entry.incarnation > best)) best = entry.incarnation
    }
    return best
  }

  /** Every sighting of a member suspect or dead that was not excused, in order of first seen. */
  falseVerdicts(): Sighting[] {
    return [...this.sightings.values()].sort((a, b) => a.firstMs - b.firstMs)
  }

  stats(): Map<string, PollStats> {
    return this.pollStats
  }

  private async poll(agent: { id: string; api: string }, offsetMs: number, signal: AbortSignal) {
    await sleep(offsetMs, undefined, { signal }).catch(() => {})
    const stats = { ok: 0, failed: 0, maxLatencyMs: 0 }
    this.pollStats.set(agent.id, this.pollStats.get(agent.id) ?? stats)
    const counted = this.pollStats.get(agent.id)!
    while (!signal.aborted) {
      const sent = performance.now()
      try {
        const res = await fetch(`${agent.api}/api/members`, {
          signal: AbortSignal.timeout(this.init.timeoutMs ?? 1000),
        })
        const members = (await res.json()) as Array<{ id: string; state: MemberState; incarnation: number }>
        const now = performance.now()
        counted.ok++
        counted.maxLatencyMs = Math.max(counted.maxLatencyMs, Math.round(now - sent))
        if (!signal.aborted)
          this.record(
            agent.id,
            members,
            Math.round(now - this.init.since),
            Math.round(sent - this.init.since),
          )
      } catch {
        counted.failed++
      }
      const wait = this.init.everyMs - (performance.now() - sent)
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {})
    }
  }

  private record(
    observer: string,
    members: Array<{ id: string; state: MemberState; incarnation: number }>,
    atMs: number,
    sentMs: number,
  ) {
    const view = new Map<string, Entry>()
    for (const m of members) {
      view.set(m.id, { state: m.state, incarnation: m.incarnation })
      const first = this.firstSeen.get(m.id)
      if (first != null && m.state !== 'dead' && !first.dead.has(observer))
        first.notDeadYet.set(observer, sentMs)
      if (m.id === observer || (m.state !== 'suspect' && m.state !== 'dead')) continue
      if (first != null) {
        if (!first.suspect.has(observer)) first.suspect.set(observer, atMs)
        if (m.state === 'dead' && !first.dead.has(observer)) first.dead.set(observer, atMs)
      }
      if (this.excused.get(m.id)?.has(m.state)) continue
      const key = `${observer} ${m.id} ${m.state}`
      const sighting = this.sightings.get(key)
      if (sighting == null)
        this.sightings.set(key, {
          observer,
          target: m.id,
          state: m.state,
          firstMs: atMs,
          lastMs: atMs,
          polls: 1,
        })
      else {
        sighting.lastMs = atMs
        sighting.polls++
      }
    }
    this.views.set(observer, view)
  }
}
