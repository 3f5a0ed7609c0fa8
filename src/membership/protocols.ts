import { PROTOCOL_VERSION } from './constants.js'

export interface MembershipProtocols {
  /** Direct probes (ping, ping-req) and direct claims. */
  probe: string
  /** Full-state push/pull between two members (served for agents from before the delta sync). */
  sync: string
  /** Push/pull of what differs (delta-sync.ts). */
  deltaSync: string
  /** Gossipsub topic carrying claims. */
  topic: string
}

/** Protocol ids and topic, scoped by cluster name so two clusters on one network never mix. */
export function membershipProtocols(cluster: string): MembershipProtocols {
  return {
    probe: `/shoal/${cluster}/membership/probe/${PROTOCOL_VERSION}`,
    sync: `/shoal/${cluster}/membership/sync/${PROTOCOL_VERSION}`,
    deltaSync: `/shoal/${cluster}/membership/sync/2.0.0`,
    topic: `/shoal/${cluster}/membership/1`,
  }
}
