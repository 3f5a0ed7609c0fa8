/**
 * The fleet a rollout moves, for the rollout simulation (rollout-simulation.ts):
 * simulated app nodes with a runtime each, and the membership view every
 * manager process keeps of them.
 *
 * An app node follows the cluster state the way an agent does, late: now and
 * then it reads the state some voter has applied (a committed prefix of the log;
 * the newest it has seen wins, as the cluster-state store keeps the newest) and
 * switches to the version that state targets for it (targetOf). A switch is the
 * runtime's (src/runtime/runtime.ts): `installing` (the old version still
 * serves), `switching` (the new one starts beside it: not ready), then `done` on
 * the new version, or `failed` (an install refused, or a component that fails).
 * Its runtime announcement (distribution, components, runtime, ready) reaches
 * each manager process by gossip, late, lost or reordered like any message; a
 * view declares a node suspect, then dead, after a silence, as SWIM would.
 */

import type { ClusterState } from '../../src/manager/record.js'
import { targetOf } from '../../src/manager/record.js'
import { isFinished } from '../../src/manager/rollout-engine.js'
import type { Member, MemberMetadata } from '../../src/membership/index.js'
import type { Random } from '../random.js'
import type { EventQueue } from './event-queue.js'

/** Versions are `app@N`: a node must only ever move to a higher N (no rollback in this mode). */
export function versionNumber(distribution: string | null): number {
  if (distribution == null) return 0
  const n = Number(distribution.slice(distribution.indexOf('@') + 1))
  return Number.isFinite(n) ? n : 0
}

export interface Report {
  readonly node: string
  /** Grows with every change of the announcement (gossip keeps the newest). */
  readonly seq: number
  readonly meta: MemberMetadata
}

/** What the world gives an app node. */
export interface AppEnv {
  readonly queue: EventQueue
  readonly random: Random
  /** Share of switches that fail (an install refused, or the new component failing). */
  readonly failShare: number
  /** A deliberate bug, for testing the checker: adopt whatever state arrives, older or not. */
  readonly unordered?: boolean
  /** A committed state from some voter, delivered late; null when none answers. */
  fetchState(node: string, deliver: (index: number, state: ClusterState) => void): void
  /** Sends the announcement to every manager process (gossip). */
  gossip(report: Report): void
  /** Called on every change of the node (the checker looks at the fleet). */
  changed(node: AppNode): void
  violation(message: string): void
}

export type SwitchCause = 'turn' | 'catch-up'

export interface SwitchRecord {
  readonly at: number
  readonly to: string
  readonly cause: SwitchCause
  /** The rollout whose record gave the turn (turn only). */
  readonly rollout: string | null
}

/** A spell during which the node was down or cut off from every manager process. */
export interface Spell {
  readonly start: number
  end: number | null
}

export class AppNode {
  up = true
  private isolation = 0
  adoptedIndex = 0
  adopted: ClusterState | null = null
  /** The runtime: the version it committed to, the one it moves to, and the switch's phase. */
  active: string | null
  target: string | null
  phase: 'idle' | 'installing' | 'switching' | 'done' | 'failed' = 'done'
  error: string | null = null
  /** Component state of what runs: the old instance, and the new one while it starts. */
  private components: Array<{ version: string; state: 'ready' | 'starting' | 'failed' }>
  private seq = 0
  /** Bumped by a crash: timers of an earlier life are ignored. */
  private life = 0
  /** Bumped by a crash and by each switch: timers of an earlier switch are ignored. */
  private epoch = 0
  /** The current switch (null when settled): why it started. */
  current: SwitchRecord | null = null
  readonly switches: SwitchRecord[] = []
  readonly firstReadyAt = new Map<string, number>()
  readonly spells: Spell[] = []

  constructor(
    readonly id: string,
    private readonly env: AppEnv,
    initial: string,
  ) {
    this.active = initial
    this.target = initial
    this.components = [{ version: initial, state: 'ready' }]
    this.firstReadyAt.set(initial, 0)
  }

  get reachable(): boolean {
    return this.up && this.isolation === 0
  }

  get spell(): Spell | null {
    const last = this.spells.at(-1)
    return last != null && last.end == null ? last : null
  }

  /** In a switch: what the engine counts as unavailable while the node's turn is open. */
  get midSwitch(): boolean {
    return this.phase === 'installing' || this.phase === 'switching'
  }

  get ready(): boolean {
    return this.components.every((c) => c.state === 'ready')
  }

