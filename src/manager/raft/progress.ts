/**
 * What a leader knows about one follower (voter or learner): how far its log
 * matches, what to send next, and when it last answered.
 *
 * - `probe`: one append at a time until the follower's log position is found
 *   (after an election, a reject, or a lost message);
 * - `replicate`: appends are pipelined, at most `maxInflight` unacknowledged;
 * - `snapshot`: the entries it needs are compacted; a snapshot is on its way.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export class Progress {
  match = 0
  next: number
  state: ProgressState = 'probe'
  /** In probe: an append is out and unanswered (a heartbeat response unpauses). */
  probeSent = false
  /** In snapshot: the index sent, and the tick it was sent at (resent after an election timeout). */
  pendingSnapshot = 0
  snapshotSentAt = 0
  /** Answered since the last check-quorum round. */
  recentActive = false
  /** The largest `sentAt` it echoed in this term: the lease is measured from there. */
  ackedSentAt = Number.NEGATIVE_INFINITY
  /** It could not verify our certificate from its committed configuration at this index: send the chain. */
  chainFrom: number | null = null
  /** Last index of each unacknowledged pipelined append, oldest first. */
  private inflight: number[] = []

  constructor(
    next: number,
    private readonly maxInflight: number,
  ) {
    this.next = next
  }

  /** It acknowledged `index`: returns true when that is news. */
  maybeUpdate(index: number): boolean {
    let updated = false
    if (index > this.match) {
      this.match = index
      this.probeSent = false
      updated = true
    }
    this.next = Math.max(this.next, index + 1)
    this.freeThrough(index)
    return updated
  }

  /**
   * It refused the append whose prevLogIndex was `rejected`; `to` is the leader's
   * guess from the hint (fast back-off). Falls back to probing from there. Returns
   * false for a stale reject (an answer to an append older than what it acked).
   */
  onReject(rejected: number, to: number): boolean {
    if (this.state === 'snapshot') return false
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
    } else if (this.next - 1 !== rejected) return false
    this.state = 'probe'
    this.inflight = []
    this.probeSent = false
    this.next = Math.max(this.match + 1, Math.min(rejected, to), 1)
    return true
  }

  becomeProbe(): void {
    this.next = this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) + 1 : this.match + 1
    this.state = 'probe'
    this.probeSent = false
    this.pendingSnapshot = 0
    this.inflight = []
  }

  becomeReplicate(): void {
    this.state = 'replicate'
    this.next = this.match + 1
    this.probeSent = false
    this.inflight = []
  }

  becomeSnapshot(index: number, now: number): void {
    this.state = 'snapshot'
    this.pendingSnapshot = index
    this.snapshotSentAt = now
    this.inflight = []
  }

  /** An append carrying entries through `last` went out. */
  sent(last: number): void {
    if (this.state === 'replicate') {
      this.next = last + 1
      this.inflight.push(last)
    } else if (this.state === 'probe') this.probeSent = true
  }

  /** No append should go out now (waiting for a probe's answer, the pipeline full, or a snapshot). */
  isPaused(): boolean {
    if (this.state === 'probe') return this.probeSent
    if (this.state === 'snapshot') return true
    return this.inflight.length >= this.maxInflight
  }

  /** A heartbeat answered: the pipe is alive, so let one more append through (a lost one is found by its reject). */
  onHeartbeatResponse(): void {
    if (this.state === 'probe') this.probeSent = false
    else if (this.state === 'replicate' && this.inflight.length >= this.maxInflight) this.inflight.shift()
  }

  private freeThrough(index: number): void {
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift()
  }
}
