import type { Logger } from '../shared/index.js'
import type { Member, MemberMetadata } from './member.js'
import { type Detail, isNewerDetail } from './member-details.js'
import type { MemberTable } from './member-table.js'
import { DETAILS_PAGE_BYTES, type ProbeAnswer, type ProbeRequest } from './messages.js'
import { isObserver, watchEpochOf } from './roles.js'

/** How the relay reaches one member: a request on the probe protocol, its answer. */
export type AskMember = (id: string, request: ProbeRequest, timeoutMs: number) => Promise<ProbeAnswer>

export interface DetailRelayInit {
  self: string
  /** ms a push or a page may take. */
  timeoutMs: number
  /** ms between the first change of a burst and its push (a switch changes several keys within ms). */
  gapMs: number
}

type DetailsAnswer = Extract<ProbeAnswer, { t: 'details' }>

/** First retry of a push a watcher did not take, doubling to RETRY_MAX_MS. */
const RETRY_MS = 1000
const RETRY_MAX_MS = 30_000
/** A watcher asks a member for its details when none came within this of seeing it alive. */
const PULL_AFTER_MS = 5000
/** Pushes in flight at once (a new watcher is sent to by every member, each sends once). */
const PUSHES_AT_ONCE = 8

/**
 * Metadata keys of reach `watchers` (announcement.ts): per-node detail that changes
 * often (a rollout's phases, component states) goes to the members that watch (a
 * load balancer, the manager's voters: roles.ts `watch`) instead of every member.
 * - This node's details: each change raises its version (member-details.ts) and is
 *   pushed, coalesced, to every alive watcher; a push that fails is retried with
 *   back-off while the watcher lives. A watcher seen with a new watch epoch (it
 *   started, or began watching) is sent them at once.
 * - A watcher stores what it is sent, and asks a member that sent nothing within
 *   PULL_AFTER_MS of appearing (its push was lost, or the watcher forgot it after
 *   a reap) for its details.
 * - A non-watcher that wants everyone's details (its API) fetches what changed
 *   since its last fetch from a watcher, page by page.
 */
export class DetailRelay {
  private version = { inc: 0, dv: 0 }
  /** Per watcher: the epoch it announced, the version it has taken, and a pending retry. */
  private readonly delivered = new Map<
    string,
    { epoch: number; taken: { inc: number; dv: number } | null; retryMs: number; retry?: NodeJS.Timeout }
  >()
  private pushDue: NodeJS.Timeout | null = null
  private readonly pulls = new Map<string, NodeJS.Timeout>()
  private fetched: { from: string; epoch: number; upTo: number; at: number } | null = null
  private refreshing: Promise<void> | null = null
  private stopped = false

  constructor(
    private readonly init: DetailRelayInit,
    private readonly table: () => MemberTable,
    private readonly ask: AskMember,
    private readonly log: Logger,
  ) {}

  /** This node's details changed (`meta`, at incarnation `inc`): store them, push them after `delayMs` (coalesced). */
  publish(meta: MemberMetadata, inc: number, delayMs = this.init.gapMs): void {
    const current = this.table().details.get(this.init.self)
    if (current != null && JSON.stringify(current.meta) === JSON.stringify(meta)) return
    this.version = { inc, dv: this.version.dv + 1 }
    this.table().applyDetail({ id: this.init.self, ...this.version, meta })
    this.schedulePush(delayMs)
  }

  /** This node's details as it holds them (empty before any). */
  own(): Detail {
    return this.table().details.get(this.init.self) ?? { id: this.init.self, inc: 0, dv: 0, meta: {} }
  }

  /** A member joined or changed in the view: a new watcher gets this node's details; a watcher pulls a member's. */
  observe(member: Member, selfWatching: boolean): void {
    if (this.stopped || member.self) return
    const epoch = watchEpochOf(member)
    const known = this.delivered.get(member.id)
    if (member.state === 'alive' && epoch != null && known?.epoch !== epoch) {
      clearTimeout(known?.retry)
      this.delivered.set(member.id, { epoch, taken: null, retryMs: RETRY_MS })
      this.schedulePush(0)
    } else if (epoch == null && known != null) {
      clearTimeout(known.retry)
      this.delivered.delete(member.id)
    }
    if (selfWatching && member.state === 'alive') this.pullLater(member.id)
  }

  /** A member is gone from the view (reaped): forget it as a watcher. */
  forget(id: string): void {
    clearTimeout(this.delivered.get(id)?.retry)
    this.delivered.delete(id)
    clearTimeout(this.pulls.get(id))
    this.pulls.delete(id)
  }

  /** A push from a member (this node watches); false when it was not news. */
  receive(detail: Detail): boolean {
    clearTimeout(this.pulls.get(detail.id))
    this.pulls.delete(detail.id)
    return this.table().applyDetail(detail)
  }

  /** The page of details that changed after `after`, for a non-watcher (or only ours: `own`). */
  page(request: Extract<ProbeRequest, { t: 'details' }>, epoch: number): DetailsAnswer {
    if (request.own === true) return { t: 'details', epoch: 0, upTo: 0, more: false, details: [this.own()] }
    const after = request.epoch === epoch ? request.after : 0
    const { details, upTo, more } = this.table().details.since(after, DETAILS_PAGE_BYTES)
    return { t: 'details', epoch, upTo, more, details }
  }

