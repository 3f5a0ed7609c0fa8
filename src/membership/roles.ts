import { z } from 'zod'
import { Announcement } from './announcement.js'
import type { MemberMetadata } from './member.js'

/**
 * Roles with a meaning to Shoal itself. An agent's `--role web` adds free labels
 * beside them (announced, shown, copied by `node copy`, and otherwise ignored).
 */
export const MemberRole = {
  /** `shoal lb`: a load balancer. */
  Lb: 'lb',
  /** Any other member that only watches (an `Observer` started without a role). */
  Observer: 'observer',
} as const
export type MemberRole = (typeof MemberRole)[keyof typeof MemberRole]

/**
 * Observers: members that run no components. An observer has no vote (it never
 * counts towards quorum nor becomes manager), gets no placement and is not
 * counted as a node; it still takes part in failure detection and gossip.
 */
export const OBSERVER_ROLES: readonly MemberRole[] = [MemberRole.Lb, MemberRole.Observer]

/** Membership's own keys: the roles a member announces, and whether it watches. */
export const membershipAnnouncement = new Announcement('membership', {
  roles: {
    schema: z.array(z.string().min(1).max(64)).max(16),
    maxBytes: 512,
    about: 'the roles it announces: `["lb"]` for a load balancer, what `--role` gave an agent, none',
  },
  watch: {
    schema: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    maxBytes: 20,
    about:
      "present when it watches: every member sends it the keys of reach `watchers` (a load balancer, the manager's voters); the number changes when it restarts, so members send them again",
  },
})

/** The watch epoch `member` announces, or null: it is sent every member's details (detail-relay.ts). */
export function watchEpochOf(member: { readonly meta: MemberMetadata }): number | null {
  return membershipAnnouncement.of(member).watch ?? null
}

/** The roles `member` announces (none when it announces none, or an invalid list). */
export function rolesOf(member: { readonly meta: MemberMetadata }): readonly string[] {
  return membershipAnnouncement.of(member).roles ?? []
}

/** True for a role list with an observer role in it (a load balancer's `["lb"]`). */
export function hasObserverRole(roles: readonly string[]): boolean {
  return roles.some((role) => (OBSERVER_ROLES as readonly string[]).includes(role))
}

/** An observer (OBSERVER_ROLES): no vote, no placement, not a node. */
export function isObserver(member: { readonly meta: MemberMetadata }): boolean {
  return hasObserverRole(rolesOf(member))
}

/** A load balancer (`shoal lb`): an observer whose own metadata says what it routes. */
export function isLoadBalancer(member: { readonly meta: MemberMetadata }): boolean {
  return rolesOf(member).includes(MemberRole.Lb)
}
