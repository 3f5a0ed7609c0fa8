import { loadBalancerAnnouncement } from '../loadbalancer/index.js'
import { MemberRole } from '../membership/index.js'
import type { MemberView } from './views.js'

/** A load balancer as the dashboard shows it: from membership, with its own status page. */
export interface LoadBalancerView {
  id: string
  state: string
  /** Its admin listener (status and metrics), where the view asked. */
  url: string | null
  /** Its `/_shoal/lb` answer (service, strategy, backends with counters), or null when unreachable. */
  status: unknown
  error?: string
}

/** How long one load balancer may take to answer before the view shows it as unreachable. */
const STATUS_TIMEOUT_MS = 1_000

/**
 * The load balancers in membership (observers with the `lb` role announce their
 * admin URL) and each one's backends, asked over HTTP; `credential` (derived
 * from the cluster secret) opens an admin listener that asks for tokens.
 */
export async function loadBalancers(
  members: MemberView[],
  credential: string | null = null,
): Promise<LoadBalancerView[]> {
  const observers = members.filter((m) => m.roles.includes(MemberRole.Lb) && m.state !== 'left')
  return Promise.all(
    observers.map(async (m): Promise<LoadBalancerView> => {
      // `admin`: its admin listener; a load balancer from before it had one served its status on `url`.
      const announced = loadBalancerAnnouncement.of(m)
      const url = reachableUrl(m, announced.admin ?? announced.url)
      const base = { id: m.id, state: m.state, url }
      if (url == null) return { ...base, status: null, error: 'it announces no admin URL' }
      if (m.state === 'dead') return { ...base, status: null, error: 'dead' }
      try {
        const res = await fetch(`${url}/_shoal/lb`, {
          headers: credential == null ? {} : { authorization: `Bearer ${credential}` },
          signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
        })
        if (!res.ok) {
          const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null
          return { ...base, status: null, error: body?.error?.message ?? `HTTP ${res.status}` }
        }
        return { ...base, status: await res.json() }
      } catch (err) {
        return { ...base, status: null, error: (err as Error).message }
      }
    }),
  )
}

/** An announced URL, with a wildcard listen address replaced by the host it is a member at. */
function reachableUrl(member: MemberView, url: string | undefined): string | null {
  if (url == null) return null
  const wildcard = /^http:\/\/(0\.0\.0\.0|\[::\])(?=:)/
  if (!wildcard.test(url)) return url
  const host = member.addrs.map((a) => /^\/ip4\/([^/]+)/.exec(a)?.[1]).find((h) => h != null)
  return host == null ? null : url.replace(wildcard, `http://${host}`)
}
