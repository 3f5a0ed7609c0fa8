// Builds the OSGi Educa sample's versions as folders `shoal publish` takes:
//   node examples/educa-osgi/build.mjs [--out DIR]     (default examples/educa-osgi/build)
// writes DIR/educa-osgi-1.0 and DIR/educa-osgi-1.1: three bundles (educa.api,
// educa.catalog, educa.web) and distribution.json. Needs a JDK (javac, 11 or newer)
// and the OSGi API jars of Debian's libosgi-core-java and libosgi-compendium-java.
// The jars are deterministic (sorted entries, fixed times, stored uncompressed), so
// building again gives the same bytes, and 1.0 and 1.1 share the educa.api jar.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'

const run = promisify(execFile)

const HERE = fileURLToPath(new URL('.', import.meta.url))
const BUNDLES = join(HERE, 'bundles')
export const DEFAULT_OUT = join(HERE, 'build')

/** The OSGi API the bundles compile against, and nothing else (Debian's packages). */
export const OSGI_API_JARS = Object.freeze([
  { path: '/usr/share/java/osgi.core.jar', debian: 'libosgi-core-java' },
  { path: '/usr/share/java/osgi.cmpn.jar', debian: 'libosgi-compendium-java' },
])

/** Every version buildEducaOsgi writes, in order. */
export const EDUCA_OSGI_VERSIONS = Object.freeze(['1.0', '1.1'])

/** What differs between versions: 1.1 adds a level to each course (and one course). */
const RELEASES = {
  '1.0': { levels: false, greeting: 'Welcome to Educa (OSGi) 1.0' },
  1.1: { levels: true, greeting: 'Welcome to Educa (OSGi) 1.1: now with course levels' },
}

/** The same in every version: the Catalog interface does not change. */
const API_VERSION = '1.0.0'

/** What bnd writes for `--release 11` classes: the bundle needs a Java 11 execution environment. */
const REQUIRE_JAVA_11 = 'osgi.ee;filter:="(&(osgi.ee=JavaSE)(version=11))"'
/** What bnd writes for DS 1.3 component descriptions: an SCR must process this bundle. */
const REQUIRE_SCR =
  'osgi.extender;filter:="(&(osgi.extender=osgi.component)(version>=1.3.0)(!(version>=2.0.0)))"'
const IMPORT_API = 'educa.api;version="[1.0,2)"'

/** Each jar entry gets this time (DOS time, local): the bytes do not depend on when we build. */
const ENTRY_TIME = { year: 2026, month: 1, day: 1 }

/** The OSGi bundles of a version: artifact name, symbolic name, descriptor, manifest headers. */
function bundles(version) {
  const bundleVersion = `${version}.0`
  return [
    {
      jar: 'educa.api.jar',
      descriptor: { name: 'api', start: { osgi: { startLevel: 2 } } },
      headers: [
        ['Bundle-SymbolicName', 'educa.api'],
        ['Bundle-Version', API_VERSION],
        ['Bundle-Name', 'Educa API'],
        ['Export-Package', `educa.api;version="${API_VERSION}"`],
        ['Require-Capability', REQUIRE_JAVA_11],
      ],
    },
    {
      jar: 'educa.catalog.jar',
      descriptor: { name: 'catalog', start: { osgi: { startLevel: 3, pid: 'educa.catalog' } } },
      headers: [
        ['Bundle-SymbolicName', 'educa.catalog'],
        ['Bundle-Version', bundleVersion],
        ['Bundle-Name', 'Educa catalog'],
        ['Import-Package', IMPORT_API],
        ['Service-Component', 'OSGI-INF/educa.catalog.xml'],
        ['Provide-Capability', 'osgi.service;objectClass:List<String>="educa.api.Catalog"'],
        ['Require-Capability', `${REQUIRE_SCR},${REQUIRE_JAVA_11}`],
      ],
    },
    {
      jar: 'educa.web.jar',
      descriptor: {
        name: 'web',
        start: { osgi: { startLevel: 4, pid: 'educa.web' } },
        http: true,
        health: { http: '/healthz' },
        provides: ['web'],
      },
      headers: [
        ['Bundle-SymbolicName', 'educa.web'],
        ['Bundle-Version', bundleVersion],
        ['Bundle-Name', 'Educa web'],
        ['Import-Package', `com.sun.net.httpserver,${IMPORT_API}`],
        ['Service-Component', 'OSGI-INF/educa.web.xml'],
        [
          'Require-Capability',
          `${REQUIRE_SCR},osgi.service;filter:="(objectClass=educa.api.Catalog)";effective:=active,${REQUIRE_JAVA_11}`,
        ],
      ],
    },
  ]
}

