// The test command (`npm test`): build, type check, lint, then every suite in two
// vitest runs, and a closing summary of what ran, what failed, what skipped and
// why. Every step runs even when an earlier one failed, so one failure never hides
// another; the exit code is 1 if any step failed.
//
// The second vitest run takes the files that must not share the machine's cores
// with another heavy file (vitest.config.ts says why); it runs them one at a time.
// Suites that cannot run here (no HAProxy, no root, …) record their reason through
// test/helpers/skip.ts in the folder named by SHOAL_TEST_SKIPS, read back here.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const VITEST = join(root, 'node_modules', 'vitest', 'vitest.mjs')
const REPORTER = join(root, 'scripts', 'vitest-outcome-reporter.mjs')

/** Run alone, after the rest, one file at a time (see vitest.config.ts). */
const RUN_ALONE = [
  'test/e2e/manager-cli.test.ts',
  'test/e2e/dashboard.test.ts',
  'test/e2e/dashboard-analysis.test.ts',
]
/** Not part of `npm test`: needs root and takes minutes; run with `npm run test:splits`. */
const SEPARATE = { 'test/e2e/netns-split.test.ts': 'npm run test:splits, as root' }
/** What `bash .ci/run` installs so that no suite skips (as root, or with sudo). */
const INSTALL_HINT =
  'bash .ci/run as root (or with sudo) installs haproxy, openssh-server, chromium, felix-main, ' +
  'a JDK and iproute2; the sshd and network-namespace suites also need the tests to run as root'

const work = mkdtempSync(join(tmpdir(), 'shoal-test-'))
const skipDir = join(work, 'skips')

const steps = [
  { name: 'build', command: ['npm', 'run', '--silent', 'build'] },
  { name: 'typecheck', command: ['npm', 'run', '--silent', 'typecheck'] },
  { name: 'lint', command: ['npm', 'run', '--silent', 'lint'] },
  {
    name: 'structure',
    what: 'folders entered through index.ts, no folder cycle',
    command: ['npm', 'run', '--silent', 'structure'],
  },
  {
    name: 'suites',
    what: 'vitest, two files at a time',
    report: join(work, 'suites.json'),
    command: [
      process.execPath,
      VITEST,
      'run',
      ...[...RUN_ALONE, ...Object.keys(SEPARATE)].flatMap((f) => ['--exclude', f]),
    ],
  },
  {
    name: 'run alone',
    what: 'vitest, one file at a time',
    report: join(work, 'alone.json'),
    command: [process.execPath, VITEST, 'run', '--maxWorkers', '1', '--minWorkers', '1', ...RUN_ALONE],
  },
]

let current = null
let interrupted = null
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    interrupted = signal
    // A terminal's Ctrl-C reaches the child too; a signal sent to this process alone is passed on.
    current?.kill(signal)
  })
}

function run(step) {
  const [command, ...args] = step.command
  if (step.report != null) args.push('--reporter=default', `--reporter=${REPORTER}`)
  return new Promise((done) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, SHOAL_TEST_SKIPS: skipDir, SHOAL_TEST_OUTCOME: step.report ?? '' },
    })
    current = child
    child.once('error', (err) => {
      console.error(`${step.name}: ${err.message}`)
      done(127)
    })
    child.once('exit', (code, signal) => done(code ?? (signal != null ? 128 : 1)))
  }).finally(() => {
    current = null
  })
}

const results = []
const started = Date.now()
for (const step of steps) {
  if (interrupted != null) {
    results.push({ step, code: null, ms: 0 })
    continue
  }
  console.log(
    `\n▶ ${step.name}: ${step.command.slice(step.command[0] === process.execPath ? 1 : 0).join(' ')}\n`,
  )
  const t0 = Date.now()
  const code = await run(step)
  results.push({
    step,
    code,
    ms: Date.now() - t0,
    report: step.report != null ? readReport(step.report) : null,
  })
}

/** What scripts/vitest-outcome-reporter.mjs wrote, or null when the run ended before it could. */
function readReport(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    return null
  }
}

