/**
 * Membership: the cluster view (SWIM-style failure detection over libp2p,
 * dissemination over gossipsub, anti-entropy state sync) and its events.
 */
import type { Logger } from '../shared/index.js'
import { type MembershipTimers, resolveTimers } from './config.js'
import type { MemberMetadata } from './member.js'
import { type IncarnationStore, Membership, type MembershipComponents } from './membership.js'
import type { MetadataContract } from './metadata-contract.js'
import type { MembershipNetwork } from './network.js'

/** Re-exported for the CLI and providers; its home is the preset table, src/shared/presets.ts. */
export type { TimerPreset } from '../shared/index.js'
export {
  type Announced,
  Announcement,
  type KeySpec,
  type MetadataKey,
  metadataBytes,
} from './announcement.js'
export { type MembershipTimers, resolveTimers, suspicionBounds } from './config.js'
export { MAX_METADATA_BYTES } from './constants.js'
export {
  MembershipMessageError,
  MetadataError,
  MetadataInvalidError,
  MetadataTooLargeError,
} from './errors.js'
export type { MembershipEvents } from './events.js'
export type { Claim, Member, MemberMetadata, MemberRecord, MemberState } from './member.js'
export type { IncarnationStore, MembershipComponents, MembershipStats } from './membership.js'
export { Membership } from './membership.js'
export { type DroppedKey, MetadataContract } from './metadata-contract.js'
export type { MembershipNetwork } from './network.js'
export { type MembershipProtocols, membershipProtocols } from './protocols.js'
export {
  hasObserverRole,
  isLoadBalancer,
  isObserver,
  MemberRole,
  membershipAnnouncement,
  OBSERVER_ROLES,
  rolesOf,
} from './roles.js'
export { viewDigest } from './view-digest.js'

export interface MembershipInit {
  /** Cluster name; scopes the protocols and the gossip topic. */
  cluster: string
  /** Every timer, a preset's (`presetTimers(preset).membership`, src/shared/presets.ts) with any overrides; checked here. */
  timers: MembershipTimers
  /** Multiaddrs to dial while this node knows no other member. */
  bootstrap?: string[]
  /** Initial metadata this node publishes about itself (checked against `contract`). */
  meta?: MemberMetadata
  /**
   * Every metadata key a member may announce, with its owner's schema and budget
   * (the agent's is src/bootstrap/announcements.ts): peers' claims are checked
   * against it once, when applied, and this node's own writes before they go out.
   */
  contract: MetadataContract
}

export function createMembership(
  init: MembershipInit,
  components: { network: MembershipNetwork; store: IncarnationStore; logger: Logger },
): Membership {
  const deps: MembershipComponents = components
  return new Membership(
    {
      cluster: init.cluster,
      timers: resolveTimers(init.timers),
      bootstrap: init.bootstrap ?? [],
      meta: init.meta ?? {},
      contract: init.contract,
    },
    deps,
  )
}
