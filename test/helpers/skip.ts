import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The folder where skipping suites leave their reason, one JSON file each. The
 * test command (scripts/test.mjs) sets it and lists the reasons in its closing
 * summary, so a skip is never only a line in the middle of the output.
 */
export const SKIP_DIR_ENV = 'SHOAL_TEST_SKIPS'

/** What scripts/test.mjs reads from each file in SHOAL_TEST_SKIPS. */
export interface SkipRecord {
  /** Test file relative to the repository, as vitest's JSON report names it (after resolving). */
  file: string
  suite: string
  reason: string
}

const root = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Call at a test file's top level with the reason its suite cannot run here
 * (null when it can) and pass the result to `describe.skipIf(… != null)`.
 * A reason is printed at once and, under the test command, recorded for its summary.
 *
 * @param testFile the test file's `import.meta.url`
 */
export function skipReason(
  testFile: string,
  suite: string,
  reason: string | null | undefined,
): string | null {
  if (reason == null) return null
  console.warn(`[skipped] ${suite}: ${reason}`)
  const dir = process.env[SKIP_DIR_ENV]
  if (dir != null && dir !== '') {
    const file = relative(root, fileURLToPath(testFile))
    const record: SkipRecord = { file, suite, reason }
    // One file per record: two workers may skip at once, and no write then interleaves.
    mkdirSync(dir, { recursive: true })
    const name = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}.json`
    writeFileSync(join(dir, name), JSON.stringify(record))
  }
  return reason
}
