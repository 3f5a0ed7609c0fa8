/** A bundle the distribution wants running: a component of kind osgi. */
export interface WantedBundle {
  /** The component's name; the bundle's location is `shoal:NAME`. */
  name: string
  /** Content hash of its jar: a bundle is reinstalled only when this changes. */
  sha256: string
  path: string
  startLevel: number
  version: string
  distribution: string
}

/** What the framework holds of ours: component name → bundle id and the hash installed. */
export type InstalledBundles = ReadonlyMap<string, { id: number; sha256: string }>

export type BundleStep =
  | { op: 'uninstall'; name: string; id: number }
  | { op: 'update'; name: string; id: number; path: string }
  | { op: 'install'; name: string; path: string; startLevel: number }
  | { op: 'refresh' }
  | { op: 'start'; name: string }

/**
 * The steps from the bundles installed to the bundles wanted: uninstall what is
 * no longer wanted, update only what changed (by hash), install what is new,
 * refresh the wiring when anything was replaced, then start every wanted bundle
 * in start-level order (lower first; ties by name, for a stable order).
 */
export function planBundles(installed: InstalledBundles, wanted: readonly WantedBundle[]): BundleStep[] {
  const steps: BundleStep[] = []
  const names = new Set(wanted.map((w) => w.name))
  for (const [name, bundle] of installed)
    if (!names.has(name)) steps.push({ op: 'uninstall', name, id: bundle.id })
  for (const w of wanted) {
    const current = installed.get(w.name)
    if (current == null) steps.push({ op: 'install', name: w.name, path: w.path, startLevel: w.startLevel })
    else if (current.sha256 !== w.sha256)
      steps.push({ op: 'update', name: w.name, id: current.id, path: w.path })
  }
  if (steps.some((s) => s.op === 'uninstall' || s.op === 'update')) steps.push({ op: 'refresh' })
  const order = [...wanted].sort((a, b) => a.startLevel - b.startLevel || a.name.localeCompare(b.name))
  for (const w of order) steps.push({ op: 'start', name: w.name })
  return steps
}
