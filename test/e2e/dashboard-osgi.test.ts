import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEducaOsgi, OSGI_API_JARS } from '../../examples/educa-osgi/build.mjs'
import type { MemberView } from '../../src/api/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { osgiUnavailableReason, platformBundles } from '../../src/runtime/osgi/osgi-host.js'
import { type AgentProcess, runCli, spawnAgent } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** Debian's Chromium, as test/e2e/dashboard.test.ts drives it. */
const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOTS = resolve(import.meta.dirname, '../../artifacts/dashboard')
const ROOT = resolve(import.meta.dirname, '../..')

const noBrowser = existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium)`
const noFeedBrowser = skipReason(import.meta.url, 'DS components on the dashboard (made-up feed)', noBrowser)
const noOsgi = skipReason(
  import.meta.url,
  'DS components on the dashboard (educa-osgi on an agent)',
  noBrowser ??
    // Equinox whatever SHOAL_OSGI_FRAMEWORK says: Felix runs no Declarative Services.
    osgiUnavailableReason('equinox') ??
    missing(platformBundles('equinox').map((b) => ({ path: b.path, debian: b.hint }))) ??
    missing([...OSGI_API_JARS]),
)

/** Which of `jars` are missing, as a skip reason, or null. */
function missing(jars: Array<{ path: string; debian: string }>): string | null {
  const absent = jars.filter((jar) => !existsSync(jar.path))
  return absent.length === 0 ? null : `missing ${absent.map((j) => `${j.path} (${j.debian})`).join(', ')}`
}

const launch = () =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })

/** A DS components table's rows as text: name, bundle, state, satisfied (with the reason). */
async function dsRows(page: Page, node: string): Promise<string[][]> {
  return page
    .locator(`#nodes tr[data-node="${node}"] table.ds tbody tr`)
    .evaluateAll((rows) =>
      rows.map((row) =>
        [...row.querySelectorAll('td')].map((td) => (td.textContent ?? '').replace(/\s+/g, ' ').trim()),
      ),
    )
}

/**
 * A page fed a made-up event stream (the dashboard's files served from the
 * repository, no agent): every DS state, a node without DS components, the
 * reasons of the unsatisfied ones.
 */
