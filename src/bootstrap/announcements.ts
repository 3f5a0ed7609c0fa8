import { artifactsAnnouncement } from '../artifacts/index.js'
import { loadBalancerAnnouncement } from '../loadbalancer/index.js'
import { managerAnnouncement } from '../manager/index.js'
import { MetadataContract } from '../membership/index.js'
import { providersAnnouncement } from '../providers/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'

/**
 * Every metadata key a member may announce, each declared once by the subsystem
 * that writes it (its `announcement.ts`) and registered here, so membership checks
 * every claim against all of them without importing any (agents and observers
 * alike: each reads what the others announce). Membership adds its own (`roles`).
 * The table of keys and budgets: docs/architecture.md, "Member metadata".
 */
export const MEMBER_METADATA: MetadataContract = MetadataContract.of([
  providersAnnouncement,
  runtimeAnnouncement,
  artifactsAnnouncement,
  managerAnnouncement,
  loadBalancerAnnouncement,
])
