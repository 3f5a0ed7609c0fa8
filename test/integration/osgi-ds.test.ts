import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fitOsgiAnnouncement, runtimeAnnouncement } from '../../src/runtime/announcement.js'
import type { WantedBundle } from '../../src/runtime/osgi/bundle-plan.js'
import type { DsComponentInfo } from '../../src/runtime/osgi/management-client.js'
import { osgiConfigOf } from '../../src/runtime/osgi/osgi-config.js'
import { dsComponentStatuses, reasonOf } from '../../src/runtime/osgi/osgi-ds.js'
import { OsgiHost, osgiUnavailableReason, platformBundles } from '../../src/runtime/osgi/osgi-host.js'
import { createLogger } from '../../src/shared/logger.js'
import { buildDsFixtures, dsFixtureUnavailable } from '../fixtures/osgi-ds/build.mjs'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** Why Equinox with Felix SCR and Equinox CM cannot run here, or null. */
function equinoxDsUnavailable(): string | null {
  const missing = platformBundles('equinox').find((b) => !existsSync(b.path))
  return (
    osgiUnavailableReason('equinox') ??
    dsFixtureUnavailable() ??
    (missing == null ? null : `platform bundle ${missing.name} missing at ${missing.path} (${missing.hint})`)
  )
}

const unavailable = skipReason(
  import.meta.url,
  'Declarative Services and Configuration Admin on Equinox',
  equinoxDsUnavailable(),
)

type Jars = ReturnType<typeof buildDsFixtures>

async function wantedOf(jars: Jars, names: Array<keyof Jars>): Promise<WantedBundle[]> {
  return Promise.all(
    names.map(async (name, i) => {
      const path = jars[name]
      const sha256 = createHash('sha256')
        .update(await readFile(path))
        .digest('hex')
      return { name, sha256, path, startLevel: 10 + i, version: '1.0', distribution: 'ds@1.0' }
    }),
  )
}

