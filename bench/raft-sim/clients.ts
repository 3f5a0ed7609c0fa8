/**
 * Simulated clients and the history they record, as a Jepsen-style checker
 * wants it: every operation with its invoke time and its outcome — `ok` (with
 * the position the cluster answered), `fail` (certainly not applied: no attempt
 * was ever appended to a log), or `unknown` (gave up; it may or may not apply).
 *
 * A client has one operation outstanding. A write keeps its (client, seq) across
 * retries, so the cluster applies it once; it retries on another node after a
 * timeout, a redirect or a dropped proposal, and gives up after `maxAttempts`.
 */
import type { NodeId } from '../../src/manager/raft/index.js'
import { pick, type Random } from '../random.js'
import type { EventQueue } from './event-queue.js'
import type { ClientReply, ClientRequest } from './host.js'

export interface WriteOp {
  readonly kind: 'write'
  readonly client: string
  readonly seq: number
  readonly invokedAt: number
  status: 'pending' | 'ok' | 'fail' | 'unknown'
  completedAt: number
  position: number
  /** An attempt may have been appended (it timed out, or its answer was "unknown"). */
  mayHaveApplied: boolean
}

export interface ReadOp {
  readonly kind: 'read'
  readonly client: string
  readonly invokedAt: number
  status: 'pending' | 'ok' | 'unknown'
  completedAt: number
  count: number
}

export type Op = WriteOp | ReadOp

export interface ClientOptions {
  readonly timeoutMs: number
  readonly maxAttempts: number
  /** Pause between two operations, ms (uniform in [0, thinkMs]). */
  readonly thinkMs: number
  /** Share of pauses that are idle spells, and their longest length, ms. */
  readonly idleShare: number
  readonly idleMs: number
  readonly readShare: number
  /** No new operation starts after this time. */
  readonly stopAt: number
}

export interface ClientEnv {
  readonly queue: EventQueue
  readonly random: Random
  hosts(): readonly NodeId[]
  send(from: string, to: NodeId, request: ClientRequest): void
  completed(op: Op): void
}

export class SimClient {
  readonly history: Op[] = []
  private seq = 0
  private requestId = 0
  private current: { op: Op; id: number; attempts: number; target: NodeId | null } | null = null

  constructor(
    readonly name: string,
    private readonly env: ClientEnv,
    private readonly options: ClientOptions,
  ) {}

  start(): void {
    this.env.queue.after(this.thinkTime(), () => this.next())
  }

  /** Mostly busy, sometimes idle for seconds: idle spells let a cut-off node's log keep up, which is when it can win votes. */
  private thinkTime(): number {
    const { thinkMs, idleShare, idleMs } = this.options
    return this.env.random() < idleShare ? this.env.random() * idleMs : this.env.random() * thinkMs
  }

  get busy(): boolean {
    return this.current != null
  }

  onReply(reply: ClientReply): void {
    const current = this.current
    if (current == null || reply.id !== current.id) return
    const { op } = current
    const now = this.env.queue.now
    switch (reply.kind) {
      case 'ok':
        if (op.kind === 'write') this.complete(op, 'ok', reply.position)
        return
      case 'read-ok':
        if (op.kind === 'read') this.complete(op, 'ok', reply.count)
        return
      case 'redirect':
        // A known leader is tried at once; with none known, give the election time.
        this.retry(
          reply.leader,
          now + (reply.leader != null ? 1 + this.env.random() * 5 : 50 + this.env.random() * 100),
        )
        return
      case 'dropped':
        this.retry(null, now + 5 + this.env.random() * 20)
        return
      case 'unknown':
        if (op.kind === 'write') op.mayHaveApplied = true
        this.retry(null, now + 5 + this.env.random() * 20)
        return
    }
  }

  private next(): void {
    if (this.env.queue.now >= this.options.stopAt) return
    const invokedAt = this.env.queue.now
    const op: Op =
      this.env.random() < this.options.readShare
        ? { kind: 'read', client: this.name, invokedAt, status: 'pending', completedAt: 0, count: 0 }
        : {
            kind: 'write',
            client: this.name,
            seq: ++this.seq,
            invokedAt,
            status: 'pending',
            completedAt: 0,
            position: 0,
            mayHaveApplied: false,
          }
    this.history.push(op)
    this.current = { op, id: 0, attempts: 0, target: null }
    this.attempt(null)
  }

  private attempt(target: NodeId | null): void {
    const current = this.current!
    if (current.attempts >= this.options.maxAttempts) {
      this.complete(
        current.op,
        current.op.kind === 'write' && !current.op.mayHaveApplied ? 'fail' : 'unknown',
        0,
      )
      return
    }
    current.attempts++
    current.id = ++this.requestId
    current.target = target ?? pick(this.env.random, this.env.hosts())
    const { op, id } = current
    const request: ClientRequest =
      op.kind === 'write'
        ? { kind: 'write', id, client: this.name, seq: op.seq }
        : { kind: 'read', id, client: this.name }
    this.env.send(this.name, current.target, request)
    this.env.queue.after(this.options.timeoutMs, () => {
      if (this.current !== current || current.id !== id) return
      // No answer: the request may have been appended, and may still apply.
      if (op.kind === 'write') op.mayHaveApplied = true
      this.attempt(null)
    })
  }

  private retry(target: NodeId | null, at: number): void {
    const current = this.current!
    const id = current.id
    current.id = -1
    this.env.queue.schedule(at, () => {
      if (this.current === current && current.id === -1 && id >= 0) this.attempt(target)
    })
  }

  private complete(op: Op, status: 'ok' | 'fail' | 'unknown', value: number): void {
    const now = this.env.queue.now
    op.completedAt = now
    if (op.kind === 'write') {
      op.status = status
      op.position = value
    } else {
      op.status = status === 'ok' ? 'ok' : 'unknown'
      op.count = value
    }
    this.current = null
    this.env.completed(op)
    this.env.queue.after(this.thinkTime(), () => this.next())
  }
}
