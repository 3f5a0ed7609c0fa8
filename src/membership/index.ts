/**
 * Membership: the cluster view (SWIM-style failure detection over libp2p,
 * dissemination over gossipsub, anti-entropy state sync) and its events.
 */
import type { Logger } from '../shared/index.js'
import { type MembershipTimers, resolveTimers } from './config.js'
import type { MemberMetadata } from './member.js'
import { type IncarnationStore, Membership, type MembershipComponents } from './membership.js'
import type { MembershipNetwork } from './network.js'

/** Re-exported for the CLI and providers; its home is the preset table, src/shared/presets.ts. */
export type { TimerPreset } from '../shared/index.js'
export { type MembershipTimers, resolveTimers, suspicionBounds } from './config.js'
export type { MembershipEvents } from './events.js'
export type { Claim, Member, MemberMetadata, MemberRecord, MemberState } from './member.js'
export type { IncarnationStore, MembershipComponents, MembershipStats } from './membership.js'
export { Membership } from './membership.js'
export type { MembershipNetwork } from './network.js'
export { type MembershipProtocols, membershipProtocols } from './protocols.js'
export { viewDigest } from './view-digest.js'

export interface MembershipInit {
  /** Cluster name; scopes the protocols and the gossip topic. */
  cluster: string
  /** Every timer, a preset's (`presetTimers(preset).membership`, src/shared/presets.ts) with any overrides; checked here. */
  timers: MembershipTimers
  /** Multiaddrs to dial while this node knows no other member. */
  bootstrap?: string[]
  /** Initial metadata this node publishes about itself. */
  meta?: MemberMetadata
}

export function createMembership(
  init: MembershipInit,
  components: { network: MembershipNetwork; store: IncarnationStore; logger: Logger },
): Membership {
  const deps: MembershipComponents = components
  return new Membership(deps, {
    cluster: init.cluster,
    timers: resolveTimers(init.timers),
    bootstrap: init.bootstrap ?? [],
    meta: init.meta ?? {},
  })
}
