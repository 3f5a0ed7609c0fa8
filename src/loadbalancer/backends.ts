import type { Member } from '../membership/index.js'
import { DEFAULT_WEIGHT, instancesOf } from '../runtime/index.js'
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

/**
 * The backends for `service` in a membership view: every component of an alive
 * member that provides the service over HTTP and is `ready` or `draining`
 * (draining ones stay listed so their in-flight requests can finish and the
 * node can learn when they have). Sorted by key, so every reader agrees.
 */
export function backendsOf(members: readonly Member[], service: string): Backend[] {
  const found: Backend[] = []
  for (const { member, component: c, endpoint } of instancesOf(members, service, ['ready', 'draining'])) {
    const url = parseEndpoint(endpoint)
    if (url == null) continue
    found.push({
      key: instanceKey(member.id, c.name, c.instance === 1 ? 1 : 0),
      node: member.id,
      component: c.name,
      version: c.version,
      endpoint,
      host: url.host,
      port: url.port,
      state: c.state === 'ready' ? 'ready' : 'draining',
      weight: Math.round(c.weight ?? DEFAULT_WEIGHT),
    })
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
