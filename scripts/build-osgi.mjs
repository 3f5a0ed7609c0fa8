// Builds Shoal's OSGi management agent bundle (osgi/agent, Java) into
// dist/osgi/shoal-management-agent.jar with the machine's JDK, compiled against
// the OSGi API in Apache Felix's jar. Without a JDK or Felix it says so and
// skips: the `osgi` component kind then reports that it is unavailable.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const FELIX_JAR = process.env.SHOAL_FELIX_JAR ?? '/usr/share/felix-framework/bin/felix.jar'

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

/** Compiles `sources` (a folder of .java files) against Felix into `out`, a jar with `manifest`. */
export function buildBundle({ sources, manifest, out, classpath = [] }) {
  const javac = jdkTool('javac')
  const jar = jdkTool('jar')
  const work = mkdtempSync(join(tmpdir(), 'shoal-osgi-'))
  try {
    const files = readdirSync(sources, { recursive: true })
      .filter((f) => String(f).endsWith('.java'))
      .map((f) => join(sources, String(f)))
    const cp = [FELIX_JAR, ...classpath].join(':')
    execFileSync(javac, ['--release', '11', '-nowarn', '-cp', cp, '-d', work, ...files], { stdio: 'inherit' })
    mkdirSync(dirname(out), { recursive: true })
    execFileSync(jar, ['--create', '--file', out, '--manifest', manifest, '-C', work, '.'], {
      stdio: 'inherit',
    })
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const missing = [
    jdkTool('javac') == null && 'javac (a JDK)',
    jdkTool('jar') == null && 'jar',
    !existsSync(FELIX_JAR) && `Apache Felix (${FELIX_JAR}; Debian: felix-main)`,
  ].filter(Boolean)
  if (missing.length > 0) {
    console.log(`skipping the OSGi management agent: ${missing.join(', ')} not found`)
  } else {
    const out = join(root, 'dist', 'osgi', 'shoal-management-agent.jar')
    buildBundle({
      sources: join(root, 'osgi', 'agent', 'src'),
      manifest: join(root, 'osgi', 'agent', 'MANIFEST.MF'),
      out,
    })
    console.log(`built ${out}`)
  }
}
