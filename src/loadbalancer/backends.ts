import type { Member } from '../membership/index.js'
import { instanceKey } from '../shared/index.js'

export type BackendState = 'ready' | 'draining'

/** One instance of the served component, as the membership reports it. */
export interface Backend {
  /** Stable across updates: `<node id>/<component>`, `#1` added for a second instance (shared/instance-key.ts). */
  key: string
  node: string
  component: string
  version: string
  /** `http://host:port` */
  endpoint: string
  host: string
  port: number
  /** `ready` takes new requests; `draining` only finishes the ones it has. */
  state: BackendState
  /** Relative share of new requests, 0–256 (HAProxy's range); default 100. */
  weight: number
}

/** Weight a component gets when its metadata names none. */
export const DEFAULT_WEIGHT = 100

interface PublishedComponent {
  name?: unknown
  instance?: unknown
  version?: unknown
  state?: unknown
  endpoint?: unknown
  provides?: unknown
  weight?: unknown
}

/**
 * The backends for `service` in a membership view: every component of an alive
 * member that provides the service over HTTP and is `ready` or `draining`
 * (draining ones stay listed so their in-flight requests can finish and the
 * node can learn when they have). Sorted by key, so every reader agrees.
 */
export function backendsOf(members: readonly Member[], service: string): Backend[] {
  const found: Backend[] = []
  for (const member of members) {
    if (member.state !== 'alive' || !Array.isArray(member.meta.components)) continue
    for (const c of member.meta.components as PublishedComponent[]) {
      const provides = Array.isArray(c.provides) ? c.provides : [c.name]
      if (!provides.includes(service) || typeof c.endpoint !== 'string') continue
      if (c.state !== 'ready' && c.state !== 'draining') continue
      const url = parseEndpoint(c.endpoint)
      if (url == null) continue
      found.push({
        key: instanceKey(member.id, String(c.name), c.instance === 1 ? 1 : 0),
        node: member.id,
        component: String(c.name),
        version: String(c.version),
        endpoint: c.endpoint,
        host: url.host,
        port: url.port,
        state: c.state,
        weight:
          typeof c.weight === 'number' && c.weight >= 0 && c.weight <= 256
            ? Math.round(c.weight)
            : DEFAULT_WEIGHT,
      })
    }
  }
  return found.sort((a, b) => a.key.localeCompare(b.key))
}

function parseEndpoint(endpoint: string): { host: string; port: number } | null {
  try {
    const url = new URL(endpoint)
    const port = Number(url.port)
    if (url.protocol !== 'http:' || !Number.isInteger(port) || port < 1) return null
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port }
  } catch {
    return null
  }
}
