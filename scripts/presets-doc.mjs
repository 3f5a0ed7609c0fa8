// Writes the "Timer presets" section of docs/configuration.md from the preset
// table in src/shared/presets.ts (`npm run docs:presets`); with `--check` it only
// says whether the page is up to date (exit 1 when it is not). The table file
// imports nothing, so Node 24 loads it as it is (type stripping), without a build.
// test/unit/presets.test.ts makes the same check on every test run.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { withPresetDocs } from '../src/shared/presets.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const page = join(root, 'docs', 'configuration.md')
const current = readFileSync(page, 'utf8')
const wanted = withPresetDocs(current)
if (process.argv.includes('--check')) {
  if (wanted !== current) {
    console.error('docs/configuration.md is out of date with src/shared/presets.ts: run npm run docs:presets')
    process.exit(1)
  }
  console.log('docs/configuration.md is up to date')
} else if (wanted === current) {
  console.log('docs/configuration.md was up to date')
} else {
  writeFileSync(page, wanted)
  console.log('docs/configuration.md: timer presets section written')
}