  start(): void {
    this.scheduleFollow()
    this.scheduleReport()
  }

  // ── faults ───────────────────────────────────────────────────────────────

  crash(): void {
    if (!this.up) return
    this.beginSpell()
    this.up = false
    this.life++
    this.epoch++
    this.env.changed(this)
  }

  restart(): void {
    if (this.up) return
    this.up = true
    this.epoch++
    const epoch = this.epoch
    if (this.current != null && this.phase !== 'failed') {
      // The intent survives the crash: the switch starts over (the same switch, not a new one).
      this.runSwitch(this.current.to)
    } else {
      // Its components start again: not ready for a moment, then as they were.
      const before = this.components
      this.components = before.map((c) => ({ ...c, state: c.state === 'failed' ? 'failed' : 'starting' }))
      this.env.queue.after(50 + this.env.random() * 400, () => {
        if (this.epoch !== epoch) return
        this.components = before
        this.announce()
      })
    }
    this.endSpell()
    this.announce()
    this.start()
  }

  /** The end of the faults: up and reachable again. */
  healAll(): void {
    if (!this.up) {
      this.isolation = 0
      this.restart()
    } else if (this.isolation > 0) {
      this.isolation = 1
      this.reconnect()
    }
  }

  /** Cut off from every manager process (its gossip and its state fetches); it keeps running. */
  isolate(): void {
    if (this.isolation++ === 0) this.beginSpell()
  }

  reconnect(): void {
    if (this.isolation === 0) return
    if (--this.isolation === 0) {
      this.endSpell()
      this.announce()
    }
  }

  private beginSpell(): void {
    if (this.spell == null) this.spells.push({ start: this.env.queue.now, end: null })
  }

  private endSpell(): void {
    if (!this.reachable) return
    const spell = this.spell
    if (spell == null) return
    spell.end = this.env.queue.now
  }

  // ── following the cluster state ──────────────────────────────────────────

  private scheduleFollow(): void {
    const life = this.life
    this.env.queue.after(100 + this.env.random() * 300, () => {
      if (this.life !== life || !this.up) return
      if (this.isolation === 0)
        this.env.fetchState(this.id, (index, state) => {
          if (this.life === life && this.up && this.isolation === 0) this.adopt(index, state)
        })
      this.scheduleFollow()
    })
  }

  private adopt(index: number, state: ClusterState): void {
    if (index <= this.adoptedIndex && this.adopted != null && this.env.unordered !== true) return
    this.adoptedIndex = index
    this.adopted = state
    const wanted = targetOf(state, this.id)
    if (wanted == null || wanted === this.target) return
    const latest = state.rollouts[0]
    const turn =
      latest != null &&
      !isFinished(latest) &&
      latest.distribution === wanted &&
      latest.progress[this.id] === 'updating'
    const record: SwitchRecord = {
      at: this.env.queue.now,
      to: wanted,
      cause: turn ? 'turn' : 'catch-up',
      rollout: turn ? latest.id : null,
    }
    const highest = Math.max(versionNumber(this.active), ...this.switches.map((s) => versionNumber(s.to)))
    if (versionNumber(wanted) <= highest)
      this.env.violation(
        `${this.id} switched again to ${wanted} (state at index ${index}); before: ${this.switches
          .map((s) => `${s.to}@${s.at.toFixed(0)}ms(${s.cause})`)
          .join(', ')}, running ${this.active}`,
      )
    this.switches.push(record)
    this.current = record
    this.runSwitch(wanted)
  }

  /** The runtime's switch: install beside the old version, start the new one, then settle. */
  private runSwitch(to: string): void {
    const { queue, random } = this.env
    const epoch = ++this.epoch
    this.target = to
    this.error = null
    this.phase = 'installing'
    // The old version serves on while the new one installs (only what runs counts as components).
    this.components = this.components.filter((c) => c.version === this.active && c.state === 'ready')
    if (this.components.length === 0 && this.active != null)
      this.components = [{ version: this.active, state: 'starting' }]
    this.announce()
    const failShare = this.env.failShare
    queue.after(20 + random() * 200, () => {
      if (this.epoch !== epoch || !this.up) return
      if (random() < failShare / 3) {
        // The package is refused: the node stays on what it ran.
        this.phase = 'failed'
        this.error = `install of ${to} refused`
        this.settle()
        return
      }
      this.phase = 'switching'
      this.components = [...this.components, { version: to, state: 'starting' }]
      this.announce()
      const startMs = random() < 0.05 ? 1500 + random() * 3500 : 100 + random() * 1400
      queue.after(startMs, () => {
        if (this.epoch !== epoch || !this.up) return
        this.active = to
        if (random() < (failShare * 2) / 3) {
          this.components = [{ version: to, state: 'failed' }]
          this.phase = 'failed'
          this.error = 'web failed: exited with code 1'
        } else {
          this.components = [{ version: to, state: 'ready' }]
          this.phase = 'done'
          if (!this.firstReadyAt.has(to)) this.firstReadyAt.set(to, queue.now)
        }
        this.settle()
      })
    })
  }

