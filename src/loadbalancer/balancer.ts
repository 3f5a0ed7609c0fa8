import type { Backend } from './backends.js'

export type BalanceStrategy = 'round-robin' | 'least-outstanding'

/** A backend with what the balancer counts about it. */
export interface Slot {
  backend: Backend
  inflight: number
  /** Until when (ms epoch) passive health keeps it out after a refused connection. */
  ejectedUntil: number
  /** Smooth weighted round-robin's running score (nginx's algorithm). */
  current: number
}

/**
 * Picks the backend for the next request among those that take new requests
 * (ready, not ejected, weight > 0). Round-robin is smooth weighted round-robin,
 * so weights spread evenly instead of in bursts; least-outstanding picks the
 * fewest requests in flight per unit of weight, ties broken by round-robin.
 */
export class Balancer {
  constructor(private readonly strategy: BalanceStrategy) {}

  /** No allocation: it runs once per request, over the proxy's array of backends. */
  pick(slots: readonly Slot[], exclude: ReadonlySet<string> | null, now = Date.now()): Slot | null {
    let least = Number.POSITIVE_INFINITY
    if (this.strategy === 'least-outstanding') {
      for (const slot of slots) if (takes(slot, exclude, now)) least = Math.min(least, load(slot))
    }
    // Smooth weighted round-robin among the candidates (all, or the least loaded).
    let total = 0
    let best: Slot | null = null
    for (const slot of slots) {
      if (!takes(slot, exclude, now)) continue
      if (least !== Number.POSITIVE_INFINITY && load(slot) !== least) continue
      slot.current += slot.backend.weight
      total += slot.backend.weight
      if (best == null || slot.current > best.current) best = slot
    }
    if (best != null) best.current -= total
    return best
  }
}

function takes(slot: Slot, exclude: ReadonlySet<string> | null, now: number): boolean {
  return (
    slot.backend.state === 'ready' &&
    slot.backend.weight > 0 &&
    slot.ejectedUntil <= now &&
    (exclude == null || !exclude.has(slot.backend.key))
  )
}

const load = (slot: Slot): number => slot.inflight / slot.backend.weight
