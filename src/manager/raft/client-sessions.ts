/**
 * Exactly-once application of client commands (Raft thesis §6.3), in the
 * state-machine layer.
 *
 * Why here and not in the core: a client that retries after a timeout or a
 * leader change may get its command into the log twice (the first attempt may or
 * may not have been committed), and only the committed order can decide which
 * copy counts, identically on every node and after every restart. So the log
 * keeps both copies and the state machine applies the first: every replica
 * records, per client, the last sequence number it applied and its result, as
 * part of the replicated state (and so of every snapshot).
 *
 * Clients number their requests with increasing numbers (gaps allowed: a request
 * that never reached the log leaves one) and have one outstanding at a time (a
 * retry repeats the same number). A client that restarts takes a new id.
 *
 * Sessions are bounded: past `maxSessions`, the one least recently used (in log
 * order, so the same on every node) is forgotten. A forgotten client is a new
 * client again, so a retry that reaches the log after its session was forgotten
 * would apply a second time: keep `maxSessions` well above the number of clients
 * active within a retry window (Shoal: one client per agent process, and agents
 * retry for seconds), as the thesis' session expiry does.
 */
import type { RequestId } from './types.js'

export type SessionOutcome<R> =
  /** Not applied before: apply it, then record() its result. */
  | { readonly status: 'new' }
  /** Applied before: answer with the same result, apply nothing. */
  | { readonly status: 'duplicate'; readonly result: R }
  /** Older than the client's last request (a late copy of a retried one): apply nothing. */
  | { readonly status: 'stale' }

interface Session<R> {
  seq: number
  result: R
}

/** The sessions as plain data, for the state machine's snapshot. */
export interface SessionsData<R> {
  readonly sessions: ReadonlyArray<readonly [client: string, seq: number, result: R]>
}

export class ClientSessions<R> {
  /** Insertion order = order of last use in the log: the first one is evicted first. */
  private readonly sessions = new Map<string, Session<R>>()

  constructor(private readonly maxSessions = 10_000) {}

  check(request: RequestId): SessionOutcome<R> {
    const session = this.sessions.get(request.client)
    if (session === undefined) return { status: 'new' }
    if (request.seq === session.seq) return { status: 'duplicate', result: session.result }
    if (request.seq < session.seq) return { status: 'stale' }
    return { status: 'new' }
  }

  record(request: RequestId, result: R): void {
    this.sessions.delete(request.client)
    this.sessions.set(request.client, { seq: request.seq, result })
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next().value as string
      this.sessions.delete(oldest)
    }
  }

  /** check(), then run() and record() when new. `result` is null when nothing was applied and no result is known. */
  applyOnce(request: RequestId, run: () => R): { outcome: SessionOutcome<R>; result: R | null } {
    const outcome = this.check(request)
    if (outcome.status === 'duplicate') return { outcome, result: outcome.result }
    if (outcome.status !== 'new') return { outcome, result: null }
    const result = run()
    this.record(request, result)
    return { outcome, result }
  }

  get size(): number {
    return this.sessions.size
  }

  toData(): SessionsData<R> {
    return { sessions: [...this.sessions].map(([client, s]) => [client, s.seq, s.result] as const) }
  }

  static fromData<R>(data: SessionsData<R>, maxSessions?: number): ClientSessions<R> {
    const sessions = new ClientSessions<R>(maxSessions)
    for (const [client, seq, result] of data.sessions) sessions.sessions.set(client, { seq, result })
    return sessions
  }
}