function distribution(version) {
  const artifacts = {}
  for (const bundle of bundles(version))
    artifacts[bundle.jar] = { kind: 'component', descriptor: bundle.descriptor }
  return {
    artifacts,
    config: {
      osgi: {
        'educa.web': { greeting: RELEASES[version].greeting },
        'educa.catalog': { language: 'en' },
      },
    },
    placement: { api: 'all', catalog: 'all', web: 'all' },
  }
}

/** JSON as the repository's formatter (biome) writes it: 2 spaces, short lists of strings on one line. */
const json = (value) =>
  `${JSON.stringify(value, null, 2).replace(/\[\s*("[^"\n]*"(?:,\s*"[^"\n]*")*)\s*\]/g, (_, items) => `[${items.match(/"[^"\n]*"/g).join(', ')}]`)}\n`

// ---------------------------------------------------------------- the JDK

/** javac from JAVA_HOME or the PATH, version 11 or newer; throws saying what is missing. */
async function findJavac() {
  const candidates = [process.env.JAVA_HOME && join(process.env.JAVA_HOME, 'bin', 'javac'), 'javac']
  const tried = []
  for (const javac of candidates.filter(Boolean)) {
    try {
      const { stdout, stderr } = await run(javac, ['-version'])
      const feature = Number(/javac (\d+)/.exec(`${stdout}${stderr}`)?.[1])
      if (feature >= 11) return javac
      tried.push(`${javac} is version ${feature || 'unknown'}`)
    } catch {
      tried.push(`${javac} not found`)
    }
  }
  throw new Error(
    `examples/educa-osgi needs a JDK 11 or newer to compile its bundles (${tried.join('; ')}); ` +
      'install one (Debian: default-jdk-headless) or set JAVA_HOME',
  )
}

function checkApiJars() {
  const missing = OSGI_API_JARS.filter((j) => !existsSync(j.path))
  if (missing.length > 0)
    throw new Error(
      `examples/educa-osgi compiles against the OSGi API: ${missing.map((j) => `${j.path} (Debian: ${j.debian})`).join(', ')} not found`,
    )
}

async function javaFiles(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.java'))
    .map((e) => join(e.parentPath, e.name))
    .sort()
}

/** Compiles every .java under `sources` into `classes` (Java 11 bytecode). */
async function compile(javac, sources, classes, classpath) {
  await mkdir(classes, { recursive: true })
  const args = ['--release', '11', '-encoding', 'UTF-8', '-implicit:none', '-Xlint:-options']
  args.push('-cp', classpath.join(':'), '-d', classes, ...(await javaFiles(sources)))
  try {
    await run(javac, args)
  } catch (err) {
    throw new Error(`javac failed for ${relative(HERE, sources) || sources}:\n${err.stderr ?? err.message}`)
  }
}

// ---------------------------------------------------------------- jars

const CRC_TABLE = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

function crc32(bytes) {
  let c = -1
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ -1) >>> 0
}

/** A manifest's text: `Name: value` lines of at most 72 bytes, continued on lines starting with a space. */
function manifestText(headers) {
  const lines = []
  for (const [name, value] of [['Manifest-Version', '1.0'], ['Bundle-ManifestVersion', '2'], ...headers]) {
    let rest = Buffer.from(`${name}: ${value}`, 'utf8')
    lines.push(rest.subarray(0, 72).toString('utf8'))
    rest = rest.subarray(72)
    while (rest.length > 0) {
      lines.push(` ${rest.subarray(0, 71).toString('utf8')}`)
      rest = rest.subarray(71)
    }
  }
  return `${lines.join('\r\n')}\r\n\r\n`
}

/**
 * A jar of `files` (entry name → bytes): META-INF/MANIFEST.MF first, then the
 * rest sorted, with their folders; stored (not compressed, so the bytes do not
 * depend on the zlib at hand), one fixed time, no extra fields.
 */
function jar(manifest, files) {
  const entries = new Map([
    ['META-INF/', null],
    ['META-INF/MANIFEST.MF', Buffer.from(manifest, 'utf8')],
  ])
  for (const name of Object.keys(files).sort()) {
    const parts = name.split('/')
    for (let i = 1; i < parts.length; i++) {
      const folder = `${parts.slice(0, i).join('/')}/`
      if (!entries.has(folder)) entries.set(folder, null)
    }
    entries.set(name, files[name])
  }
  const time = 0
  const date = ((ENTRY_TIME.year - 1980) << 9) | (ENTRY_TIME.month << 5) | ENTRY_TIME.day
  const locals = []
  const centrals = []
  let offset = 0
  for (const [name, content] of entries) {
    const data = content ?? Buffer.alloc(0)
    const nameBytes = Buffer.from(name, 'utf8')
    const crc = crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(10, 4) // version needed: 1.0 (stored)
    local.writeUInt16LE(0x0800, 6) // names in UTF-8
    local.writeUInt16LE(0, 8) // stored
    local.writeUInt16LE(time, 10)
    local.writeUInt16LE(date, 12)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    local.writeUInt16LE(0, 28)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE((3 << 8) | 20, 4) // made by: Unix, 2.0
    central.writeUInt16LE(10, 6)
    central.writeUInt16LE(0x0800, 8)
    central.writeUInt16LE(0, 10)
    central.writeUInt16LE(time, 12)
    central.writeUInt16LE(date, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    // extra length, comment length, disk number, internal attributes: 0
    const mode = content == null ? 0o40755 : 0o100644
    central.writeUInt32LE(((mode << 16) | (content == null ? 0x10 : 0)) >>> 0, 38)
    central.writeUInt32LE(offset, 42)
    locals.push(local, nameBytes, data)
    centrals.push(central, nameBytes)
    offset += local.length + nameBytes.length + data.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.size, 8)
  end.writeUInt16LE(entries.size, 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, directory, end])
}

/** Every file under `dir`, by its path inside it with "/" separators. */
async function filesUnder(dir) {
  const files = {}
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    files[relative(dir, path).split(sep).join('/')] = await readFile(path)
  }
  return files
}

