// Builds the versions of the Educa sample as folders `shoal publish` takes:
//   node examples/educa/build.mjs [--out DIR]      (default examples/educa/build)
//     [--failure-rate 0.1] [--delay-ms 150]          (config of the bad versions 1.2 and 1.2-slow)
// Every output is deterministic, so building again and re-publishing is a no-op.
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import * as tar from 'tar'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const COMPONENTS = join(HERE, 'components')
export const DEFAULT_OUT = join(HERE, 'build')

/** Every tarball entry gets this mtime, so the bytes do not depend on when we build. */
const MTIME = new Date('2026-01-01T00:00:00Z')
/** Byte 9 of a gzip header names the OS that wrote it; pin it to Unix (3) on every platform. */
const GZIP_OS_UNIX = 3

/** Share of real requests 1.2 answers with 500 unless told otherwise (`config.failureRate`). */
export const DEFAULT_FAILURE_RATE = 0.1
/** Delay 1.2-slow adds to each real request unless told otherwise (`config.delayMs`). */
export const DEFAULT_DELAY_MS = 150

const FEATURES_1_1 = ['course-levels', 'course-titles', 'ocean-theme']

/**
 * What differs between versions. The servers read `features` from release.json;
 * `config` (from the build's options) goes into distribution.json next to the greeting.
 * 1.2 and 1.2-slow are bad versions for canary tests and benchmarks: they pass
 * their health check but fail a share of real requests (`fail-share`) or answer
 * them late (`slow`). Their web component starts components/web/faults.mjs, which
 * wraps the unchanged server.mjs, so the 1.0 and 1.1 packages keep their bytes.
 */
const RELEASES = {
  '1.0': {
    features: [],
    greeting: 'Welcome to Educa 1.0',
  },
  1.1: {
    features: FEATURES_1_1,
    greeting: 'Welcome to Educa 1.1: now with course levels',
  },
  1.2: {
    features: [...FEATURES_1_1, 'fail-share'],
    greeting: 'Welcome to Educa 1.2',
    faults: true,
    config: (options) => ({ failureRate: options.failureRate ?? DEFAULT_FAILURE_RATE }),
  },
  '1.2-slow': {
    features: [...FEATURES_1_1, 'slow'],
    greeting: 'Welcome to Educa 1.2 (slow)',
    faults: true,
    config: (options) => ({ delayMs: options.delayMs ?? DEFAULT_DELAY_MS }),
  },
}

/** Every version buildEduca writes, in order. */
export const EDUCA_VERSIONS = Object.freeze(['1.0', '1.1', '1.2', '1.2-slow'])

/** The same file in every version: publishing 1.1 after 1.0 uploads it once. */
const SITE_CONFIG = { title: 'Educa' }

const web = {
  name: 'web',
  start: { node: 'server.mjs' },
  http: true,
  health: { http: '/healthz' },
  provides: ['web'],
  requires: ['catalog'],
  stopTimeoutMs: 5000,
}

const catalog = {
  name: 'catalog',
  start: { node: 'server.mjs' },
  http: true,
  health: { http: '/healthz' },
  provides: ['catalog'],
}

/** The bad versions start faults.mjs, which loads server.mjs. */
const faultyWeb = { ...web, start: { node: 'faults.mjs' } }

function distribution(config, faults) {
  return {
    artifacts: {
      'web.tgz': { kind: 'component', descriptor: faults ? faultyWeb : web },
      'catalog.tgz': { kind: 'component', descriptor: catalog },
      'conf/educa.json': { kind: 'config' },
    },
    config,
    placement: { web: 'all', catalog: 'all' },
  }
}

const json = (value) => `${JSON.stringify(value, null, 2)}\n`

/**
 * A gzipped tarball of `files` (name → source path or contents) at the archive
 * root: sorted names, fixed mode and mtime, no owner, and a gzip header with
 * mtime 0, so the same inputs give the same bytes.
 */
async function packDeterministic(files, stage) {
  await mkdir(stage, { recursive: true })
  const names = Object.keys(files).sort()
  for (const name of names) {
    const source = files[name]
    if (source.path != null) await copyFile(source.path, join(stage, name))
    else await writeFile(join(stage, name), source.text)
    await chmod(join(stage, name), 0o644)
  }
  const chunks = []
  for await (const chunk of tar.c({ cwd: stage, portable: true, mtime: MTIME, noDirRecurse: true }, names)) {
    chunks.push(chunk)
  }
  // gzipSync never sets the header's mtime (bytes 4-7 stay 0).
  const gz = gzipSync(Buffer.concat(chunks), { level: 9 })
  gz[9] = GZIP_OS_UNIX
  return gz
}

async function buildVersion(outDir, version, stageRoot, options) {
  const { features, greeting, config, faults = false } = RELEASES[version]
  const dir = join(outDir, `educa-${version}`)
  // `shoal publish` takes every file in the folder, so start from an empty one.
  await rm(dir, { recursive: true, force: true })
  await mkdir(join(dir, 'conf'), { recursive: true })
  const release = { text: json({ version, features }) }
  for (const component of ['catalog', 'web']) {
    const files = {
      'server.mjs': { path: join(COMPONENTS, component, 'server.mjs') },
      'release.json': release,
    }
    if (faults && component === 'web') files['faults.mjs'] = { path: join(COMPONENTS, 'web', 'faults.mjs') }
    const tgz = await packDeterministic(files, join(stageRoot, `${component}-${version}`))
    await writeFile(join(dir, `${component}.tgz`), tgz)
  }
  await writeFile(join(dir, 'conf', 'educa.json'), json(SITE_CONFIG))
  const distributionFile = distribution({ greeting, ...config?.(options) }, faults)
  await writeFile(join(dir, 'distribution.json'), json(distributionFile))
  return dir
}

function checkOptions({ failureRate, delayMs } = {}) {
  if (failureRate != null && !(typeof failureRate === 'number' && failureRate >= 0 && failureRate <= 1))
    throw new Error(`failureRate must be a number from 0 to 1, not ${failureRate}`)
  if (delayMs != null && !(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 60_000))
    throw new Error(`delayMs must be a whole number of milliseconds from 0 to 60000, not ${delayMs}`)
  return { failureRate, delayMs }
}

/**
 * Writes OUT/educa-1.0, educa-1.1, educa-1.2 and educa-1.2-slow and returns their
 * absolute paths by version. `options` sets the config of the bad versions:
 * `failureRate` (1.2, default 0.1) and `delayMs` (1.2-slow, default 150).
 */
export async function buildEduca(outDir = DEFAULT_OUT, options = {}) {
  const checked = checkOptions(options)
  const out = resolve(outDir)
  const stageRoot = await mkdtemp(join(tmpdir(), 'educa-stage-'))
  try {
    const built = {}
    for (const version of EDUCA_VERSIONS)
      built[version] = await buildVersion(out, version, stageRoot, checked)
    return built
  } finally {
    await rm(stageRoot, { recursive: true, force: true })
  }
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: DEFAULT_OUT },
      'failure-rate': { type: 'string' },
      'delay-ms': { type: 'string' },
    },
  })
  const number = (text) => (text == null ? undefined : Number(text))
  const options = { failureRate: number(values['failure-rate']), delayMs: number(values['delay-ms']) }
  console.log(JSON.stringify(await buildEduca(values.out, options), null, 2))
}
