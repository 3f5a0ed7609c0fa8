/** A shuffled copy of `items` (Fisher–Yates on Math.random: the simulation's clock seeds it). */
export function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** Up to `count` of `items`, chosen at random. */
export function pickRandom<T>(items: readonly T[], count: number): T[] {
  return shuffle(items).slice(0, count)
}
