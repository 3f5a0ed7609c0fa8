// Builds the two versions of the Educa sample as folders `shoal publish` takes:
//   node examples/educa/build.mjs [--out DIR]      (default examples/educa/build)
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

/** What differs between versions. The servers read `features` from release.json. */
const RELEASES = {
  '1.0': {
    features: [],
    greeting: 'Welcome to Educa 1.0',
  },
  1.1: {
    features: ['course-levels', 'course-titles', 'ocean-theme'],
    greeting: 'Welcome to Educa 1.1: now with course levels',
  },
}

/** The same file in both versions: publishing 1.1 after 1.0 uploads it once. */
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

function distribution(greeting) {
  return {
    artifacts: {
      'web.tgz': { kind: 'component', descriptor: web },
      'catalog.tgz': { kind: 'component', descriptor: catalog },
      'conf/educa.json': { kind: 'config' },
    },
    config: { greeting },
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

async function buildVersion(outDir, version, stageRoot) {
  const { features, greeting } = RELEASES[version]
  const dir = join(outDir, `educa-${version}`)
  // `shoal publish` takes every file in the folder, so start from an empty one.
  await rm(dir, { recursive: true, force: true })
  await mkdir(join(dir, 'conf'), { recursive: true })
  const release = { text: json({ version, features }) }
  for (const component of ['catalog', 'web']) {
    const tgz = await packDeterministic(
      { 'server.mjs': { path: join(COMPONENTS, component, 'server.mjs') }, 'release.json': release },
      join(stageRoot, `${component}-${version}`),
    )
    await writeFile(join(dir, `${component}.tgz`), tgz)
  }
  await writeFile(join(dir, 'conf', 'educa.json'), json(SITE_CONFIG))
  await writeFile(join(dir, 'distribution.json'), json(distribution(greeting)))
  return dir
}

/** Writes OUT/educa-1.0 and OUT/educa-1.1 and returns their absolute paths. */
export async function buildEduca(outDir = DEFAULT_OUT) {
  const out = resolve(outDir)
  const stageRoot = await mkdtemp(join(tmpdir(), 'educa-stage-'))
  try {
    return {
      '1.0': await buildVersion(out, '1.0', stageRoot),
      1.1: await buildVersion(out, '1.1', stageRoot),
    }
  } finally {
    await rm(stageRoot, { recursive: true, force: true })
  }
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: DEFAULT_OUT } } })
  console.log(JSON.stringify(await buildEduca(values.out), null, 2))
}
