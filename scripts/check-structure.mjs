// The structure rules of docs/architecture.md, checked on every `npm test` with
// dependency-cruiser's graph of src/ (type-only imports included):
//   1. a file imports another folder only through that folder's index.ts;
//   2. no cycle between folders (a → b → … → a), counting every cross-folder import.
// Prints each violation as `from → to` and exits 1 if there is any.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cruise } from 'dependency-cruiser'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
process.chdir(root)

const folderOf = (path) => /^src\/([^/]+)\//.exec(path)?.[1] ?? null

const result = await cruise(['src'], {
  tsConfig: { fileName: 'tsconfig.json' },
  tsPreCompilationDeps: true,
  validate: true,
  doNotFollow: { path: 'node_modules' },
  exclude: { path: '^dist/' },
  ruleSet: {
    forbidden: [
      {
        name: 'through-index',
        comment: 'another folder is entered only through its index.ts (its one door)',
        severity: 'error',
        from: { path: '^src/([^/]+)/' },
        to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
      },
    ],
  },
})

const { modules, summary } = result.output
const problems = summary.violations.map((v) => `import not through index.ts: ${v.from} → ${v.to}`)

// Folder graph: an edge a → b for every import from a file of a to a file of b.
const edges = new Map()
const example = new Map()
for (const module of modules) {
  const from = folderOf(module.source)
  if (from == null) continue
  for (const dependency of module.dependencies) {
    const to = folderOf(dependency.resolved)
    if (to == null || to === from) continue
    if (!edges.has(from)) edges.set(from, new Set())
    edges.get(from).add(to)
    if (!example.has(`${from}→${to}`))
      example.set(`${from}→${to}`, `${module.source} → ${dependency.resolved}`)
  }
}
const cycles = new Set()
const visit = (folder, path) => {
  const at = path.indexOf(folder)
  if (at >= 0) {
    const cycle = path.slice(at)
    // One spelling per cycle: start at its smallest folder name.
    const start = cycle.indexOf([...cycle].sort()[0])
    cycles.add([...cycle.slice(start), ...cycle.slice(0, start)].join(' → '))
    return
  }
  for (const next of edges.get(folder) ?? []) visit(next, [...path, folder])
}
for (const folder of edges.keys()) visit(folder, [])
for (const cycle of cycles) {
  const folders = cycle.split(' → ')
  const steps = folders.map((f, i) => example.get(`${f}→${folders[(i + 1) % folders.length]}`))
  problems.push(`folder cycle ${cycle} → ${folders[0]}:\n    ${steps.join('\n    ')}`)
}

if (problems.length === 0) {
  console.log(
    `structure: ${modules.length} modules, ${edges.size} folders, every cross-folder import through index.ts, no folder cycle`,
  )
} else {
  for (const problem of problems) console.error(problem)
  console.error(`structure: ${problems.length} problem(s); the rules are in docs/architecture.md`)
  process.exitCode = 1
}
