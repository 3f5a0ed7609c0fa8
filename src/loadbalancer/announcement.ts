import { z } from 'zod'
import { type Announced, Announcement, isLoadBalancer, type Member } from '../membership/index.js'

/**
 * What a load balancer (`shoal lb`) announces about itself: the service it routes,
 * the draining backends it has nothing in flight to, and its two listeners.
 * Sizes: docs/architecture.md, "Member metadata".
 */
export const loadBalancerAnnouncement = new Announcement('loadbalancer', {
  service: {
    schema: z.string().min(1).max(128),
    maxBytes: 160,
    about: 'the service it routes',
  },
  drained: {
    schema: z.array(z.string().max(256)).max(1024),
    maxBytes: 12_288,
    about:
      '`["<node id>/<component>", …]`: draining backends it has nothing in flight to (~180 at once; the rest follow as those stop)',
  },
  url: {
    schema: z.string().max(256),
    maxBytes: 300,
    about: "its public listener, the application's address",
  },
  admin: {
    schema: z.string().max(256),
    maxBytes: 300,
    about: 'its admin listener: status (`/_shoal/lb`) and metrics, for dashboards',
  },
})
export type LoadBalancerAnnouncement = Announced<typeof loadBalancerAnnouncement>

/**
 * The drain handshake, load balancer side: true once every alive load balancer
 * routing to one of `services` lists the backend `key` as drained. A draining
 * node waits for this before it stops the component (docs/loadbalancer.md).
 */
export function drainConfirmed(
  members: readonly Member[],
  key: string,
  services: readonly string[],
): boolean {
  return members.every((member) => {
    if (member.state !== 'alive' || !isLoadBalancer(member)) return true
    const { service, drained = [] } = loadBalancerAnnouncement.of(member)
    return service == null || !services.includes(service) || drained.includes(key)
  })
}

/**
 * `drained` as it fits its budget: the first keys (sorted) that do; the others are
 * confirmed once those backends have stopped and left the list.
 */
export function fitDrained(keys: readonly string[]): { drained: string[]; left: number } {
  const budget = loadBalancerAnnouncement.budget('drained')
  const drained: string[] = []
  let bytes = 2
  for (const key of [...keys].sort()) {
    const more = Buffer.byteLength(JSON.stringify(key)) + (drained.length > 0 ? 1 : 0)
    if (bytes + more > budget) break
    drained.push(key)
    bytes += more
  }
  return { drained, left: keys.length - drained.length }
}
