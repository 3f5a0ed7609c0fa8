import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildOsgiGreeting } from '../../examples/osgi-greeting/build.mjs'
import type { WantedBundle } from '../../src/runtime/osgi/bundle-plan.js'
import { type OsgiFramework, OsgiHost, osgiUnavailableReason } from '../../src/runtime/osgi/osgi-host.js'
import { createLogger } from '../../src/shared/logger.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const FRAMEWORKS: Array<[OsgiFramework, string]> = [
  ['equinox', 'Eclipse Equinox'],
  ['felix', 'Apache Felix'],
]

/** A real framework (each of the two) with Shoal's launcher and management agent, driven through OsgiHost. */
describe.each(FRAMEWORKS)('OsgiHost on %s', (framework, title) => {
  const unavailable = skipReason(import.meta.url, `OsgiHost on ${title}`, osgiUnavailableReason(framework))
  describe.skipIf(unavailable != null)(title, () => {
    let dir: string
    let releases: Record<'1.0' | '1.1' | 'broken', string>
    let host: OsgiHost
    const wanted = async (release: keyof typeof releases): Promise<WantedBundle[]> =>
      Promise.all(
        (
          [
            ['greeter', 2],
            ['client', 3],
          ] as const
        ).map(async ([name, startLevel]) => {
          const path = join(releases[release], `${name}.jar`)
          const sha256 = createHash('sha256')
            .update(await readFile(path))
            .digest('hex')
          return { name, sha256, path, startLevel, version: release, distribution: `greeting@${release}` }
        }),
      )
    const greeting = () =>
      host.frameworkView().services.find((s) => s.properties.greeting != null)?.properties.greeting

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `shoal-osgi-${framework}-`))
      releases = buildOsgiGreeting(join(dir, 'releases'))
      host = new OsgiHost(
        { dir, env: {}, logFile: join(dir, 'framework.log'), framework, spawned: () => {}, exited: () => {} },
        createLogger({ level: 'warn' }),
      )
    })

    afterAll(async () => {
      await host?.stop()
      await rm(dir, { recursive: true, force: true })
    })

    it('installs and starts 1.0 in start-level order: the client uses the greeter', async () => {
      await host.apply(await wanted('1.0'), { audience: 'Shoal 1.0' })
      expect(host.states().map((s) => [s.name, s.state])).toEqual([
        ['greeter', 'ready'],
        ['client', 'ready'],
      ])
      expect(greeting()).toBe('Hello, Shoal 1.0 (greeter 1.0.0)')
      const view = host.frameworkView()
      expect(view.framework).toBe(framework)
      expect(view.bundles[0]?.symbolicName).toBe(
        framework === 'equinox' ? 'org.eclipse.osgi' : 'org.apache.felix.framework',
      )
    })

    it('moves to 1.1 updating only the greeter (same client jar, same bundle id)', async () => {
      const before = new Map(host.frameworkView().bundles.map((b) => [b.location, b]))
      await host.apply(await wanted('1.1'), { audience: 'Shoal 1.1' })
      const after = new Map(host.frameworkView().bundles.map((b) => [b.location, b]))
      expect(after.get('shoal:greeter')).toMatchObject({
        version: '1.1.0',
        state: 'ACTIVE',
        id: before.get('shoal:greeter')!.id,
      })
      expect(after.get('shoal:client')).toMatchObject({ state: 'ACTIVE', id: before.get('shoal:client')!.id })
      expect(greeting()).toBe('Hi, Shoal 1.1 (greeter 1.1.0)')
    })

    it('refuses a set whose client cannot resolve and puts the previous bundles back, all active', async () => {
      await expect(host.apply(await wanted('broken'), { audience: 'Shoal 1.1' })).rejects.toMatchObject({
        code: 'ERR_OSGI_BUNDLE',
        message: expect.stringMatching(/client.*io\.shoal\.example\.missing/s),
      })
      expect(host.states().map((s) => [s.name, s.version, s.state])).toEqual([
        ['greeter', '1.1', 'ready'],
        ['client', '1.1', 'ready'],
      ])
      expect(greeting()).toBe('Hi, Shoal 1.1 (greeter 1.1.0)')
    })

    it('starts a framework that died again and puts its bundles back', async () => {
      const pid = host.frameworkView().pid!
      process.kill(pid, 'SIGKILL')
      await waitFor(
        'the framework to run again with both bundles active',
        () => {
          const view = host.frameworkView()
          return (
            view.running &&
            view.pid !== pid &&
            host.states().every((s) => s.state === 'ready') &&
            greeting() === 'Hi, Shoal 1.1 (greeter 1.1.0)'
          )
        },
        { timeout: 60_000, interval: 100 },
      )
      expect(host.states().map((s) => [s.name, s.version, s.state])).toEqual([
        ['greeter', '1.1', 'ready'],
        ['client', '1.1', 'ready'],
      ])
    })
  })
})

describe('OsgiHost without its framework', () => {
  it('refuses osgi components with ERR_OSGI_UNAVAILABLE and a one-line reason', async () => {
    const saved = { equinox: process.env.SHOAL_EQUINOX_JAR, felix: process.env.SHOAL_FELIX_JAR }
    process.env.SHOAL_EQUINOX_JAR = '/nonexistent/eclipse-osgi.jar'
    process.env.SHOAL_FELIX_JAR = '/nonexistent/felix.jar'
    const dir = await mkdtemp(join(tmpdir(), 'shoal-osgi-missing-'))
    try {
      expect(osgiUnavailableReason('equinox')).toBe(
        'Eclipse Equinox is not installed (/nonexistent/eclipse-osgi.jar; Debian: libeclipse-osgi-java, or set SHOAL_EQUINOX_JAR)',
      )
      const host = new OsgiHost(
        {
          dir,
          env: {},
          logFile: join(dir, 'framework.log'),
          framework: 'felix',
          spawned: () => {},
          exited: () => {},
        },
        createLogger({ level: 'error' }),
      )
      const bundle = {
        name: 'b',
        sha256: 'x',
        path: '/x.jar',
        startLevel: 10,
        version: '1',
        distribution: 'd@1',
      }
      await expect(host.apply([bundle], {})).rejects.toMatchObject({
        code: 'ERR_OSGI_UNAVAILABLE',
        message:
          'this node cannot run osgi components: Apache Felix is not installed (/nonexistent/felix.jar; Debian: felix-main, or set SHOAL_FELIX_JAR)',
      })
      await host.stop()
    } finally {
      for (const [name, value] of [
        ['SHOAL_EQUINOX_JAR', saved.equinox],
        ['SHOAL_FELIX_JAR', saved.felix],
      ] as const)
        if (value == null) delete process.env[name]
        else process.env[name] = value
      await rm(dir, { recursive: true, force: true })
    }
  })
})
