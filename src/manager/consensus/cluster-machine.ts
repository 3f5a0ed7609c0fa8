/**
 * The replicated state machine: the cluster state (targets, placement,
 * rollouts, unpublished versions) as the committed Raft log makes it, applied
 * identically on every voter.
 *
 * Each command entry is a `ClusterChange` the leader computed from the state it
 * had applied (`base`, the version it read): new values of some fields and the
 * rollout records it created or moved. Applying is a compare-and-set: a change
 * whose base is no longer the current version does nothing (`conflict`), and
 * its proposer decides again from the newer state. The leader proposes one
 * change at a time, so a conflict only arises across a change of leader.
 * Deciding on the leader and applying by compare-and-set keeps the apply step
 * trivially deterministic (no clock, no membership view inside it) while every
 * decision is still made on the newest committed state.
 *
 * A client's request id (client, seq) is applied once (ClientSessions): a retry
 * that reaches the log twice gets the first copy's answer.
 */
import { z } from 'zod'
import { AUDIT_LENGTH, HISTORY_LENGTH } from '../constants.js'
import { ClientSessions, type Entry, type RequestId, type Snapshot } from '../raft/index.js'
import {
  type ClusterState,
  emptyState,
  type ReplicatedFields,
  type RolloutRecord,
  replicatedFieldsSchema,
  rolloutSchema,
} from '../record.js'

const unpublishedEntry = z.strictObject({
  id: z.string().max(200),
  by: z.string().max(200),
  at: z.string().max(40),
})

/** What a command's client is told: the rollout it created or changed, or what an unpublish did. */
export const commandAnswerSchema = z.union([
  z.strictObject({ rollout: z.string().max(40) }),
  z.strictObject({
    unpublished: z.strictObject({
      result: z.enum(['unpublished', 'already-unpublished']),
      entry: unpublishedEntry,
    }),
  }),
])
export type CommandAnswer = z.output<typeof commandAnswerSchema>

export const clusterChangeSchema = z.strictObject({
  v: z.literal(1),
  /** The version (log index of the last applied change) the leader decided on. */
  base: z.number().int().min(0),
  set: replicatedFieldsSchema.partial(),
  /** Rollout records replaced by id, or added first (newest first) when new. */
  rollouts: z.array(rolloutSchema),
  answer: commandAnswerSchema.nullable(),
})
export type ClusterChange = z.output<typeof clusterChangeSchema>

/** What applying one entry did. */
export type ApplyOutcome =
  | { status: 'applied'; answer: CommandAnswer | null }
  /** The same request applied earlier: its answer then. */
  | { status: 'duplicate'; answer: CommandAnswer }
  /** Decided on an older version, or an older copy of a retried request: nothing changed. */
  | { status: 'conflict' | 'stale' }
  /** Not a command (a term start, a configuration), or one this version cannot read. */
  | { status: 'none' }

const snapshotSchema = z.strictObject({
  v: z.literal(1),
  version: z.number().int().min(0),
  fields: replicatedFieldsSchema,
  rollouts: z.array(rolloutSchema),
  sessions: z.array(z.tuple([z.string(), z.number(), commandAnswerSchema])),
})

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function encodeChange(change: ClusterChange): Uint8Array {
  return encoder.encode(JSON.stringify(change))
}

export class ClusterMachine {
  /** Log index of the last change applied (what a change's `base` names). */
  version = 0
  /** Log index of the last entry applied, of any kind. */
  lastIndex = 0
  private fields: ReplicatedFields = fieldsOf(emptyState())
  private rollouts: RolloutRecord[] = []
  private sessions = new ClientSessions<CommandAnswer>()

  /** The state as applied, in the shape agents read (the writer's fields are filled in when it is published). */
  state(): ClusterState {
    return { ...emptyState(), ...structuredClone(this.fields), rollouts: structuredClone(this.rollouts) }
  }

  /** The answer already given to `request`, if it was applied. */
  answered(request: RequestId): CommandAnswer | null {
    const outcome = this.sessions.check(request)
    return outcome.status === 'duplicate' ? outcome.result : null
  }