  /**
   * For a non-watcher's readers (its API): fetches what changed at a watcher since
   * the last fetch, unless that was less than `maxAgeMs` ago (calls meanwhile share
   * one fetch); a watcher needs nothing.
   */
  refresh(selfWatching: boolean, maxAgeMs: number): Promise<void> {
    if (selfWatching || this.stopped) return Promise.resolve()
    if (this.fetched != null && Date.now() - this.fetched.at < maxAgeMs) return Promise.resolve()
    this.refreshing ??= this.fetchFromWatcher().finally(() => {
      this.refreshing = null
    })
    return this.refreshing
  }

  stop(): void {
    this.stopped = true
    if (this.pushDue != null) clearTimeout(this.pushDue)
    for (const d of this.delivered.values()) clearTimeout(d.retry)
    for (const t of this.pulls.values()) clearTimeout(t)
    this.pulls.clear()
  }

  private schedulePush(delayMs: number): void {
    if (this.stopped) return
    if (this.pushDue != null) {
      if (delayMs > 0) return
      clearTimeout(this.pushDue)
    }
    this.pushDue = setTimeout(() => {
      this.pushDue = null
      void this.pushAll()
    }, delayMs)
    this.pushDue.unref?.()
  }

  /** Sends this node's details to every watcher that has not taken this version. */
  private async pushAll(): Promise<void> {
    const own = this.own()
    if (own.dv === 0) return
    const due = [...this.delivered].filter(
      ([id, d]) => d.retry == null && (d.taken == null || isNewerDetail(own, d.taken)) && this.alive(id),
    )
    for (let i = 0; i < due.length; i += PUSHES_AT_ONCE)
      await Promise.all(due.slice(i, i + PUSHES_AT_ONCE).map(([id]) => this.pushTo(id, own)))
  }

  private async pushTo(id: string, own: Detail): Promise<void> {
    try {
      await this.ask(id, { t: 'detail', detail: own }, this.init.timeoutMs)
      const d = this.delivered.get(id)
      if (d == null) return
      d.taken = { inc: own.inc, dv: own.dv }
      d.retryMs = RETRY_MS
    } catch (err) {
      const d = this.delivered.get(id)
      if (d == null || this.stopped) return
      this.log.debug('could not send details to a watcher', { watcher: id, error: String(err) })
      d.retry = setTimeout(() => {
        d.retry = undefined
        if (this.alive(id)) this.schedulePush(0)
      }, d.retryMs)
      d.retry.unref?.()
      d.retryMs = Math.min(RETRY_MAX_MS, d.retryMs * 2)
    }
  }

  /** A watcher that holds nothing from `id` PULL_AFTER_MS after seeing it alive asks it. */
  private pullLater(id: string): void {
    if (this.pulls.has(id) || this.table().details.get(id) != null) return
    const timer = setTimeout(
      () => {
        if (this.stopped || this.table().details.get(id) != null || !this.alive(id)) {
          this.pulls.delete(id)
          return
        }
        this.ask(id, { t: 'details', after: 0, epoch: 0, own: true }, this.init.timeoutMs)
          .then((answer) => {
            if (answer.t === 'details') for (const detail of answer.details) this.table().applyDetail(detail)
          })
          .catch(() => {})
          .finally(() => this.pulls.delete(id))
      },
      PULL_AFTER_MS * (1 + Math.random()),
    )
    timer.unref?.()
    this.pulls.set(id, timer)
  }

  private async fetchFromWatcher(): Promise<void> {
    const watchers = this.table()
      .members()
      .filter((m) => !m.self && m.state === 'alive' && watchEpochOf(m) != null)
    if (watchers.length === 0) return
    // The same watcher as last time (its sequence numbers make the fetch a delta), else one
    // that only watches (a load balancer) before a voter: the manager's leader has enough to do.
    const same = watchers.find((w) => w.id === this.fetched?.from)
    const observers = watchers.filter((w) => isObserver(w))
    const pool = observers.length > 0 ? observers : watchers
    const from = same ?? pool[Math.floor(Math.random() * pool.length)]!
    const epoch = watchEpochOf(from)!
    const started = Date.now()
    let after = same != null && this.fetched?.epoch === epoch ? this.fetched.upTo : 0
    try {
      for (let more = true; more; ) {
        const answer = await this.ask(from.id, { t: 'details', after, epoch }, this.init.timeoutMs)
        if (answer.t !== 'details') return
        for (const detail of answer.details)
          if (detail.id !== this.init.self) this.table().applyDetail(detail)
        after = answer.upTo
        more = answer.more
      }
      this.fetched = { from: from.id, epoch, upTo: after, at: started }
    } catch (err) {
      this.log.debug('could not fetch details from a watcher', { watcher: from.id, error: String(err) })
    }
  }

  private alive(id: string): boolean {
    return this.table().get(id)?.state === 'alive'
  }
}
