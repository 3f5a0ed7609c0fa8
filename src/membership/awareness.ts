/**
 * Lifeguard's local health: a score that rises when this node's own probes look
 * unreliable (helpers did not even answer with a nack, or others suspected us) and
 * falls on every clean probe. Probe intervals and timeouts are stretched by
 * (score + 1), so an overloaded node slows down instead of accusing healthy peers.
 */
export class Awareness {
  private score = 0

  constructor(private readonly max: number) {}

  apply(delta: number): void {
    this.score = Math.min(this.max, Math.max(0, this.score + delta))
  }

  get health(): number {
    return this.score
  }

  scale(ms: number): number {
    return ms * (this.score + 1)
  }
}
