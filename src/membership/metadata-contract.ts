import { ConfigError } from '../shared/index.js'
import { type MetadataKey, markChecked, metadataBytes } from './announcement.js'
import { MAX_METADATA_BYTES } from './constants.js'
import { MetadataInvalidError, MetadataTooLargeError } from './errors.js'
import type { MemberMetadata } from './member.js'
import { membershipAnnouncement } from './roles.js'

/** A key dropped from a peer's claim, and why. */
export interface DroppedKey {
  key: string
  owner: string
  reason: string
}

/**
 * Every metadata key a member may announce, each with its owner's schema and byte
 * budget: the agent builds it from the subsystems' announcements and hands it to
 * membership (MembershipInit.contract), which checks
 * - a peer's claim once, when it applies it (`check`): a key with a bad value or
 *   over its budget is dropped and the rest kept, so a bad peer costs a log line;
 *   a key no one declared (a newer agent's) is kept as it came;
 * - this node's own metadata when it writes it (`checkOwn`): an undeclared key, a
 *   bad value or one over budget, or a whole over MAX_METADATA_BYTES, is an error.
 */
export class MetadataContract {
  private readonly keys: ReadonlyMap<string, MetadataKey>
  private readonly names: ReadonlySet<string>

  private constructor(keys: readonly MetadataKey[]) {
    const byName = new Map<string, MetadataKey>()
    for (const key of keys) {
      const other = byName.get(key.name)
      if (other != null)
        throw new ConfigError(
          `metadata key "${key.name}" is declared by both ${other.owner} and ${key.owner}`,
        )
      if (!Number.isInteger(key.maxBytes) || key.maxBytes < 1 || key.maxBytes > MAX_METADATA_BYTES)
        throw new ConfigError(
          `metadata key "${key.name}" (${key.owner}) needs a budget of 1 to ${MAX_METADATA_BYTES} bytes`,
        )
      byName.set(key.name, key)
    }
    this.keys = byName
    this.names = new Set(byName.keys())
  }

  /** Membership's own keys (roles) and those of `announcements`; a key declared twice is a ConfigError. */
  static of(announcements: ReadonlyArray<{ readonly keys: readonly MetadataKey[] }> = []): MetadataContract {
    return new MetadataContract([membershipAnnouncement, ...announcements].flatMap((a) => a.keys))
  }

  /** Every declared key, in declaration order (the docs table). */
  list(): MetadataKey[] {
    return [...this.keys.values()]
  }

  /**
   * This node's checked metadata in two parts: what every member hears of with its
   * record (`view`), and what only watchers are sent (`detail`: keys of reach
   * `watchers`). Undeclared keys are `view`.
   */
  split(meta: MemberMetadata): { view: MemberMetadata; detail: MemberMetadata } {
    const view: Record<string, unknown> = {}
    const detail: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(meta)) {
      if (this.keys.get(name)?.reach === 'watchers') detail[name] = value
      else view[name] = value
    }
    return { view: this.seal(view), detail: this.seal(detail) }
  }

  /** Metadata as readers get it: a record's and the details a watcher was sent, one checked object. */
  merge(view: MemberMetadata, detail: MemberMetadata): MemberMetadata {
    return this.seal({ ...view, ...detail })
  }

  /**
   * A peer's metadata as this view keeps it: each declared key checked against its
   * schema and budget; the bad ones dropped (and reported), the rest kept.
   */
  check(meta: MemberMetadata): { meta: MemberMetadata; dropped: DroppedKey[] } {
    const kept: Record<string, unknown> = {}
    const dropped: DroppedKey[] = []
    for (const [name, value] of Object.entries(meta)) {
      const key = this.keys.get(name)
      if (key == null) {
        kept[name] = value
        continue
      }
      const problem = this.problem(key, value)
      if (problem == null) kept[name] = value
      else dropped.push({ key: name, owner: key.owner, reason: problem.text })
    }
    return { meta: this.seal(kept), dropped }
  }

  /** This node's own metadata, checked before anyone hears of it; throws MetadataError. */
  checkOwn(meta: MemberMetadata): MemberMetadata {
    const kept: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(meta)) {
      if (value === undefined) continue
      const key = this.keys.get(name)
      if (key == null)
        throw new MetadataInvalidError(
          name,
          `metadata key "${name}" is declared by no subsystem: declare it in its owner's announcement.ts and register that in src/bootstrap/announcements.ts`,
        )
      const problem = this.problem(key, value)
      if (problem != null)
        throw new problem.Refusal(name, `metadata key "${name}" (${key.owner}) ${problem.text}`)
      kept[name] = value
    }
    const total = metadataBytes(kept)
    if (total > MAX_METADATA_BYTES)
      throw new MetadataTooLargeError(
        null,
        `member metadata would be ${total} bytes, over the ${MAX_METADATA_BYTES} a member may announce (largest keys: ${largest(kept)})`,
      )
    return this.seal(kept)
  }

  /** Why `value` is not a valid `key`, or null: over its budget (checked first, it is cheaper), or refused by its schema. */
  private problem(
    key: MetadataKey,
    value: unknown,
  ): { Refusal: typeof MetadataInvalidError | typeof MetadataTooLargeError; text: string } | null {
    const bytes = metadataBytes(value)
    if (bytes > key.maxBytes)
      return { Refusal: MetadataTooLargeError, text: `is ${bytes} bytes, over its budget of ${key.maxBytes}` }
    const parsed = key.schema.safeParse(value)
    if (parsed.success) return null
    const issue = parsed.error.issues[0]
    const at = issue == null || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`
    return {
      Refusal: MetadataInvalidError,
      text: `has an invalid value${at}: ${issue?.message ?? 'refused by its schema'}`,
    }
  }

  private seal(meta: Record<string, unknown>): MemberMetadata {
    const sealed = Object.freeze(meta)
    markChecked(sealed, this.names)
    return sealed
  }
}

function largest(meta: Record<string, unknown>): string {
  return Object.entries(meta)
    .map(([name, value]) => ({ name, bytes: metadataBytes(value) }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 3)
    .map((k) => `${k.name} ${k.bytes}`)
    .join(', ')
}