/** Real Equinox started by Shoal's launcher with SCR and Equinox CM as platform bundles, driven through OsgiHost. */
describe.skipIf(unavailable != null)('Declarative Services and Configuration Admin on Equinox', () => {
  let dir: string
  let jars: Jars
  let host: OsgiHost
  let bundles: WantedBundle[]
  const logFile = () => join(dir, 'framework.log')
  /** The "SHOAL-DS …" lines the test bundles printed, in order. */
  const events = async () =>
    (await readFile(logFile(), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.startsWith('SHOAL-DS '))
      .map((l) => l.slice('SHOAL-DS '.length))
  const states = () => Object.fromEntries(host.dsComponents().map((c) => [c.name, c.state]))
  const greeter = (props: Record<string, unknown>) => ({ osgi: { 'shoal.test.greeter': props } })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-osgi-ds-'))
    jars = buildDsFixtures(join(dir, 'bundles'))
    bundles = await wantedOf(jars, ['provider', 'consumer', 'managed'])
    host = new OsgiHost(
      { dir, env: {}, logFile: logFile(), framework: 'equinox', spawned: () => {}, exited: () => {} },
      createLogger({ level: 'warn' }),
    )
  })

  afterAll(async () => {
    await host?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('without configuration: the provider waits for it, the consumer for the provider', async () => {
    await host.apply(bundles, {})
    expect(host.states().map((s) => [s.name, s.state])).toEqual([
      ['provider', 'ready'],
      ['consumer', 'ready'],
      ['managed', 'ready'],
    ])
    await waitFor('both DS components reported', () => host.dsComponents().length === 2)
    expect(host.dsComponents()).toEqual([
      {
        component: 'consumer',
        name: 'shoal.test.client',
        state: 'unsatisfied-reference',
        satisfied: false,
        reason: 'no service for greeter (io.shoal.test.ds.api.Greeter)',
      },
      {
        component: 'provider',
        name: 'shoal.test.greeter',
        state: 'unsatisfied-configuration',
        satisfied: false,
        reason: expect.stringContaining('no configuration for PID shoal.test.greeter'),
      },
    ])
    // Member metadata carries them, within the key's budget.
    const announced = fitOsgiAnnouncement(host.metadata())
    expect(announced?.components).toEqual([
      expect.objectContaining({
        component: 'consumer',
        name: 'shoal.test.client',
        state: 'unsatisfied-reference',
      }),
      expect.objectContaining({
        component: 'provider',
        name: 'shoal.test.greeter',
        state: 'unsatisfied-configuration',
      }),
    ])
    expect(runtimeAnnouncement.of({ meta: { osgi: announced } }).osgi).toEqual(announced)
    // Configuration Admin calls a ManagedService with null while it has no configuration.
    await waitFor('the ManagedService told it has none', async () =>
      (await events()).includes('managed updated null'),
    )
  })

  it('config.osgi reaches the provider in activate (typed), and the consumer binds it', async () => {
    await host.apply(
      bundles,
      greeter({ greeting: 'Hello', port: 8080, debug: true, tags: ['a', 'b'], unset: null }),
    )
    await waitFor('both components active', () => {
      const s = states()
      return s['shoal.test.greeter'] === 'active' && s['shoal.test.client'] === 'active'
    })
    expect(host.dsComponents().every((c) => c.satisfied && c.reason == null)).toBe(true)
    const seen = await events()
    expect(seen).toContain(
      'provider activate greeting=Hello port=Integer:8080 debug=true tags=a|b pid=shoal.test.greeter',
    )
    expect(seen).toContain('consumer activate Hello, shoal')
  })

  it('a changed configuration is applied in place: the provider is modified, nothing restarts', async () => {
    const before = (await events()).length
    await host.apply(bundles, greeter({ greeting: 'Bonjour', port: 8080, debug: true, tags: ['a', 'b'] }))
    await waitFor('the provider modified', async () =>
      (await events()).includes(
        'provider modified greeting=Bonjour port=Integer:8080 debug=true tags=a|b pid=shoal.test.greeter',
      ),
    )
    const after = (await events()).slice(before)
    expect(after.filter((e) => /activate|deactivate/.test(e))).toEqual([])
    expect(states()).toEqual({ 'shoal.test.greeter': 'active', 'shoal.test.client': 'active' })
    // The same properties again: the agent leaves the configuration alone (no modified).
    await host.apply(bundles, greeter({ greeting: 'Bonjour', port: 8080, debug: true, tags: ['a', 'b'] }))
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect((await events()).slice(before).filter((e) => e.startsWith('provider modified'))).toHaveLength(1)
  })

  it('plain ManagedServices and named factory configurations get theirs through Configuration Admin', async () => {
    await host.apply(bundles, {
      osgi: {
        'shoal.test.greeter': { greeting: 'Bonjour', port: 8080, debug: true, tags: ['a', 'b'] },
        'shoal.test.managed': { greeting: 'managed', port: 7 },
        'shoal.test.factory~one': { greeting: 'one' },
      },
    })
    await waitFor('the ManagedService and the factory updated', async () => {
      const seen = await events()
      return (
        seen.includes('managed updated greeting=managed port=Integer:7 pid=shoal.test.managed') &&
        seen.includes(
          'factory updated shoal.test.factory~one greeting=one port=null pid=shoal.test.factory~one',
        )
      )
    })
  })

  it('a config.osgi Configuration Admin cannot hold is refused; the previous configuration stays', async () => {
    await expect(
      host.apply(bundles, { osgi: { 'shoal.test.greeter': { greeting: { nested: true } } } }),
    ).rejects.toMatchObject({
      code: 'ERR_OSGI_BUNDLE',
      message: expect.stringContaining('config.osgi["shoal.test.greeter"]["greeting"]'),
    })
    expect(states()).toEqual({ 'shoal.test.greeter': 'active', 'shoal.test.client': 'active' })
  })

  it('a PID the version no longer has is deleted: the provider deactivates and the consumer with it', async () => {
    const before = (await events()).length
    await host.apply(bundles, {})
    await waitFor('the provider back to unsatisfied-configuration', () => {
      const s = states()
      return (
        s['shoal.test.greeter'] === 'unsatisfied-configuration' &&
        s['shoal.test.client'] === 'unsatisfied-reference'
      )
    })
    await waitFor('deactivations and deletions delivered', async () => {
      const after = (await events()).slice(before)
      return [
        'provider deactivate',
        'consumer deactivate',
        'managed updated null',
        'factory deleted shoal.test.factory~one',
      ].every((e) => after.includes(e))
    })
  })

  it('an activate that throws shows as failed-activation with its reason (its first line)', async () => {
    await host.apply(bundles, greeter({ greeting: 'fail' }))
    await waitFor('the provider failed', () => states()['shoal.test.greeter'] === 'failed-activation')
    expect(host.dsComponents()).toContainEqual({
      component: 'provider',
      name: 'shoal.test.greeter',
      state: 'failed-activation',
      satisfied: false,
      reason: 'activation failed: java.lang.IllegalStateException: the test asked activate to fail',
    })
  })
})

/** Without Configuration Admin the management agent delivers to ManagedServices itself. */
describe.skipIf(unavailable != null)('ManagedService delivery without Configuration Admin (Equinox)', () => {
  let dir: string
  let host: OsgiHost
  let bundles: WantedBundle[]
  const saved = process.env.SHOAL_CM_JAR
  const logFile = () => join(dir, 'framework.log')
  const events = async () =>
    (await readFile(logFile(), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.startsWith('SHOAL-DS '))
      .map((l) => l.slice('SHOAL-DS '.length))

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-osgi-ms-'))
    const jars = buildDsFixtures(join(dir, 'bundles'))
    bundles = await wantedOf(jars, ['managed'])
    // No Equinox CM among the platform bundles (shoal.osgi.cmpn still brings the cm API).
    process.env.SHOAL_CM_JAR = ''
    host = new OsgiHost(
      { dir, env: {}, logFile: logFile(), framework: 'equinox', spawned: () => {}, exited: () => {} },
      createLogger({ level: 'warn' }),
    )
  })

  afterAll(async () => {
    if (saved == null) delete process.env.SHOAL_CM_JAR
    else process.env.SHOAL_CM_JAR = saved
    await host?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('pushed before the bundle starts, delivered when its ManagedService appears; updated, then removed', async () => {
    await host.apply(bundles, {
      osgi: {
        'shoal.test.managed': { greeting: 'early', port: 1 },
        'shoal.test.factory~one': { greeting: 'one' },
      },
    })
    await waitFor('the first delivery', async () => {
      const seen = await events()
      return (
        seen.includes('managed updated greeting=early port=Integer:1 pid=shoal.test.managed') &&
        seen.includes(
          'factory updated shoal.test.factory~one greeting=one port=null pid=shoal.test.factory~one',
        )
      )
    })
    await host.apply(bundles, {
      osgi: {
        'shoal.test.managed': { greeting: 'second', port: 2 },
        'shoal.test.factory~two': { greeting: 'two' },
      },
    })
    await host.apply(bundles, {})
    await waitFor('the update and the removals, in order', async () => {
      const seen = await events()
      const tail = seen.slice(
        seen.indexOf('managed updated greeting=early port=Integer:1 pid=shoal.test.managed') + 1,
      )
      return (
        JSON.stringify(tail.filter((e) => !e.startsWith('factory updated shoal.test.factory~one'))) ===
        JSON.stringify([
          'factory deleted shoal.test.factory~one',
          'managed updated greeting=second port=Integer:2 pid=shoal.test.managed',
          'factory updated shoal.test.factory~two greeting=two port=null pid=shoal.test.factory~two',
          'managed updated null',
          'factory deleted shoal.test.factory~two',
        ])
      )
    })
    // No SCR component declared, no DS component shown.
    expect(host.dsComponents()).toEqual([])
  })
})

describe('DS components and config.osgi, without a framework', () => {
  const info = (over: Partial<DsComponentInfo>): DsComponentInfo => ({
    name: 'c',
    bundle: 7,
    symbolicName: 'b',
    state: 'active',
    enabled: true,
    configurations: 1,
    configurationPolicy: 'optional',
    configurationPid: ['c'],
    unsatisfied: [],
    failure: null,
    ...over,
  })

  it('say why a component is not satisfied', () => {
    expect(
      reasonOf(
        info({
          state: 'unsatisfied-reference',
          unsatisfied: [{ name: 'db', interface: 'x.Db', target: '(name=main)' }],
        }),
      ),
    ).toBe('no service for db (x.Db (name=main))')
    expect(reasonOf(info({ state: 'failed-activation', failure: 'boom' }))).toBe('activation failed: boom')
    expect(reasonOf(info({ state: 'unsatisfied-configuration', configurationPid: ['a', 'b'] }))).toMatch(
      /^no configuration for PID a, b/,
    )
    // Components of bundles that are not ours (platform bundles) are left out.
    expect(dsComponentStatuses([info({ bundle: 3 }), info({ name: 'd' })], new Map([[7, 'web']]))).toEqual([
      { component: 'web', name: 'd', state: 'active', satisfied: true, reason: null },
    ])
  })

  it('fit the osgi key: services and reasons go before the unsatisfied components', () => {
    const bundles = [{ component: 'web', symbolicName: 'educa.web', version: '1.0.0', state: 'ACTIVE' }]
    const services = Array.from({ length: 12 }, (_, i) => ({
      component: 'web',
      objectClass: [`educa.web.Service${i}`],
      properties: { greeting: 'x'.repeat(40) },
    }))
    const components = Array.from({ length: 20 }, (_, i) => ({
      component: 'web',
      name: `educa.web.Component${i}`,
      state: i === 0 ? 'unsatisfied-reference' : 'active',
      ...(i === 0 ? { reason: `no service for catalog (educa.api.Catalog) ${'y'.repeat(100)}` } : {}),
    }))
    const fitted = fitOsgiAnnouncement({ bundles, services, components })!
    expect(JSON.stringify(fitted).length).toBeLessThanOrEqual(runtimeAnnouncement.budget('osgi'))
    expect(fitted.bundles).toEqual(bundles)
    expect(fitted.components?.map((c) => c.name)).toContain('educa.web.Component0')
    const small = { bundles, services: services.slice(0, 1), components: components.slice(0, 2) }
    expect(fitOsgiAnnouncement(small)).toEqual(small)
  })

  it('check config.osgi as Configuration Admin can hold it', () => {
    expect(osgiConfigOf({ audience: 'x' })).toEqual({})
    expect(osgiConfigOf({ osgi: { a: { s: 'x', n: 1, b: true, l: ['x'], z: null }, 'f~one': {} } })).toEqual({
      a: { s: 'x', n: 1, b: true, l: ['x'], z: null },
      'f~one': {},
    })
    expect(() => osgiConfigOf({ osgi: { a: { nested: { x: 1 } } } })).toThrow(
      /config\.osgi\["a"\]\["nested"\]/,
    )
    expect(() => osgiConfigOf({ osgi: { a: { 'Service.PID': 'x' } } })).toThrow(/set by Configuration Admin/)
    expect(() => osgiConfigOf({ osgi: { a: { Port: 1, port: 2 } } })).toThrow(/ignore case/)
    expect(() => osgiConfigOf({ osgi: { 'a\tb': {} } })).toThrow(/PID/)
    expect(() => osgiConfigOf({ osgi: { a: { mixed: ['x', 1] } } })).toThrow(/config\.osgi/)
  })
})
