import type { Claim, MemberRecord } from './member.js'

/** A patch goes out only when at most this share of the whole record's bytes. */
export const PATCH_AT_MOST = 0.75

/** A full record goes out at least every this many announcements (a view that missed patches catches up). */
export const FULL_EVERY = 8

/**
 * What this node publishes about itself: its whole record (an `alive` claim), or,
 * when only some metadata keys changed since its last publication, a `patch` of
 * those keys (issue 19: a switch changes a component's state, not the 1–3 KB of
 * everything a member announces). Receivers that do not hold the patched
 * incarnation fetch the whole record (member-table.ts `stale`).
 */
export class SelfAnnouncement {
  private last: { incarnation: number; meta: Record<string, unknown>; addrs: string } | null = null
  private patches = 0

  /** The claim to publish for `self` now; `full` forces the whole record (a refutation, a start). */
  next(self: MemberRecord, full = false): Claim {
    const whole: Claim = {
      kind: 'alive',
      id: self.id,
      incarnation: self.incarnation,
      addrs: self.addrs,
      meta: self.meta,
    }
    const last = this.last
    this.last = { incarnation: self.incarnation, meta: { ...self.meta }, addrs: self.addrs.join(' ') }
    if (
      full ||
      last == null ||
      self.state !== 'alive' ||
      last.addrs !== self.addrs.join(' ') ||
      last.incarnation >= self.incarnation ||
      this.patches >= FULL_EVERY - 1
    ) {
      this.patches = 0
      return whole
    }
    const set: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(self.meta))
      if (JSON.stringify(value) !== JSON.stringify(last.meta[key])) set[key] = value
    const drop = Object.keys(last.meta).filter((key) => !(key in self.meta))
    const patch: Claim = {
      kind: 'patch',
      id: self.id,
      incarnation: self.incarnation,
      base: last.incarnation,
      set,
      drop,
    }
    // Less than a quarter saved (a small record, or most of it changed): not worth a
    // receiver's fetch when it missed the incarnation patched.
    if (JSON.stringify(patch).length > JSON.stringify(whole).length * PATCH_AT_MOST) {
      this.patches = 0
      return whole
    }
    this.patches++
    return patch
  }
}