describe.skipIf(noFeedBrowser != null)('DS components on the dashboard (made-up feed)', () => {
  let browser: Browser

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true })
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it('shows each node its DS components: name, bundle, state, ✓ or ✗ with the reason', async () => {
    const osgi = (components: unknown[]) => ({ bundles: [], services: [], components })
    const member = (id: string, meta: Record<string, unknown>) => ({
      id,
      state: 'alive',
      roles: [],
      manager: false,
      self: false,
      components: [
        { name: 'api', state: 'ready' },
        { name: 'catalog', state: 'ready' },
        { name: 'web', state: 'ready' },
      ],
      meta,
    })
    const missing = 'no service for catalog (educa.api.Catalog)'
    const members = [
      member('node-aaaaaaaaaaaa-1', {
        osgi: osgi([
          { component: 'catalog', name: 'educa.catalog', state: 'satisfied' },
          { component: 'web', name: 'educa.web', state: 'active' },
        ]),
      }),
      member('node-bbbbbbbbbbbb-2', {
        osgi: osgi([
          {
            component: 'catalog',
            name: 'educa.catalog',
            state: 'failed-activation',
            reason: 'activation failed: java.lang.IllegalStateException: no courses',
          },
          { component: 'report', name: 'educa.report', state: 'disabled', reason: 'disabled' },
          { component: 'web', name: 'educa.web', state: 'unsatisfied-reference', reason: missing },
          {
            component: 'web',
            name: 'educa.admin',
            state: 'unsatisfied-configuration',
            reason:
              'no configuration for PID educa.admin (configuration-policy require; set config.osgi in the distribution)',
          },
        ]),
      }),
      // Felix (no SCR), or a Node.js node: no DS table.
      member('node-cccccccccccc-3', { osgi: osgi([]) }),
      member('node-dddddddddddd-4', {}),
    ]
    const snapshot = {
      status: { id: 'node-aaaaaaaaaaaa-1', cluster: 'fake', manager: null, managerStatus: {} },
      members,
      nodes: members.map((m) => ({
        id: m.id,
        state: 'ready',
        member: 'alive',
        distribution: 'educa-osgi@1.0',
        provider: 'local',
        handle: '',
      })),
      distributions: [],
      rollouts: [],
      lb: [],
      audit: [],
    }
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
    try {
      await serveDashboard(page, `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`)
      await page.goto('http://dashboard.test/')
      const first = page.locator('#nodes tr[data-node="node-aaaaaaaaaaaa-1"] table.ds')
      await first.waitFor({ timeout: 20_000 })
      // A table with a caption; the node's id is in it for screen readers.
      expect(await first.locator('caption').textContent()).toBe(
        'DS components of node …aaaaaa-1: 2, all satisfied',
      )
      expect(await first.locator('thead th').allTextContents()).toEqual([
        'Name',
        'Bundle',
        'State',
        'Satisfied',
      ])
      // Satisfied (delayed, not used yet) is normal: ✓, not an error.
      expect(await dsRows(page, 'node-aaaaaaaaaaaa-1')).toEqual([
        ['educa.catalog', 'catalog', 'satisfied', '✓yes'],
        ['educa.web', 'web', 'active', '✓yes'],
      ])
      expect(await first.locator('tr[data-ds="educa.catalog"] td').nth(3).getAttribute('class')).toBe('ok')

      const second = page.locator('#nodes tr[data-node="node-bbbbbbbbbbbb-2"] table.ds')
      expect(await second.locator('caption').textContent()).toBe(
        'DS components of node …bbbbbb-2: 4, 4 not satisfied',
      )
      expect(await dsRows(page, 'node-bbbbbbbbbbbb-2')).toEqual([
        [
          'educa.catalog',
          'catalog',
          'failed-activation',
          '✗no activation failed: java.lang.IllegalStateException: no courses',
        ],
        ['educa.report', 'report', 'disabled', '✗no disabled'],
        ['educa.web', 'web', 'unsatisfied-reference', `✗no ${missing}`],
        [
          'educa.admin',
          'web',
          'unsatisfied-configuration',
          expect.stringMatching(/^✗no no configuration for PID educa\.admin /),
        ],
      ])
      const cell = (name: string) => second.locator(`tr[data-ds="${name}"] td`).nth(3)
      expect(await cell('educa.web').getAttribute('class')).toBe('bad')
      expect(await cell('educa.report').getAttribute('class')).toBe('warn')
      // What a screen reader says of the mark: yes or no, not a glyph.
      expect(await cell('educa.web').locator('[aria-hidden="true"]').textContent()).toBe('✗')
      expect(await cell('educa.web').locator('.visually-hidden').textContent()).toBe('no')

      // No DS components: no table, the bundles are listed as before.
      for (const id of ['node-cccccccccccc-3', 'node-dddddddddddd-4']) {
        const row = page.locator(`#nodes tr[data-node="${id}"]`)
        expect(await row.locator('table.ds').count()).toBe(0)
        expect(await row.locator('td').nth(5).textContent()).toContain('web ready')
      }
      // The node rows stay one per node.
      expect(await page.locator('#nodes > tr').count()).toBe(4)
      await page.locator('#nodes').screenshot({ path: join(SCREENSHOTS, 'osgi-ds-feed.png') })
    } finally {
      await page.close()
    }
  })
})

/** Serves the dashboard's files from the repository under http://dashboard.test/, and `feed` as its event stream. */
async function serveDashboard(page: Page, feed: string): Promise<void> {
  const files: Record<string, [string, string]> = {
    '/': ['dashboard/index.html', 'text/html'],
    '/dashboard/app.js': ['dashboard/app.js', 'text/javascript'],
    '/dashboard/style.css': ['dashboard/style.css', 'text/css'],
    '/dashboard/uplot.js': ['node_modules/uplot/dist/uPlot.iife.min.js', 'text/javascript'],
    '/dashboard/uplot.css': ['node_modules/uplot/dist/uPlot.min.css', 'text/css'],
  }
  await page.route('http://dashboard.test/**', async (route) => {
    const path = new URL(route.request().url()).pathname
    if (path === '/api/events')
      return route.fulfill({ status: 200, contentType: 'text/event-stream', body: feed })
    const file = files[path]
    if (file == null)
      return route.fulfill({
        status: 404,
        contentType: 'application/json',
        body: '{"error":{"code":"ERR_NOT_FOUND"}}',
      })
    return route.fulfill({ status: 200, contentType: file[1], body: await readFile(join(ROOT, file[0])) })
  })
}

