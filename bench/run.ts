/** Benchmark entry: `npm run bench -- <suite> [--sizes 10,25,50,100] [--no-processes]`. */
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runMembership } from './membership.js'

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url))

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    sizes: { type: 'string', default: '10,25,50,100' },
    'no-processes': { type: 'boolean', default: false },
  },
})
const suite = positionals[0] ?? 'membership'
if (suite !== 'membership') {
  console.error(`unknown benchmark suite "${suite}" (available: membership)`)
  process.exit(2)
}
const sizes = values.sizes.split(',').map(Number)
if (!sizes.every((n) => Number.isInteger(n) && n >= 2)) {
  console.error(`--sizes wants whole numbers >= 2, got "${values.sizes}"`)
  process.exit(2)
}

const { report, text } = await runMembership({ sizes, processes: !values['no-processes'] })
await mkdir(RESULTS, { recursive: true })
const file = `${RESULTS}${suite}.json`
await writeFile(file, `${JSON.stringify(report, null, 2)}\n`)
console.log(text)
console.log(`\nresults: ${file} (${report.durationS} s)`)
// libp2p and level can leave handles open briefly after stop; the run is over.
process.exit(0)
