/**
 * What a cluster name may be: it goes into protocol ids, gossip topics and the
 * mDNS service name, so it is a DNS label (lower case, digits, inner hyphens, at
 * most 40 characters). Here because both the agent's config (bootstrap) and the
 * cloud providers check it, and providers must not depend on bootstrap.
 */
export const CLUSTER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/