/**
 * The cheapest real setup: one agent process with examples/educa-osgi 1.0 published
 * with the CLI and rolled out (Equinox, Felix SCR, Equinox CM): its dashboard shows
 * the node's DS components educa.catalog and educa.web, active, as the agent reports them.
 */
describe.skipIf(noOsgi != null)('DS components on the dashboard (educa-osgi on an agent)', () => {
  let dir: string
  let agent: AgentProcess
  let browser: Browser

  const cli = async (...args: string[]) => {
    const result = await runCli([...args, '--api', agent.info.api])
    expect(result.code, `shoal ${args.join(' ')}: ${result.stderr}`).toBe(0)
    return result.stdout
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-dashboard-osgi-'))
    await mkdir(SCREENSHOTS, { recursive: true })
    const key = join(dir, 'pub.key')
    expect((await runCli(['key', 'new', key])).code).toBe(0)
    const built = await buildEducaOsgi(join(dir, 'build'))
    const args = ['--cluster', 'e2e-dashboard-osgi', '--data', join(dir, 'agent'), '--api', '127.0.0.1:0']
    args.push('--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--preset', 'test', '--trust', `${key}.pub`)
    args.push('--osgi-framework', 'equinox')
    agent = await spawnAgent(args, dir)
    await cli('publish', built['1.0'], '--name', 'educa-osgi', '--version', '1.0', '--key', key)
    await cli('rollout', 'educa-osgi@1.0', '--wait')
    browser = await launch()
  }, 300_000)

  afterAll(async () => {
    await browser?.close()
    await agent?.stop('SIGTERM')
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('shows educa.web active and educa.catalog with their bundles, as shoal components and the member metadata say', async () => {
    const status = JSON.parse(await cli('components', '--json')) as RuntimeStatus
    const ds = await waitFor(
      'the DS components in the member metadata',
      async () => {
        const members = JSON.parse(await cli('members', '--json')) as MemberView[]
        const self = members.find((m) => m.id === agent.info.id)
        const list = (self?.meta as { osgi?: { components?: Array<Record<string, string>> } })?.osgi
          ?.components
        return list != null && list.length === 2 ? list : null
      },
      { timeout: 60_000, interval: 500 },
    )
    expect(ds.map((c) => [c.name, c.component]).sort()).toEqual([
      ['educa.catalog', 'catalog'],
      ['educa.web', 'web'],
    ])
    expect(status.dsComponents.map((c) => c.name).sort()).toEqual(['educa.catalog', 'educa.web'])

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
    try {
      await page.goto(`${agent.info.api}/`)
      const table = page.locator(`#nodes tr[data-node="${agent.info.id}"] table.ds`)
      await table.locator('tr[data-ds="educa.web"][data-ds-state="active"]').waitFor({ timeout: 60_000 })
      const rows = await dsRows(page, agent.info.id)
      expect(rows.map((r) => r.slice(0, 2))).toEqual([
        ['educa.catalog', 'catalog'],
        ['educa.web', 'web'],
      ])
      expect(rows[1]).toEqual(['educa.web', 'web', 'active', '✓yes'])
      // The web component's static reference uses the catalog: active, or at least satisfied.
      expect(rows[0]![2]).toMatch(/^(active|satisfied)$/)
      expect(rows[0]![3]).toBe('✓yes')
      expect(await table.locator('caption').textContent()).toMatch(
        /^DS components of node …\S+: 2, all satisfied$/,
      )
      // The bundles are the node's components, as before.
      const cell = page.locator(`#nodes tr[data-node="${agent.info.id}"] > td`).nth(5)
      for (const bundle of ['api ready', 'catalog ready', 'web ready'])
        expect(await cell.textContent()).toContain(bundle)
      await page.screenshot({ path: join(SCREENSHOTS, 'osgi-ds-agent.png'), fullPage: true })
    } finally {
      await page.close()
    }
  })
})
