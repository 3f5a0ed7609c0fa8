/** How long a suspicion runs and how many must share it (member-table.ts sets them). */
export interface SuspicionTerms {
  /** Independent confirmations one can hope for beyond the first accuser (Lifeguard's k). */
  expected: number
  /**
   * Distinct accusers needed before the member is declared dead (at least 1); asked
   * again as accusations come, since a witness may die meanwhile.
   */
  required: number | (() => number)
  /**
   * Whose accusation counts (the member's observers): a member that only passed a
   * suspicion on (a sync) or watches it from a stale view is no independent witness.
   * Everyone's, when absent.
   */
  witness?: (accuser: string) => boolean
  /** ms: the timeout with every expected confirmation in, and with none. */
  min: number
  max: number
  /**
   * ms: the shortest timeout until `required` witnesses saw the member's port closed
   * (connection refused: its process is gone). Without that, the member may only be
   * stalled (a stopped or starved process keeps its connections) and gets this long
   * to refute. Absent: `min`.
   */
  stallFloor?: number
}

/**
 * One suspicion of one member (Lifeguard): the timer starts at `max` and shrinks
 * towards `min` as independent members confirm it, following
 * timeout(c) = max(min, max - (max - min) x log(c + 1) / log(k + 1)),
 * with c confirmations seen and k expected. When it fires, and `required` distinct
 * witnesses have accused (the first one included), the member is declared dead; a
 * timer that runs out with fewer waits for the missing accusers, so one starved or
 * badly connected observer cannot remove a healthy member by itself. Until as many
 * witnesses found its port closed, the timeout is at least `stallFloor`.
 */
export class Suspicion {
  private readonly accusers = new Set<string>()
  /** Accusers whose probe found the member's port closed (connection refused). */
  private readonly refusedBy = new Set<string>()
  private readonly startedAt: number
  private timer: ReturnType<typeof setTimeout> | undefined
  private done = false
  private ranOut = false

  constructor(
    from: string,
    private readonly terms: SuspicionTerms,
    private readonly onTimeout: () => void,
    private readonly now: () => number = Date.now,
    refused = false,
  ) {
    this.accusers.add(from)
    if (refused) this.refusedBy.add(from)
    this.startedAt = now()
    this.schedule()
  }

  /**
   * Records a confirmation (`refused`: its probe found the port closed); true when
   * `from` had not confirmed before, or now saw the port closed.
   */
  confirm(from: string, refused = false): boolean {
    if (this.done) return false
    const fresh = !this.accusers.has(from)
    const closed = refused && !this.refusedBy.has(from)
    if (!fresh && !closed) return false
    this.accusers.add(from)
    if (refused) this.refusedBy.add(from)
    if (this.terms.witness != null && !this.terms.witness(from)) return true
    if (this.ranOut) this.fireIfAgreed()
    else this.schedule()
    return true
  }

  /** Distinct witnesses that accused so far. */
  get accused(): number {
    const witness = this.terms.witness
    if (witness == null) return this.accusers.size
    let n = 0
    for (const accuser of this.accusers) if (witness(accuser)) n++
    return n
  }

  /** True once the timer ran out with too few accusers: only agreement can end it now. */
  get waitingForAgreement(): boolean {
    return this.ranOut && !this.done
  }

  /** Distinct witnesses whose probe found the port closed. */
  get refused(): number {
    const witness = this.terms.witness
    let n = 0
    for (const accuser of this.refusedBy) if (witness == null || witness(accuser)) n++
    return n
  }

  /** The current timeout in ms, measured from the start of the suspicion. */
  timeout(): number {
    const c = Math.max(0, this.accused - 1)
    const { expected, min, max } = this.terms
    const floor = this.refused >= this.needed() ? min : Math.max(min, this.terms.stallFloor ?? min)
    if (expected < 1) return floor
    const fraction = Math.log(c + 1) / Math.log(expected + 1)
    return Math.max(floor, Math.floor(max - (max - min) * fraction))
  }

  /** Checks again whether the accusers are enough (a witness died meanwhile, so fewer are needed). */
  recheck(): void {
    if (this.ranOut) this.fireIfAgreed()
    else if (!this.done && this.refused > 0) this.schedule()
  }

  cancel(): void {
    this.done = true
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule(): void {
    if (this.timer != null) clearTimeout(this.timer)
    const remaining = Math.max(0, this.timeout() - (this.now() - this.startedAt))
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.ranOut = true
      this.fireIfAgreed()
    }, remaining)
    this.timer.unref?.()
  }

  private needed(): number {
    const { required } = this.terms
    return Math.max(1, typeof required === 'number' ? required : required())
  }

  private fireIfAgreed(): void {
    if (this.done || this.accused < this.needed()) return
    this.done = true
    this.onTimeout()
  }
}