  apply(entry: Entry): ApplyOutcome {
    this.lastIndex = entry.index
    if (entry.kind !== 'command') return { status: 'none' }
    let change: ClusterChange
    try {
      change = clusterChangeSchema.parse(JSON.parse(decoder.decode(entry.data)))
    } catch {
      // Written by a newer agent, or damaged: every node skips it alike.
      return { status: 'none' }
    }
    const request = entry.request
    if (request != null) {
      const seen = this.sessions.check(request)
      if (seen.status === 'duplicate') return { status: 'duplicate', answer: seen.result }
      if (seen.status === 'stale') return { status: 'stale' }
    }
    if (change.base !== this.version) return { status: 'conflict' }
    Object.assign(this.fields, change.set)
    for (const record of change.rollouts) {
      const at = this.rollouts.findIndex((r) => r.id === record.id)
      if (at >= 0) this.rollouts[at] = record
      else this.rollouts.unshift(record)
    }
    if (this.rollouts.length > AUDIT_LENGTH) this.rollouts.length = AUDIT_LENGTH
    for (let i = HISTORY_LENGTH; i < this.rollouts.length; i++) this.rollouts[i] = slim(this.rollouts[i]!)
    this.version = entry.index
    if (request != null && change.answer != null) this.sessions.record(request, change.answer)
    return { status: 'applied', answer: change.answer }
  }

  encode(): Uint8Array {
    const data: z.input<typeof snapshotSchema> = {
      v: 1,
      version: this.version,
      fields: this.fields,
      rollouts: this.rollouts,
      sessions: this.sessions.toData().sessions.map(([c, s, r]) => [c, s, r]),
    }
    return encoder.encode(JSON.stringify(data))
  }

  restore(snapshot: Snapshot): void {
    this.lastIndex = snapshot.meta.index
    if (snapshot.data.byteLength === 0) {
      this.version = 0
      this.fields = fieldsOf(emptyState())
      this.rollouts = []
      this.sessions = new ClientSessions()
      return
    }
    const data = snapshotSchema.parse(JSON.parse(decoder.decode(snapshot.data)))
    this.version = data.version
    this.fields = data.fields
    this.rollouts = data.rollouts
    this.sessions = ClientSessions.fromData({ sessions: data.sessions })
  }

  /**
   * The change that turns the applied state into `next`, decided on this version;
   * null when `next` changes nothing.
   */
  diff(next: ClusterState, answer: CommandAnswer | null): ClusterChange | null {
    const set: Partial<ReplicatedFields> = {}
    const wanted = fieldsOf(next)
    for (const key of Object.keys(wanted) as Array<keyof ReplicatedFields>)
      if (JSON.stringify(wanted[key]) !== JSON.stringify(this.fields[key]))
        (set as Record<string, unknown>)[key] = wanted[key]
    const byId = new Map(this.rollouts.map((r) => [r.id, r]))
    // Oldest first, so records added by one change keep their newest-first order once applied.
    const rollouts = next.rollouts
      .filter((r) => JSON.stringify(r) !== JSON.stringify(byId.get(r.id)))
      .reverse()
    if (Object.keys(set).length === 0 && rollouts.length === 0 && answer == null) return null
    return { v: 1, base: this.version, set, rollouts, answer }
  }
}

function fieldsOf(state: ClusterState): ReplicatedFields {
  const { defaultTarget, targets, placement, placementFrom, unplaced, unpublished } = state
  return {
    defaultTarget,
    targets,
    placement,
    placementFrom,
    unplaced,
    ...(unpublished ? { unpublished } : {}),
  }
}

/** An old rollout as the audit trail keeps it: without its per-node maps. */
function slim(record: RolloutRecord): RolloutRecord {
  if (Object.keys(record.progress).length === 0 && Object.keys(record.baseTargets).length === 0) return record
  const { updatingSince: _u, failures: _f, ...kept } = record
  return { ...kept, progress: {}, baseTargets: {}, scope: [] }
}