function readSkips() {
  if (!existsSync(skipDir)) return []
  const records = []
  for (const name of readdirSync(skipDir).sort()) {
    try {
      records.push(JSON.parse(readFileSync(join(skipDir, name), 'utf8')))
    } catch {}
  }
  // A file's reasons once each (a suite's module may be loaded more than once).
  const seen = new Set()
  return records.filter((r) => {
    const key = `${r.file}\0${r.suite}\0${r.reason}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`
const firstLine = (text) =>
  String(text ?? '')
    .split('\n')
    .find((l) => l.trim() !== '')
    ?.trim()
    .slice(0, 300) ?? ''

// Tallies and the failed and skipped tests of both vitest runs, per file.
const tally = { files: 0, tests: 0, passed: 0, failed: 0, skipped: 0 }
const failures = []
const skippedByFile = new Map()
for (const r of results) {
  if (r.report == null) continue
  r.tally = { files: 0, tests: 0, passed: 0, failed: 0, skipped: 0 }
  for (const file of r.report.modules) {
    const name = relative(root, file.file)
    r.tally.files++
    const failedHere = []
    for (const t of file.tests) {
      r.tally.tests++
      if (t.state === 'passed') r.tally.passed++
      else if (t.state === 'failed') {
        r.tally.failed++
        failedHere.push(`${name} > ${t.name}: ${firstLine(t.error)}`)
      } else {
        r.tally.skipped++
        skippedByFile.set(name, (skippedByFile.get(name) ?? 0) + 1)
      }
    }
    // Errors outside any test: an import that failed, a failing beforeAll or afterAll.
    for (const e of file.errors) failedHere.push(`${name}: ${firstLine(e)}`)
    if (file.state === 'failed' && failedHere.length === 0)
      failedHere.push(`${name}: failed outside its tests`)
    failures.push(...failedHere)
  }
  for (const e of r.report.unhandled) failures.push(`unhandled error in ${r.step.name}: ${firstLine(e)}`)
  for (const k of Object.keys(tally)) tally[k] += r.tally[k]
}

const skips = readSkips()
const ok = (r) => r.code === 0
const line = '─'.repeat(78)
const out = []
out.push('', line, 'Test summary', line)
for (const r of results) {
  const state = r.code == null ? 'not run' : ok(r) ? 'ok' : `FAILED (exit ${r.code})`
  let detail = ''
  if (r.tally != null) {
    const t = r.tally
    detail = `${r.step.what}: ${t.files} file${t.files === 1 ? '' : 's'}, ${t.tests} tests: ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`
  } else if (r.step.report != null && r.code != null)
    detail = `${r.step.what}: no report (vitest ended early)`
  out.push(`${r.step.name.padEnd(10)} ${state.padEnd(16)} ${seconds(r.ms).padStart(8)}   ${detail}`)
}
out.push(
  `${'total'.padEnd(10)} ${''.padEnd(16)} ${seconds(Date.now() - started).padStart(8)}   ` +
    `${tally.tests} tests: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`,
)

if (failures.length > 0) {
  out.push('', `Failed (${failures.length}):`)
  for (const f of failures) out.push(`  ✗ ${f}`)
}

const files = new Set([...skippedByFile.keys(), ...skips.map((s) => s.file)])
if (files.size > 0) {
  out.push('', 'Skipped:')
  for (const file of [...files].sort()) {
    const count = skippedByFile.get(file)
    const reasons = skips.filter((s) => s.file === file)
    const head = `  - ${file}${count == null ? '' : ` (${count} test${count === 1 ? '' : 's'})`}`
    if (reasons.length === 0) out.push(`${head}: no reason recorded (it.skip or context.skip in the file)`)
    else for (const s of reasons) out.push(`${head}: ${s.suite}: ${s.reason}`)
  }
  if (skips.length > 0) out.push(`  To run them: ${INSTALL_HINT}.`)
}
out.push(
  '',
  `Not in this command: ${Object.entries(SEPARATE)
    .map(([f, how]) => `${f} (${how})`)
    .join('; ')}`,
)

const failedSteps = results.filter((r) => r.code != null && !ok(r)).map((r) => r.step.name)
const passed = interrupted == null && failedSteps.length === 0
out.push(
  '',
  passed
    ? `Result: PASSED${skips.length > 0 ? ` (${files.size} file${files.size === 1 ? '' : 's'} with skipped tests, above)` : ''}`
    : interrupted != null
      ? `Result: INTERRUPTED (${interrupted})${failedSteps.length > 0 ? `; failed: ${failedSteps.join(', ')}` : ''}`
      : `Result: FAILED: ${failedSteps.join(', ')}`,
  line,
)
console.log(out.join('\n'))
rmSync(work, { recursive: true, force: true })
process.exitCode = passed ? 0 : interrupted === 'SIGINT' ? 130 : 1
