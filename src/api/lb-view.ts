import type { MemberView } from './views.js'

/** A load balancer as the dashboard shows it: from membership, with its own status page. */
export interface LoadBalancerView {
  id: string
  state: string
  url: string | null
  /** Its `/_shoal/lb` answer (service, strategy, backends with counters), or null when unreachable. */
  status: unknown
  error?: string
}

/** How long one load balancer may take to answer before the view shows it as unreachable. */
const STATUS_TIMEOUT_MS = 1_000

/**
 * The load balancers in membership (observers with the `lb` role announce their
 * URL) and each one's backends, asked over HTTP.
 */
export async function loadBalancers(members: MemberView[]): Promise<LoadBalancerView[]> {
  const observers = members.filter((m) => m.roles.includes('lb') && m.state !== 'left')
  return Promise.all(
    observers.map(async (m): Promise<LoadBalancerView> => {
      const url = reachableUrl(m)
      const base = { id: m.id, state: m.state, url }
      if (url == null) return { ...base, status: null, error: 'it announces no URL' }
      if (m.state === 'dead') return { ...base, status: null, error: 'dead' }
      try {
        const res = await fetch(`${url}/_shoal/lb`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) })
        return { ...base, status: await res.json() }
      } catch (err) {
        return { ...base, status: null, error: (err as Error).message }
      }
    }),
  )
}

/** Its announced URL, with a wildcard listen address replaced by the host it is a member at. */
function reachableUrl(member: MemberView): string | null {
  const url = member.meta.url
  if (typeof url !== 'string') return null
  const wildcard = /^http:\/\/(0\.0\.0\.0|\[::\])(?=:)/
  if (!wildcard.test(url)) return url
  const host = member.addrs.map((a) => /^\/ip4\/([^/]+)/.exec(a)?.[1]).find((h) => h != null)
  return host == null ? null : url.replace(wildcard, `http://${host}`)
}