  private settle(): void {
    this.current = null
    this.announce()
  }

  // ── announcing ───────────────────────────────────────────────────────────

  private announce(): void {
    this.seq++
    this.env.changed(this)
    if (this.reachable) this.env.gossip(this.report())
  }

  private scheduleReport(): void {
    const life = this.life
    this.env.queue.after(200 + this.env.random() * 200, () => {
      if (this.life !== life || !this.up) return
      if (this.reachable) this.env.gossip(this.report())
      this.scheduleReport()
    })
  }

  report(): Report {
    return {
      node: this.id,
      seq: this.seq,
      meta: {
        distribution: this.active,
        components: this.components.map((c, i) => ({
          name: 'web',
          version: c.version,
          ...(i === 0 ? {} : { instance: 1 }),
          state: c.state,
          endpoint: c.state === 'ready' ? `http://${this.id}:8080` : null,
        })),
        runtime: { target: this.target, phase: this.phase, error: this.error },
        ready: this.ready,
      },
    }
  }
}

/**
 * A manager process's membership view of the app nodes: the newest announcement
 * of each (by its seq), and SWIM-like verdicts from silence: suspect (still a
 * member, keeping its slot) after `suspectMs`, dead after `deadMs`. A process
 * that restarts starts with an empty view and fills it from one peer's when it
 * joins (membership.ts: the joining node pulls the whole view), as well as from
 * the announcements it hears meanwhile.
 */
export class MemberView {
  private readonly entries = new Map<
    string,
    { seq: number; meta: MemberMetadata; heard: number; state: 'alive' | 'suspect' | 'dead'; since: number }
  >()

  constructor(
    private readonly suspectMs: number,
    private readonly deadMs: number,
    private readonly onDead: (node: string) => void,
  ) {}

  /** Takes an announcement in; true when the view changed (a membership event: the manager runs its loop). */
  hear(report: Report, now: number): boolean {
    const e = this.entries.get(report.node)
    if (e === undefined) {
      this.entries.set(report.node, {
        seq: report.seq,
        meta: report.meta,
        heard: now,
        state: 'alive',
        since: now,
      })
      return true
    }
    let changed = false
    if (report.seq > e.seq) {
      e.seq = report.seq
      e.meta = report.meta
      changed = true
    }
    e.heard = Math.max(e.heard, now)
    if (e.state !== 'alive') {
      e.state = 'alive'
      e.since = now
      changed = true
    }
    return changed
  }

  /** A join's sync: every member `other` knows that this view does not, or knows an older announcement of. */
  merge(other: MemberView, now: number): boolean {
    let changed = false
    for (const [id, e] of other.entries) {
      const mine = this.entries.get(id)
      if (mine === undefined) {
        this.entries.set(id, { ...e, heard: now, since: now })
        changed = true
      } else if (e.seq > mine.seq) {
        mine.seq = e.seq
        mine.meta = e.meta
        changed = true
      }
    }
    return changed
  }

  /** A copy, as a sync sends it. */
  copy(): MemberView {
    const view = new MemberView(this.suspectMs, this.deadMs, () => {})
    for (const [id, e] of this.entries) view.entries.set(id, { ...e })
    return view
  }

  get size(): number {
    return this.entries.size
  }

  /** The failure detector's verdicts at `now`. */
  sweep(now: number): void {
    for (const [id, e] of this.entries) {
      const silent = now - e.heard
      if (silent >= this.deadMs && e.state !== 'dead') {
        e.state = 'dead'
        e.since = now
        this.onDead(id)
      } else if (silent >= this.suspectMs && e.state === 'alive') {
        e.state = 'suspect'
        e.since = now
      }
    }
  }

  members(): Member[] {
    return [...this.entries].map(([id, e]) => ({
      id,
      addrs: [],
      incarnation: e.seq,
      state: e.state,
      meta: e.meta,
      self: false,
      since: e.since,
    }))
  }
}
