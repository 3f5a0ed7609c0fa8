import type { z } from 'zod'
import type { MemberMetadata } from './member.js'

/**
 * One metadata key as its owner declares it: what a valid value is and how many
 * bytes it may take. Schemas check and do not transform (a value is announced and
 * relayed as it is); objects are `z.looseObject`, so a field a newer agent adds
 * passes through an older one untouched.
 */
export interface KeySpec<T = unknown> {
  schema: z.ZodType<T>
  /** Largest value, as UTF-8 bytes of its JSON (docs/architecture.md, "Member metadata"). */
  maxBytes: number
  /** One line for the docs table: what the value says. */
  about: string
  /**
   * Who hears of it: `view` (the default), every member, with the member's record
   * in gossip and syncs; `watchers`, only the members that watch (load balancers,
   * the manager's voters: roles.ts `watch`), sent straight to them (detail-relay.ts).
   * High-churn details (per-node rollout progress) are `watchers`: flooding them
   * cost every member N records per rollout (docs/decisions.md).
   */
  reach?: KeyReach
}

/** Who hears of a metadata key (KeySpec.reach). */
export type KeyReach = 'view' | 'watchers'

/** A declared key, with its owner, as the contract registers it. */
export interface MetadataKey extends KeySpec {
  name: string
  owner: string
}

/** The values an announcement's keys carry, typed from their schemas. */
type ValuesOf<S extends Record<string, KeySpec>> = { [K in keyof S]: z.output<S[K]['schema']> }

/** What an announcement says, key by key: `Announced<typeof runtimeAnnouncement>`. */
export type Announced<A> = A extends Announcement<infer S> ? ValuesOf<S> : never

/**
 * Metadata objects membership has checked, with the key names it checked them
 * against: readers take those values as they are. Anything else (a record built by
 * hand, a key no contract declared) is checked where it is read.
 */
const checked = new WeakMap<object, ReadonlySet<string>>()

/** Marks `meta` as checked against the keys `names` (membership's contract does this once per claim). */
export function markChecked(meta: MemberMetadata, names: ReadonlySet<string>): void {
  checked.set(meta, names)
}

/** Bytes of a value as announced: its JSON in UTF-8. */
export function metadataBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8')
}

/**
 * What one subsystem announces about its node: its metadata keys, declared once
 * in its own folder (`src/runtime/announcement.ts`, …), registered with membership
 * by the agent (src/bootstrap/announcements.ts). Readers get typed values:
 * `runtimeAnnouncement.of(member).components`.
 */
export class Announcement<S extends Record<string, KeySpec>> {
  readonly keys: readonly MetadataKey[]

  constructor(
    readonly owner: string,
    private readonly specs: S,
  ) {
    this.keys = Object.entries(specs).map(([name, spec]) => ({ ...spec, name, owner }))
  }

  /**
   * The keys of this announcement that `member` announces with a valid value,
   * typed; a key it does not announce, or announced invalidly, is absent.
   */
  of(member: { readonly meta: MemberMetadata }): Partial<ValuesOf<S>> {
    const meta = member.meta
    const trusted = checked.get(meta)
    const out: Record<string, unknown> = {}
    for (const [name, spec] of Object.entries(this.specs)) {
      const value = meta[name]
      if (value === undefined) continue
      if (trusted?.has(name)) {
        out[name] = value
        continue
      }
      const parsed = spec.schema.safeParse(value)
      if (parsed.success && metadataBytes(value) <= spec.maxBytes) out[name] = parsed.data
    }
    // The one place a metadata value gets its type: checked by the key's own schema above or on arrival.
    return out as Partial<ValuesOf<S>>
  }

  /** The byte budget of one key, for a writer that trims what it announces to fit. */
  budget(name: keyof S & string): number {
    return this.specs[name]!.maxBytes
  }
}
