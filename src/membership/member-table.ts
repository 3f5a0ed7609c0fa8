import type { Logger, TypedEvents } from '../shared/index.js'
import { type MembershipTimers, suspicionBounds } from './config.js'
import { bucketHashes } from './delta-sync.js'
import type { MembershipEvents } from './events.js'
import { applyClaim, refutation } from './incarnation.js'
import type { Claim, Member, MemberMetadata, MemberRecord } from './member.js'
import { type Detail, MemberDetails } from './member-details.js'
import type { MetadataContract } from './metadata-contract.js'
import { Suspicion } from './suspicion.js'
import { viewDigest } from './view-digest.js'

export interface MemberTableHooks {
  /** A suspicion ran out: the table has marked the member dead; tell the cluster. */
  declaredDead(claim: Claim): void
  /** Someone accused this node (or claimed a newer incarnation of it): announce `incarnation`. */
  refute(incarnation: number): void
  /** A patch about `id` could not be applied (this view lacks what it patches): fetch the record. */
  stale(id: string): void
  /** Members alive in this view that watch `id` (its observers on the monitoring rings). */
  observersOf(id: string): string[]
}

/** Distinct accusers a dead verdict needs, when the member has that many observers alive. */
export const AGREEMENT = 3

interface Entry {
  record: MemberRecord
  since: number
}

/**
 * The membership view: one record per member, changed only through claims ordered
 * by incarnation (see incarnation.ts). It runs the suspicion timers and forgets
 * dead and left members after the reap timeout.
 */
export class MemberTable {
  private readonly entries = new Map<string, Entry>()
  private readonly suspicions = new Map<string, Suspicion>()
  private readonly reapTimers = new Map<string, ReturnType<typeof setTimeout>>()
  /** Metadata keys already reported as dropped, per member: a bad peer costs one log line per key. */
  private readonly reported = new Map<string, Set<string>>()
  /** Members' keys of reach `watchers` this node holds (its own; a watcher's, everyone's). */
  readonly details = new MemberDetails()
  /** Record and details merged for readers, per member, until either changes. */
  private readonly merged = new Map<string, { view: MemberMetadata; detail: Detail; meta: MemberMetadata }>()
  private liveChanges = 0
  /** Grows with every change of a record: the digest and bucket hashes are cached per value. */
  private changes = 0
  private summary: { changes: number; digest?: string; buckets: Map<number, string[]> } = {
    changes: -1,
    buckets: new Map(),
  }

  constructor(
    private self: MemberRecord,
    private readonly timers: MembershipTimers,
    private readonly events: TypedEvents<MembershipEvents>,
    private readonly hooks: MemberTableHooks,
    private readonly log: Logger,
    private readonly contract: MetadataContract,
  ) {
    this.entries.set(self.id, { record: self, since: Date.now() })
  }

  get selfRecord(): MemberRecord {
    return this.self
  }

  /** Replaces this node's own record (new incarnation, addresses, metadata or state). */
  setSelf(record: MemberRecord): void {
    this.changes++
    this.self = record
    this.entries.set(record.id, { record, since: this.entries.get(record.id)?.since ?? Date.now() })
  }

  get(id: string): Member | undefined {
    const entry = this.entries.get(id)
    return entry == null ? undefined : this.view(entry)
  }

  members(): Member[] {
    return [...this.entries.values()].map((entry) => this.view(entry))
  }

  /** Records of every member, for a state sync. */
  records(): MemberRecord[] {
    return [...this.entries.values()].map((entry) => entry.record)
  }

  /** Members other than this node in the given states. */
  others(...states: MemberRecord['state'][]): MemberRecord[] {
    const out: MemberRecord[] = []
    for (const { record } of this.entries.values()) {
      if (record.id !== this.self.id && states.includes(record.state)) out.push(record)
    }
    return out
  }

  /** Grows whenever a member enters or leaves the live set (alive or suspect): rings to recompute. */
  get liveVersion(): number {
    return this.liveChanges
  }

  /** Ids of the members not known to have died or left, this node included. */
  *liveIds(): Iterable<string> {
    for (const { record } of this.entries.values())
      if (record.state === 'alive' || record.state === 'suspect') yield record.id
  }

