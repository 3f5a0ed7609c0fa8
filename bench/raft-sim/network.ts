/**
 * The simulated network between nodes and clients: per-message latency, loss,
 * duplication and reordering (a share of messages is delayed far more than the
 * others), and directed link cuts, so partitions can be one-way or
 * non-transitive (a–b cut while both still reach c).
 */
import type { Random } from '../random.js'

export interface NetworkConditions {
  /** One-way latency range, ms. */
  latencyMin: number
  latencyMax: number
  /** Share of messages lost. */
  loss: number
  /** Share of messages delivered twice. */
  duplicate: number
  /** Share of messages delayed by up to `reorderDelayMax` more (overtaken by later ones). */
  reorder: number
  reorderDelayMax: number
}

export const CALM: NetworkConditions = {
  latencyMin: 1,
  latencyMax: 10,
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelayMax: 0,
}

export class SimNetwork {
  conditions: NetworkConditions = { ...CALM }
  /** Directed cuts "from>to": a message from `from` to `to` is dropped. */
  private readonly cuts = new Map<string, number>()
  sent = 0
  dropped = 0

  constructor(private readonly random: Random) {}

  /** The delays after which copies of a message arrive (none when it is lost or the link is cut). */
  deliveries(from: string, to: string): number[] {
    this.sent++
    if (this.isCut(from, to)) {
      this.dropped++
      return []
    }
    const c = this.conditions
    const copies = this.random() < c.duplicate ? 2 : 1
    const out: number[] = []
    for (let i = 0; i < copies; i++) {
      if (this.random() < c.loss) {
        this.dropped++
        continue
      }
      let delay = c.latencyMin + this.random() * (c.latencyMax - c.latencyMin)
      if (this.random() < c.reorder) delay += this.random() * c.reorderDelayMax
      out.push(delay)
    }
    return out
  }

  /** Cuts from→to (one way). Cuts nest: each cut needs its own heal. */
  cut(from: string, to: string): void {
    const key = `${from}>${to}`
    this.cuts.set(key, (this.cuts.get(key) ?? 0) + 1)
  }

  heal(from: string, to: string): void {
    const key = `${from}>${to}`
    const n = (this.cuts.get(key) ?? 0) - 1
    if (n > 0) this.cuts.set(key, n)
    else this.cuts.delete(key)
  }

  healAll(): void {
    this.cuts.clear()
    this.conditions = { ...CALM }
  }

  isCut(from: string, to: string): boolean {
    return this.cuts.has(`${from}>${to}`)
  }
}
