// Builds the OSGi example's distributions as publishable folders: two bundles
// (greeter provides a Greeter service, client uses it), versions 1.0 and 1.1 (a
// new greeter, the very same client jar), and "broken": 1.1 with a client that
// imports a package nobody exports, so it cannot resolve. Needs a JDK and Felix.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildBundle } from '../../scripts/build-osgi.mjs'

const here = dirname(fileURLToPath(import.meta.url))

function manifest(lines) {
  return `${['Bundle-ManifestVersion: 2', ...lines].join('\n')}\n`
}

function greeter(work, version, greeting) {
  const sources = join(work, `greeter-${version}-src`)
  cpSync(join(here, 'bundles', 'greeter', 'src'), sources, { recursive: true })
  writeFileSync(
    join(sources, 'io', 'shoal', 'example', 'greeter', 'Words.java'),
    `package io.shoal.example.greeter;\n\nfinal class Words {\n  static final String GREETING = ${JSON.stringify(greeting)};\n}\n`,
  )
  const mf = join(work, `greeter-${version}.mf`)
  writeFileSync(
    mf,
    manifest([
      'Bundle-SymbolicName: io.shoal.example.greeter',
      `Bundle-Version: ${version}.0`,
      'Bundle-Activator: io.shoal.example.greeter.Activator',
      `Export-Package: io.shoal.example.greeting;version="${version}.0"`,
      'Import-Package: org.osgi.framework;version="[1.5,2)"',
    ]),
  )
  const out = join(work, `greeter-${version}.jar`)
  buildBundle({ sources, manifest: mf, out })
  return out
}

function client(work, greeterJar, { broken }) {
  const name = broken ? 'client-broken' : 'client'
  const mf = join(work, `${name}.mf`)
  const imports = ['io.shoal.example.greeting;version="[1.0,2)"', 'org.osgi.framework;version="[1.5,2)"']
  if (broken) imports.push('io.shoal.example.missing;version="1.0"')
  writeFileSync(
    mf,
    manifest([
      'Bundle-SymbolicName: io.shoal.example.client',
      'Bundle-Version: 1.0.0',
      'Bundle-Activator: io.shoal.example.client.Activator',
      `Import-Package: ${imports.join(',')}`,
    ]),
  )
  const out = join(work, `${name}.jar`)
  buildBundle({ sources: join(here, 'bundles', 'client', 'src'), manifest: mf, out, classpath: [greeterJar] })
  return out
}

function release(dir, jars, audience) {
  mkdirSync(dir, { recursive: true })
  cpSync(jars.greeter, join(dir, 'greeter.jar'))
  cpSync(jars.client, join(dir, 'client.jar'))
  const description = {
    artifacts: {
      'greeter.jar': {
        kind: 'component',
        descriptor: { name: 'greeter', start: { osgi: { startLevel: 2 } } },
      },
      'client.jar': { kind: 'component', descriptor: { name: 'client', start: { osgi: { startLevel: 3 } } } },
    },
    config: { audience },
  }
  writeFileSync(join(dir, 'distribution.json'), `${JSON.stringify(description, null, 2)}\n`)
  return dir
}

/** Builds the example's releases under `out`; returns their folders. */
export function buildOsgiGreeting(out) {
  const work = mkdtempSync(join(tmpdir(), 'shoal-osgi-example-'))
  try {
    const greeter10 = greeter(work, '1.0', 'Hello')
    const greeter11 = greeter(work, '1.1', 'Hi')
    const good = client(work, greeter10, { broken: false })
    const bad = client(work, greeter10, { broken: true })
    return {
      '1.0': release(join(out, '1.0'), { greeter: greeter10, client: good }, 'Shoal 1.0'),
      1.1: release(join(out, '1.1'), { greeter: greeter11, client: good }, 'Shoal 1.1'),
      broken: release(join(out, 'broken'), { greeter: greeter11, client: bad }, 'Shoal 1.1'),
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? join(here, 'build')
  for (const [version, dir] of Object.entries(buildOsgiGreeting(out))) console.log(`${version}: ${dir}`)
}