  /** Suspicions that ran out without the accusers a verdict needs (waiting for agreement). */
  suspicionsWaiting(): number {
    let n = 0
    for (const suspicion of this.suspicions.values()) if (suspicion.waitingForAgreement) n++
    return n
  }

  /** Members not known to have died or left, this node included (SWIM's n). */
  liveCount(): number {
    let n = 0
    for (const { record } of this.entries.values())
      if (record.state === 'alive' || record.state === 'suspect') n++
    return n
  }

  /** The view's digest (view-digest.ts); two views with the same digest need no full exchange. */
  digest(): string {
    const summary = this.currentSummary()
    summary.digest ??= viewDigest(Array.from(this.entries.values(), (entry) => entry.record))
    return summary.digest
  }

  /** The view's hash per bucket of members, for a delta sync (delta-sync.ts). */
  bucketHashes(count: number): string[] {
    const summary = this.currentSummary()
    let hashes = summary.buckets.get(count)
    if (hashes == null) {
      hashes = bucketHashes(this.records(), count)
      summary.buckets.set(count, hashes)
    }
    return hashes
  }

  /** Every record by member id. */
  recordsById(): Map<string, MemberRecord> {
    return new Map(Array.from(this.entries, ([id, entry]) => [id, entry.record]))
  }

  private currentSummary() {
    if (this.summary.changes !== this.changes) this.summary = { changes: this.changes, buckets: new Map() }
    return this.summary
  }

  /**
   * Stores a member's details (newer than those held) and tells readers, as a
   * metadata change; false for an older version or a member this view lacks.
   */
  applyDetail(detail: Detail): boolean {
    const entry = this.entries.get(detail.id)
    if (entry == null || !this.details.set(detail)) return false
    if (detail.id !== this.self.id) this.events.emit('member:update', this.view(entry))
    return true
  }

  /** Applies one claim; true when it changed the view (so it is news worth passing on). */
  apply(claim: Claim): boolean {
    if (claim.id === this.self.id) {
      const incarnation = refutation(this.self.incarnation, claim)
      if (incarnation != null) {
        this.log.debug('refuting claim about self', { kind: claim.kind, incarnation: claim.incarnation })
        this.hooks.refute(incarnation)
      }
      return false
    }
    const current = this.entries.get(claim.id)?.record
    const outcome = applyClaim(current, claim)
    switch (outcome.effect) {
      case 'ignore':
        return false
      case 'stale':
        this.hooks.stale(claim.id)
        return false
      case 'confirm':
        return this.suspicions.get(claim.id)?.confirm(outcome.from, refusedIn(claim)) ?? false
      case 'join':
        this.store(this.checked(outcome.record))
        this.events.emit('member:join', this.get(claim.id)!)
        return true
      case 'update':
        this.store(this.checked(outcome.record))
        this.events.emit('member:update', this.get(claim.id)!)
        return true
      case 'suspect':
        this.store(outcome.record)
        this.startSuspicion(
          outcome.record,
          claim.kind === 'suspect' ? claim.from : this.self.id,
          refusedIn(claim),
        )
        this.events.emit('member:suspect', this.get(claim.id)!)
        return true
      case 'dead':
        this.store(outcome.record)
        this.events.emit('member:dead', this.get(claim.id)!)
        this.recheckSuspicions()
        return true
      case 'leave':
        this.store(outcome.record)
        this.events.emit('member:leave', this.get(claim.id)!)
        this.recheckSuspicions()
        return true
    }
  }

  /**
   * A record from an `alive` claim, its metadata checked against the contract: the
   * only place a peer's metadata enters the view. Bad keys are dropped, the member kept.
   */
  private checked(record: MemberRecord): MemberRecord {
    const { meta, dropped } = this.contract.check(record.meta)
    if (dropped.length > 0) {
      const seen = this.reported.get(record.id) ?? new Set<string>()
      this.reported.set(record.id, seen)
      for (const { key, owner, reason } of dropped) {
        if (seen.has(key)) continue
        seen.add(key)
        const text = `member ${record.id} announced metadata key "${key}" (${owner}) that ${reason}; ignoring that key`
        this.log.warn(text, { member: record.id, incarnation: record.incarnation })
      }
    }
    return { ...record, meta }
  }

