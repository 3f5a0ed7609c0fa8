import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Node flags for agent processes we launch ourselves: see the shebang of src/cli/main.ts. */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1']

/** The package version, read once from the nearest package.json named "shoal". */
export const VERSION: string = findVersion(dirname(fileURLToPath(import.meta.url)))

function findVersion(dir: string): string {
  for (let current = dir; ; current = dirname(current)) {
    try {
      const pkg = JSON.parse(readFileSync(join(current, 'package.json'), 'utf8')) as {
        name?: string
        version?: string
      }
      if (pkg.name === 'shoal' && pkg.version != null) return pkg.version
    } catch {
      // no package.json here: keep climbing
    }
    if (dirname(current) === current) return '0.0.0'
  }
}
