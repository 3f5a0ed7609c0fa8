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

  pick(slots: Iterable<Slot>, exclude: ReadonlySet<string>, now = Date.now()): Slot | null {
    let candidates = [...slots].filter(
      (s) =>
        s.backend.state === 'ready' &&
        s.backend.weight > 0 &&
        s.ejectedUntil <= now &&
        !exclude.has(s.backend.key),
    )
    if (candidates.length === 0) return null
    if (this.strategy === 'least-outstanding') {
      const load = (s: Slot) => s.inflight / s.backend.weight
      const least = Math.min(...candidates.map(load))
      candidates = candidates.filter((s) => load(s) === least)
    }
    return smoothWeighted(candidates)
  }
}

function smoothWeighted(candidates: Slot[]): Slot {
  let total = 0
  let best: Slot | undefined
  for (const slot of candidates) {
    slot.current += slot.backend.weight
    total += slot.backend.weight
    if (best == null || slot.current > best.current) best = slot
  }
  best!.current -= total
  return best!
}
