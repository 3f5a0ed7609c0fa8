// Builds Shoal's OSGi jars into dist/osgi/ with the machine's JDK:
// - shoal-management-agent.jar: the management agent bundle (osgi/agent);
// - shoal-osgi-launcher.jar: io.shoal.osgi.Launcher (osgi/launcher), which starts
//   Equinox or Felix through the standard launching API (not a bundle);
// - shoal-osgi-cmpn.jar: the bundle `shoal.osgi.cmpn` 7.0.0, the Compendium R7 API
//   packages that no Debian bundle exports (promise, function, pushstream, cm, log,
//   event, metatype), repackaged from Debian's osgi.cmpn.jar; a platform bundle.
// Compiled against the OSGi API in an installed framework jar (Felix's, else
// Equinox's). Without a JDK or a framework jar it says so and skips: the `osgi`
// component kind then reports that it is unavailable. Without osgi.cmpn.jar only
// the compendium bundle is skipped.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const FELIX_JAR = process.env.SHOAL_FELIX_JAR ?? '/usr/share/felix-framework/bin/felix.jar'
export const EQUINOX_JAR = process.env.SHOAL_EQUINOX_JAR ?? '/usr/share/java/eclipse-osgi.jar'
/** Debian's OSGi Compendium R7 classes (libosgi-compendium-java, a dependency of libequinox-cm-java). */
export const CMPN_API_JAR = process.env.SHOAL_OSGI_CMPN_API_JAR ?? '/usr/share/java/osgi.cmpn.jar'

/** The jar the OSGi core API is compiled against: an installed framework, or null. */
export function osgiApiJar() {
  return [FELIX_JAR, EQUINOX_JAR].find((jar) => existsSync(jar)) ?? null
}

/** javac and jar from JAVA_HOME or the PATH, or null. */
export function jdkTool(name) {
  const candidates = [process.env.JAVA_HOME && join(process.env.JAVA_HOME, 'bin', name), name].filter(Boolean)
  for (const tool of candidates) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' })
      return tool
    } catch {}
  }
  return null
}

/**
 * Compiles `sources` (a folder of .java files) against the OSGi API (and `classpath`)
 * into `out`, a jar with `manifest` (a manifest file; null: the jar tool's default).
 */