  /** A witness gone may be the one a waiting suspicion needed no more. */
  private recheckSuspicions(): void {
    for (const suspicion of [...this.suspicions.values()]) suspicion.recheck()
  }

  /** Clears every timer. */
  clear(): void {
    for (const suspicion of this.suspicions.values()) suspicion.cancel()
    this.suspicions.clear()
    for (const timer of this.reapTimers.values()) clearTimeout(timer)
    this.reapTimers.clear()
  }

  private store(record: MemberRecord): void {
    this.changes++
    const previous = this.entries.get(record.id)
    if (previous == null || isLive(previous.record.state) !== isLive(record.state)) this.liveChanges++
    const since = previous?.record.state === record.state ? previous.since : Date.now()
    this.entries.set(record.id, { record, since })
    if (record.state !== 'suspect') {
      this.suspicions.get(record.id)?.cancel()
      this.suspicions.delete(record.id)
    }
    clearTimeout(this.reapTimers.get(record.id))
    this.reapTimers.delete(record.id)
    if (record.state === 'dead' || record.state === 'left') this.scheduleReap(record)
  }

  private startSuspicion(record: MemberRecord, from: string, refused: boolean): void {
    this.suspicions.get(record.id)?.cancel()
    const { min, max, stallFloor } = suspicionBounds(this.timers, this.liveCount())
    // The member's observers probe it as soon as they hear of the suspicion: each is an
    // independent confirmation, and the verdict waits for AGREEMENT of them (all, when
    // fewer are alive: two members alone must be able to tell a crash).
    // Only they count as witnesses: a suspicion passed on by a sync, or a probe from a
    // view that has the rings a little wrong, is no independent evidence. With no
    // observer alive in this view (a view still filling), anyone's counts.
    const observers = new Set(this.hooks.observersOf(record.id))
    const aliveObservers = () => {
      let n = 0
      for (const id of observers)
        if (id === this.self.id || this.entries.get(id)?.record.state === 'alive') n++
      return n
    }
    const terms = {
      expected: Math.max(0, observers.size - 1),
      required: () => Math.max(1, Math.min(AGREEMENT, aliveObservers())),
      min,
      max,
      stallFloor,
      ...(observers.size > 0 ? { witness: (accuser: string) => observers.has(accuser) } : {}),
    }
    const suspicion = new Suspicion(
      from,
      terms,
      () => {
        this.suspicions.delete(record.id)
        const claim: Claim = {
          kind: 'dead',
          id: record.id,
          incarnation: record.incarnation,
          from: this.self.id,
        }
        if (this.apply(claim)) this.hooks.declaredDead(claim)
      },
      Date.now,
      refused,
    )
    this.suspicions.set(record.id, suspicion)
  }

  private scheduleReap(record: MemberRecord): void {
    const timer = setTimeout(() => {
      this.reapTimers.delete(record.id)
      const entry = this.entries.get(record.id)
      if (entry == null || entry.record.state !== record.state) return
      this.entries.delete(record.id)
      this.details.delete(record.id)
      this.merged.delete(record.id)
      this.changes++
      this.reported.delete(record.id)
      this.events.emit('member:reap', this.view(entry))
    }, this.timers.reapTimeout)
    timer.unref?.()
    this.reapTimers.set(record.id, timer)
  }

  private view(entry: Entry): Member {
    const { record } = entry
    return { ...record, meta: this.metaOf(record), self: record.id === this.self.id, since: entry.since }
  }

  /** A member's metadata as readers see it: its record's, and its details when this node holds them. */
  private metaOf(record: MemberRecord): MemberMetadata {
    const detail = this.details.get(record.id)
    if (detail == null) return record.meta
    const cached = this.merged.get(record.id)
    if (cached?.view === record.meta && cached.detail === detail) return cached.meta
    const meta = this.contract.merge(record.meta, detail.meta)
    this.merged.set(record.id, { view: record.meta, detail, meta })
    return meta
  }
}

/** A suspicion whose accuser found the member's port closed. */
function refusedIn(claim: Claim): boolean {
  return claim.kind === 'suspect' && claim.refused === true
}

function isLive(state: MemberRecord['state']): boolean {
  return state === 'alive' || state === 'suspect'
}