// ---------------------------------------------------------------- build

/** The bundle's own Release class: what this version is (the rest of the source is shared). */
const releaseSource = (pkg, version) =>
  `package ${pkg};\n\n` +
  '/** Written by examples/educa-osgi/build.mjs: which version this bundle is. */\n' +
  'final class Release {\n' +
  `  static final String VERSION = ${JSON.stringify(version)};\n` +
  `  static final boolean LEVELS = ${RELEASES[version].levels};\n\n` +
  '  private Release() {}\n' +
  '}\n'

/** Compiles one bundle (sources + OSGI-INF) of `version` into jar bytes. */
async function buildBundle(javac, work, { name, version, headers, classpath }) {
  const stage = join(work, `${name}-${version ?? 'any'}`)
  const sources = join(stage, 'src')
  await cp(join(BUNDLES, name, 'src'), sources, { recursive: true })
  if (version != null)
    await writeFile(join(sources, 'educa', name, 'Release.java'), releaseSource(`educa.${name}`, version))
  const classes = join(stage, 'classes')
  await compile(javac, sources, classes, [...OSGI_API_JARS.map((j) => j.path), ...classpath])
  const files = await filesUnder(classes)
  const osgiInf = join(BUNDLES, name, 'OSGI-INF')
  if (existsSync(osgiInf))
    for (const [path, bytes] of Object.entries(await filesUnder(osgiInf))) files[`OSGI-INF/${path}`] = bytes
  return { bytes: jar(manifestText(headers), files), classes }
}

/**
 * Writes OUT/educa-osgi-1.0 and OUT/educa-osgi-1.1 (ready for `shoal publish`) and
 * returns their absolute paths by version. Throws, saying what is missing, without
 * a JDK 11+ or the OSGi API jars.
 */
export async function buildEducaOsgi(outDir = DEFAULT_OUT) {
  const javac = await findJavac()
  checkApiJars()
  const out = resolve(outDir)
  const work = await mkdtemp(join(tmpdir(), 'educa-osgi-build-'))
  try {
    const headersOf = (version, jarName) => bundles(version).find((b) => b.jar === jarName).headers
    const api = await buildBundle(javac, work, {
      name: 'api',
      headers: headersOf('1.0', 'educa.api.jar'),
      classpath: [],
    })
    const built = {}
    for (const version of EDUCA_OSGI_VERSIONS) {
      const jars = { 'educa.api.jar': api.bytes }
      for (const name of ['catalog', 'web']) {
        const headers = headersOf(version, `educa.${name}.jar`)
        const bundle = await buildBundle(javac, work, { name, version, headers, classpath: [api.classes] })
        jars[`educa.${name}.jar`] = bundle.bytes
      }
      const dir = join(out, `educa-osgi-${version}`)
      // `shoal publish` takes every file in the folder, so start from an empty one.
      await rm(dir, { recursive: true, force: true })
      await mkdir(dir, { recursive: true })
      for (const [name, bytes] of Object.entries(jars)) await writeFile(join(dir, name), bytes)
      await writeFile(join(dir, 'distribution.json'), json(distribution(version)))
      built[version] = dir
    }
    return built
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: DEFAULT_OUT } } })
  try {
    console.log(JSON.stringify(await buildEducaOsgi(values.out), null, 2))
  } catch (err) {
    console.error(err.message)
    process.exitCode = 1
  }
}
