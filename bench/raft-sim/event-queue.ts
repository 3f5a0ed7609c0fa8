/**
 * The simulation's time line: events ordered by (time, insertion), a binary heap.
 * Same seed, same order: ties are broken by insertion, never by chance.
 */
export interface SimEvent {
  readonly at: number
  readonly seq: number
  readonly run: () => void
}

export class EventQueue {
  private heap: SimEvent[] = []
  private seq = 0
  now = 0

  schedule(at: number, run: () => void): void {
    const event = { at: Math.max(at, this.now), seq: this.seq++, run }
    const heap = this.heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  after(delay: number, run: () => void): void {
    this.schedule(this.now + delay, run)
  }

  /** Runs the next event, or returns false when there is none before `until`. */
  step(until: number): boolean {
    const heap = this.heap
    const first = heap[0]
    if (first === undefined || first.at > until) return false
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r
        if (m === i) break
        ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
        i = m
      }
    }
    this.now = first.at
    first.run()
    return true
  }

  get size(): number {
    return this.heap.length
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
