import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WantedBundle } from '../../src/runtime/osgi/bundle-plan.js'
import {
  type OsgiFramework,
  OsgiHost,
  osgiUnavailableReason,
  platformBundles,
} from '../../src/runtime/osgi/osgi-host.js'
import { createLogger } from '../../src/shared/logger.js'
import { skipReason } from '../helpers/skip.js'

/** Third-party bundles as Debian ships them (felix-main's dependencies), published as a distribution's bundles. */
const DEBIAN = '/usr/share/java'
const GOGO_AND_OBR: Array<[name: string, jar: string, symbolicName: string]> = [
  ['gogo-runtime', 'org.apache.felix.gogo.runtime.jar', 'org.apache.felix.gogo.runtime'],
  ['gogo-command', 'org.apache.felix.gogo.command.jar', 'org.apache.felix.gogo.command'],
  ['gogo-shell', 'org.apache.felix.gogo.shell.jar', 'org.apache.felix.gogo.shell'],
  ['obr', 'org.apache.felix.bundlerepository.jar', 'org.apache.felix.bundlerepository'],
]
const SCR_JAR = join(DEBIAN, 'org.apache.felix.scr.jar')

const FRAMEWORKS: Array<[OsgiFramework, string]> = [
  ['equinox', 'Eclipse Equinox'],
  ['felix', 'Apache Felix'],
]

async function bundle(name: string, path: string, startLevel = 10): Promise<WantedBundle> {
  const sha256 = createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
  return { name, sha256, path, startLevel, version: '1.0', distribution: 'debian@1.0' }
}

function unavailable(framework: OsgiFramework): string | null {
  const reason = osgiUnavailableReason(framework)
  if (reason != null) return reason
  const missing = [
    ...GOGO_AND_OBR.map(([, jar]) => join(DEBIAN, jar)),
    ...platformBundles(framework).map((b) => b.path),
    ...(framework === 'felix' ? [SCR_JAR] : []),
  ].filter((path) => !existsSync(path))
  return missing.length === 0
    ? null
    : `Debian's bundles are missing: ${missing.join(', ')} (felix-main, libfelix-scr-java, libequinox-cm-java; shoal.osgi.cmpn is built by npm run build)`
}

/**
 * Real bundles from Debian's packages, as a user would bring them, resolve and go
 * ACTIVE on both frameworks: what failed on Felix 4.6.1 without the osgi.ee
 * capabilities (`missing requirement osgi.ee; (&(osgi.ee=JavaSE)(version=1.7))`).
 */
describe.each(FRAMEWORKS)('Debian bundles on %s', (framework, title) => {
  const reason = skipReason(import.meta.url, `Debian bundles on ${title}`, unavailable(framework))
  describe.skipIf(reason != null)(title, () => {
    let dir: string
    let host: OsgiHost
    let gogoAndObr: WantedBundle[]
    const bySymbolicName = (name: string) => host.frameworkView().bundles.find((b) => b.symbolicName === name)
    const services = () => host.frameworkView().services.flatMap((s) => s.objectClass)

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `shoal-osgi-debian-${framework}-`))
      gogoAndObr = await Promise.all(GOGO_AND_OBR.map(([name, jar]) => bundle(name, join(DEBIAN, jar))))
      host = new OsgiHost(
        { dir, env: {}, logFile: join(dir, 'framework.log'), framework, spawned: () => {}, exited: () => {} },
        createLogger({ level: 'warn' }),
      )
    })

    afterAll(async () => {
      await host?.stop()
      await rm(dir, { recursive: true, force: true })
    })

    it('starts the platform bundles with the framework: the Compendium API, Config Admin (and on Equinox, SCR)', async () => {
      await host.apply(gogoAndObr, {})
      expect(bySymbolicName('shoal.osgi.cmpn')).toMatchObject({ version: '7.0.0', state: 'ACTIVE' })
      expect(bySymbolicName('org.eclipse.equinox.cm')?.state).toBe('ACTIVE')
      expect(services()).toContain('org.osgi.service.cm.ConfigurationAdmin')
      if (framework === 'equinox') {
        expect(bySymbolicName('org.apache.felix.scr')).toMatchObject({ version: '2.1.20', state: 'ACTIVE' })
        expect(services()).toContain('org.osgi.service.component.runtime.ServiceComponentRuntime')
      } else expect(bySymbolicName('org.apache.felix.scr')).toBeUndefined()
    })

    it('resolves and starts Felix Gogo (runtime, command, shell) and OBR as a distribution’s bundles', async () => {
      expect(host.states().map((s) => [s.name, s.state])).toEqual(
        GOGO_AND_OBR.map(([name]) => [name, 'ready']),
      )
      for (const [name, , symbolicName] of GOGO_AND_OBR)
        expect(bySymbolicName(symbolicName), name).toMatchObject({
          state: 'ACTIVE',
          location: `shoal:${name}`,
        })
      // Gogo's shell runs no console (gosh.args=--nointeractive): it would read the absent stdin and stop the framework.
      const pid = host.frameworkView().pid
      await sleep(1_500)
      expect(host.frameworkView()).toMatchObject({ running: true, pid })
      expect(bySymbolicName('org.apache.felix.gogo.shell')?.state).toBe('ACTIVE')
    })

    if (framework === 'felix')
      it('refuses Debian’s SCR on Felix 4.6.1 with the framework’s reason (it needs an R7 core) and keeps the bundles', async () => {
        await expect(host.apply([...gogoAndObr, await bundle('scr', SCR_JAR)], {})).rejects.toMatchObject({
          code: 'ERR_OSGI_BUNDLE',
          message: expect.stringMatching(/scr.*org\.osgi\.dto/s),
        })
        expect(host.states().map((s) => [s.name, s.state])).toEqual(
          GOGO_AND_OBR.map(([name]) => [name, 'ready']),
        )
      })

    it('keeps the platform bundles when a version switch removes every bundle of the distribution', async () => {
      const platform = host
        .frameworkView()
        .bundles.filter((b) => b.location.startsWith('file:'))
        .map((b) => [b.id, b.symbolicName, b.state])
      await host.apply([], {})
      const after = host.frameworkView().bundles
      expect(after.filter((b) => b.location.startsWith('shoal:'))).toEqual([])
      expect(
        after.filter((b) => b.location.startsWith('file:')).map((b) => [b.id, b.symbolicName, b.state]),
      ).toEqual(platform)
      // The management agent and the platform bundles: every one of them.
      expect(platform.length).toBe(platformBundles(framework).length + 1)
    })
  })
})
