import { TimeHeap } from '../time-heap.js'

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
  private readonly heap = new TimeHeap<SimEvent>()
  private seq = 0
  now = 0

  schedule(at: number, run: () => void): void {
    this.heap.push({ at: Math.max(at, this.now), seq: this.seq++, run })
  }

  after(delay: number, run: () => void): void {
    this.schedule(this.now + delay, run)
  }

  /** Runs the next event, or returns false when there is none before `until`. */
  step(until: number): boolean {
    const first = this.heap.peek()
    if (first === undefined || first.at > until) return false
    this.heap.pop()
    this.now = first.at
    first.run()
    return true
  }

  get size(): number {
    return this.heap.size
  }
}
