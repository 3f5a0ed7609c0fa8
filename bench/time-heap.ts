/** Something due at a time; `seq` (insertion order) breaks ties, so the order never depends on chance. */
export interface Timed {
  readonly at: number
  readonly seq: number
}

/** A binary min-heap by (at, seq): the time line of the simulated clocks (bench/scale, bench/raft-sim). */
export class TimeHeap<T extends Timed> {
  private readonly items: T[] = []

  get size(): number {
    return this.items.length
  }

  /** The earliest, without taking it. */
  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    const heap = this.items
    heap.push(item)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  pop(): T | undefined {
    const heap = this.items
    const top = heap[0]
    const last = heap.pop()
    if (heap.length === 0 || last == null) return top
    heap[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right
      if (smallest === i) break
      ;[heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!]
      i = smallest
    }
    return top
  }

  /** Keeps only the items `keep` accepts (for cancelled timers). */
  retain(keep: (item: T) => boolean): void {
    const live = this.items.filter(keep)
    this.items.length = 0
    for (const item of live) this.push(item)
  }
}

function before(a: Timed, b: Timed): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
