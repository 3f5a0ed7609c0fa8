import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import { canonicalJson } from '../shared/canonical-json.js'
import type { Logger } from '../shared/logger.js'
import { TypedEvents } from '../shared/typed-events.js'

export const ROLLOUT_STRATEGIES = ['all-at-once', 'rolling', 'canary'] as const
export type RolloutStrategy = (typeof ROLLOUT_STRATEGIES)[number]

const recordSchema = z.strictObject({
  schema: z.literal(1),
  /** The version every node should run (`educa@1.0`). */
  distribution: z.string().min(3).max(200),
  strategy: z.enum(ROLLOUT_STRATEGIES),
  /** Grows by one with every new desired version; the highest wins. */
  revision: z.number().int().min(1),
  /** The peer that recorded it, whose libp2p key signs it. */
  issuedBy: z.string().min(1).max(100),
  issuedAt: z.string().datetime(),
})

const signedSchema = z.strictObject({ record: recordSchema, signature: z.string().min(1).max(200) })

export type DesiredRecord = z.output<typeof recordSchema>
export type SignedDesiredRecord = z.output<typeof signedSchema>

/** Member metadata key that carries the newest record a node knows. */
export const DESIRED_KEY = 'desired'

export interface DesiredVersionEvents {
  /** A newer desired version was recorded here or learned from a peer. */
  'desired:changed': DesiredRecord
}

export interface DesiredVersionComponents {
  membership: {
    readonly id: string
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
    updateMetadata(patch: MemberMetadata): Promise<void>
  }
  privateKey: PrivateKey
  db: {
    get(key: string): Promise<string | undefined>
    put(key: string, value: string): Promise<void>
  }
  logger: Logger
}

/** Records kept for `shoal rollouts`. */
const HISTORY_LENGTH = 20

/**
 * The cluster's desired version: a small record signed by the agent that
 * recorded it, revisioned so the newest wins everywhere. It travels in member
 * metadata, so gossip spreads it and membership's anti-entropy hands it to nodes
 * that join or come back later. The manager (a later issue) writes the same
 * record with its term; nodes only ever follow the highest one.
 */
export class DesiredVersion {
  readonly events: TypedEvents<DesiredVersionEvents>
  private signed: SignedDesiredRecord | null = null
  private history: DesiredRecord[] = []
  private readonly log: Logger
  private unsubscribe: Array<() => void> = []

  constructor(private readonly components: DesiredVersionComponents) {
    this.log = components.logger.child('desired')
    this.events = new TypedEvents(this.log)
  }

  async start(): Promise<void> {
    const saved = await this.components.db.get('signed')
    if (saved != null) this.signed = signedSchema.parse(JSON.parse(saved))
    const history = await this.components.db.get('history')
    if (history != null) this.history = z.array(recordSchema).parse(JSON.parse(history))
    if (this.signed != null) await this.components.membership.updateMetadata({ [DESIRED_KEY]: this.signed })
    const { events } = this.components.membership
    this.unsubscribe = [events.on('member:join', this.onMember), events.on('member:update', this.onMember)]
    for (const member of this.components.membership.members()) this.onMember(member)
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off()
  }

  current(): DesiredRecord | null {
    return this.signed?.record ?? null
  }

  /** Newest first. */
  records(): DesiredRecord[] {
    return [...this.history].reverse()
  }

  /** Records a new desired version, signed by this node, one revision above the newest known. */
  async propose(distribution: string, strategy: RolloutStrategy): Promise<DesiredRecord> {
    const record: DesiredRecord = {
      schema: 1,
      distribution,
      strategy,
      revision: (this.current()?.revision ?? 0) + 1,
      issuedBy: this.components.membership.id,
      issuedAt: new Date().toISOString(),
    }
    const signature = await this.components.privateKey.sign(new TextEncoder().encode(canonicalJson(record)))
    await this.adopt({ record, signature: Buffer.from(signature).toString('base64') })
    return record
  }

  private readonly onMember = (member: Member): void => {
    if (member.self || member.meta[DESIRED_KEY] == null) return
    const parsed = signedSchema.safeParse(member.meta[DESIRED_KEY])
    if (!parsed.success || !isNewer(parsed.data.record, this.current())) return
    void verifyRecord(parsed.data)
      .then(async (valid) => {
        if (!valid) {
          this.log.warn('ignored a desired version with a bad signature', { from: member.id })
          return
        }
        if (isNewer(parsed.data.record, this.current())) await this.adopt(parsed.data)
      })
      .catch((err: unknown) => this.log.warn('could not adopt a desired version', { error: String(err) }))
  }

  private async adopt(signed: SignedDesiredRecord): Promise<void> {
    this.signed = signed
    this.history = [...this.history.filter((r) => r.revision !== signed.record.revision), signed.record]
      .sort((a, b) => a.revision - b.revision)
      .slice(-HISTORY_LENGTH)
    await this.components.db.put('signed', JSON.stringify(signed))
    await this.components.db.put('history', JSON.stringify(this.history))
    this.log.info('desired version', {
      distribution: signed.record.distribution,
      revision: signed.record.revision,
      by: signed.record.issuedBy,
    })
    this.events.emit('desired:changed', signed.record)
    await this.components.membership.updateMetadata({ [DESIRED_KEY]: signed })
  }
}

/** Higher revision wins; two records of one revision (recorded at once on two nodes) are ordered by issuer. */
function isNewer(candidate: DesiredRecord, current: DesiredRecord | null): boolean {
  if (current == null) return true
  if (candidate.revision !== current.revision) return candidate.revision > current.revision
  return candidate.issuedBy > current.issuedBy
}

async function verifyRecord(signed: SignedDesiredRecord): Promise<boolean> {
  try {
    const key = peerIdFromString(signed.record.issuedBy).publicKey
    if (key == null) return false
    const bytes = new TextEncoder().encode(canonicalJson(signed.record))
    return await key.verify(bytes, Buffer.from(signed.signature, 'base64'))
  } catch {
    return false
  }
}