export function buildBundle({ sources, manifest, out, classpath = [] }) {
  const javac = jdkTool('javac')
  const jar = jdkTool('jar')
  const work = mkdtempSync(join(tmpdir(), 'shoal-osgi-'))
  try {
    const files = readdirSync(sources, { recursive: true })
      .filter((f) => String(f).endsWith('.java'))
      .map((f) => join(sources, String(f)))
    const cp = [osgiApiJar(), ...classpath].filter(Boolean).join(':')
    execFileSync(javac, ['--release', '11', '-nowarn', '-cp', cp, '-d', work, ...files], { stdio: 'inherit' })
    mkdirSync(dirname(out), { recursive: true })
    rmSync(out, { force: true })
    const manifestArgs = manifest == null ? [] : ['--manifest', manifest]
    execFileSync(jar, ['--create', '--file', out, ...manifestArgs, '-C', work, '.'], { stdio: 'inherit' })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/**
 * The Compendium packages `shoal.osgi.cmpn` carries: name, version in osgi.cmpn
 * 7.0.0, what it uses, and the range it imports itself at (a compatible export from
 * the framework, such as Equinox's org.osgi.service.log 1.5, is preferred).
 */
const CMPN_PACKAGES = [
  ['org.osgi.util.function', '1.1.0', null, '[1.1,2)'],
  ['org.osgi.util.promise', '1.1.0', 'org.osgi.util.function', '[1.1,2)'],
  ['org.osgi.util.pushstream', '1.0.0', 'org.osgi.util.function,org.osgi.util.promise', '[1.0,2)'],
  ['org.osgi.service.cm', '1.6.0', 'org.osgi.framework', '[1.6,1.7)'],
  ['org.osgi.service.log', '1.4.0', 'org.osgi.framework,org.osgi.util.pushstream', '[1.4,1.6)'],
  ['org.osgi.service.event', '1.4.0', 'org.osgi.framework', '[1.4,1.5)'],
  ['org.osgi.service.metatype', '1.4.0', 'org.osgi.framework', '[1.4,1.5)'],
]

/**
 * `shoal.osgi.cmpn`: the packages above, taken from Debian's osgi.cmpn.jar. Each
 * export is also imported (substitutable), so a framework or bundle exporting a
 * compatible one wins and every bundle shares a single class space.
 */
export function buildCmpnBundle(out) {
  const jar = jdkTool('jar')
  const work = mkdtempSync(join(tmpdir(), 'shoal-osgi-cmpn-'))
  try {
    const classes = join(work, 'classes')
    mkdirSync(classes)
    execFileSync(jar, ['--extract', '--file', CMPN_API_JAR], { cwd: classes, stdio: 'inherit' })
    const keep = new Set(CMPN_PACKAGES.map(([name]) => name.split('.').join('/')))
    // Only the chosen packages (and their sub-folders such as annotations) stay.
    const prune = (dir, rel) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`
        const kept = [...keep].some((p) => relPath === p || relPath.startsWith(`${p}/`))
        const onTheWay = [...keep].some((p) => p.startsWith(`${relPath}/`))
        if (kept) continue
        if (entry.isDirectory() && onTheWay) prune(path, relPath)
        else rmSync(path, { recursive: true, force: true })
      }
    }
    prune(classes, '')
    const exportsHeader = CMPN_PACKAGES.map(
      ([name, version, uses]) => `${name};version="${version}"${uses == null ? '' : `;uses:="${uses}"`}`,
    ).join(',')
    const importsHeader = [
      'org.osgi.framework;version="[1.6,2)"',
      ...CMPN_PACKAGES.map(([name, , , range]) => `${name};version="${range}"`),
    ].join(',')
    const manifest = join(work, 'MANIFEST.MF')
    writeFileSync(
      manifest,
      manifestText([
        'Bundle-ManifestVersion: 2',
        'Bundle-SymbolicName: shoal.osgi.cmpn',
        'Bundle-Version: 7.0.0',
        'Bundle-Name: OSGi Compendium R7 API packages for Shoal (from osgi.cmpn.jar)',
        `Export-Package: ${exportsHeader}`,
        `Import-Package: ${importsHeader}`,
      ]),
    )
    mkdirSync(dirname(out), { recursive: true })
    rmSync(out, { force: true })
    execFileSync(jar, ['--create', '--file', out, '--manifest', manifest, '-C', classes, '.'], {
      stdio: 'inherit',
    })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** A manifest's text: each header wrapped at 72 bytes as the jar format wants (continuations start with a space). */
function manifestText(headers) {
  const lines = []
  for (const header of headers) {
    let rest = header
    lines.push(rest.slice(0, 70))
    rest = rest.slice(70)
    while (rest.length > 0) {
      lines.push(` ${rest.slice(0, 69)}`)
      rest = rest.slice(69)
    }
  }
  return `${lines.join('\n')}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const missing = [
    jdkTool('javac') == null && 'javac (a JDK)',
    jdkTool('jar') == null && 'jar',
    osgiApiJar() == null &&
      `an OSGi framework (${EQUINOX_JAR}, Debian: libeclipse-osgi-java; or ${FELIX_JAR}, Debian: felix-main)`,
  ].filter(Boolean)
  if (missing.length > 0) {
    console.log(`skipping the OSGi jars (management agent, launcher): ${missing.join(', ')} not found`)
  } else {
    const dist = join(root, 'dist', 'osgi')
    buildBundle({
      sources: join(root, 'osgi', 'agent', 'src'),
      manifest: join(root, 'osgi', 'agent', 'MANIFEST.MF'),
      out: join(dist, 'shoal-management-agent.jar'),
    })
    buildBundle({
      sources: join(root, 'osgi', 'launcher', 'src'),
      manifest: null,
      out: join(dist, 'shoal-osgi-launcher.jar'),
    })
    if (existsSync(CMPN_API_JAR)) buildCmpnBundle(join(dist, 'shoal-osgi-cmpn.jar'))
    else
      console.log(
        `skipping shoal.osgi.cmpn: ${CMPN_API_JAR} not found (Debian: libosgi-compendium-java); Declarative Services and Config Admin will not resolve`,
      )
    console.log(
      `built ${dist}/shoal-management-agent.jar, shoal-osgi-launcher.jar${existsSync(CMPN_API_JAR) ? ', shoal-osgi-cmpn.jar' : ''}`,
    )
  }
}
