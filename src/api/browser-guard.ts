import type { MiddlewareHandler } from 'hono'
import { isLoopback } from '../shared/index.js'
import { ForbiddenHostError, ForbiddenOriginError } from './errors.js'

/**
 * What a web browser could be tricked into, refused:
 * - a request whose `Origin` is another site, for anything but GET/HEAD (a page the
 *   operator opens POSTing to http://127.0.0.1:7070/api/…, CSRF);
 * - without tokens (an API on loopback), a `Host` that is not a loopback name
 *   (DNS rebinding: evil.example resolving to 127.0.0.1 would make the API
 *   same-origin with that page).
 * The CLI and scripts send no Origin and a loopback Host, so they are not affected.
 */
export function browserGuard(tokensConfigured: boolean): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header('host') ?? new URL(c.req.url).host
    if (!tokensConfigured && !isLoopback(hostname(host)))
      throw new ForbiddenHostError(
        `this API answers only to loopback host names without tokens, not "${host}"`,
      )
    const origin = c.req.header('origin')
    const mutating = c.req.method !== 'GET' && c.req.method !== 'HEAD'
    if (mutating && origin != null && !sameOrigin(origin, host))
      throw new ForbiddenOriginError(`requests from ${origin} are not accepted`)
    if (mutating && c.req.header('sec-fetch-site') === 'cross-site')
      throw new ForbiddenOriginError('cross-site requests are not accepted')
    return next()
  }
}

/** The name in a Host header, without port or IPv6 brackets. */
function hostname(host: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(host)
  if (bracketed != null) return bracketed[1]!
  return host.replace(/:\d+$/, '')
}

function sameOrigin(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host
  } catch {
    return false
  }
}
