import type { MiddlewareHandler } from 'hono'
import { callerOf } from './auth.js'

/** One mutating request an agent served: who asked what, and how it ended. */
export interface AuditEntry {
  time: string
  who: string
  role: string | null
  method: string
  path: string
  status: number
}

/** Entries kept per agent: enough for the dashboard's recent activity, bounded in memory. */
const CAPACITY = 500

/**
 * The agent's own audit trail of mutating API requests, newest last. Rollouts
 * carry their own durable record of who asked (the cluster state); this trail
 * adds node operations, publishes and refused attempts, as this agent served them.
 */
export class AuditTrail {
  private readonly entries: AuditEntry[] = []
  private readonly listeners = new Set<() => void>()

  /** Records every POST/PUT/PATCH/DELETE under /api once it is answered (refusals included). */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      await next()
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return
      const caller = callerOf(c.req.raw)
      this.record({
        time: new Date().toISOString(),
        who: caller?.name ?? (c.res.status === 401 ? 'unknown' : 'local'),
        role: caller?.role ?? null,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
      })
    }
  }

  record(entry: AuditEntry): void {
    this.entries.push(entry)
    if (this.entries.length > CAPACITY) this.entries.splice(0, this.entries.length - CAPACITY)
    for (const listener of this.listeners) listener()
  }

  list(): AuditEntry[] {
    return [...this.entries]
  }

  onRecord(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
