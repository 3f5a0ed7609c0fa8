import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { steadyLoad } from '../helpers/load.js'
import { CLI } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** Debian's Chromium (.ci/run installs it); playwright-core drives it, it downloads no browser of its own. */
const CHROMIUM = '/usr/bin/chromium'
/** Screenshots of each step, kept as test artifacts. */
const SCREENSHOTS = resolve(import.meta.dirname, '../../artifacts/dashboard')

interface Demo {
  app: string
  dashboard: string
  apis: string[]
  token: string
}

interface NodeRow {
  id: string | null
  state: string
  distribution: string | null
}

/**
 * The seed's story in a browser: the dashboard of a 3-node demo cluster shows
 * three nodes; copy → four; − on one → three with no failed request through the
 * load balancer; a rolling rollout to 1.1 started from the form, approved and
 * finished; a rollback to 1.0.
 */
const noBrowser = skipReason(
  import.meta.url,
  'dashboard in headless Chromium',
  existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium)`,
)

describe.skipIf(noBrowser != null)('dashboard in headless Chromium', () => {
  let dir: string
  let demo: ChildProcess
  let printed: Demo
  let browser: Browser
  let page: Page

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${printed.apis[0]}${path}`, {
      headers: { authorization: `Bearer ${printed.token}` },
    })
    return (await res.json()) as T
  }
  const nodeRows = () => page.locator('#nodes tr')
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-dashboard-'))
    await mkdir(SCREENSHOTS, { recursive: true })
    demo = spawn(process.execPath, [CLI, 'demo', '--json', '--nodes', '3', '--data', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    printed = JSON.parse(
      await new Promise<string>((done) => createInterface({ input: demo.stdout! }).once('line', done)),
    ) as Demo
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
      ],
    })
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    page.on('dialog', (dialog) => void dialog.accept())
  })

  afterAll(async () => {
    await browser?.close()
    if (demo != null && demo.exitCode == null) {
      const exited = new Promise((done) => demo.once('exit', done))
      demo.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('asks for the token once, then shows the three nodes live', async () => {
    await page.goto(printed.dashboard)
    await page.getByLabel('Token', { exact: true }).fill(printed.token)
    await page.getByRole('button', { name: 'Use token' }).click()
    await expect.poll(() => nodeRows().count(), { timeout: 60_000 }).toBe(3)
    await expect.poll(() => page.locator('#nodes tr[data-state="ready"]').count()).toBe(3)
    await expect.poll(() => page.locator('#lbs table tbody tr').count()).toBe(3)
    await shot('1-three-nodes')
    // A reload keeps the token: the dashboard asked once.
    await page.reload()
    await expect
      .poll(() => page.locator('#nodes tr[data-state="ready"]').count(), { timeout: 60_000 })
      .toBe(3)
    expect(
      await page.locator('#token-dialog').evaluate((d) => (d as unknown as { open: boolean }).open),
    ).toBe(false)
  })

  it('copies a node with its button: a fourth node joins, fetches educa and serves', async () => {
    await page.locator('#nodes tr').first().getByRole('button', { name: /^Copy/ }).click()
    await expect
      .poll(() => page.locator('#nodes tr[data-state="ready"]').count(), {
        timeout: 60_000,
        interval: 500,
      })
      .toBe(4)
    await expect.poll(() => page.locator('#lbs table tbody tr').count(), { timeout: 60_000 }).toBe(4)
    await shot('2-four-nodes')
  })

  it('removes the copy with its − button, with no failed request through the load balancer', async () => {
    const nodes = await api<NodeRow[]>('/api/nodes')
    const copy = nodes.find((n) => n.state === 'ready' && (n as { provider?: string }).provider === 'local')
    expect(copy).toBeDefined()
    const stopLoad = steadyLoad(printed.app, 40)
    await new Promise((done) => setTimeout(done, 1000))
    await page
      .locator(`#nodes tr[data-node="${copy!.id}"]`)
      .getByRole('button', { name: /^Remove/ })
      .click()
    await waitFor(
      'the copy to be gone from the dashboard',
      async () =>
        (await page.locator('#nodes tr[data-state="ready"]').count()) === 3 &&
        (await page.locator(`#nodes tr[data-node="${copy!.id}"][data-state="ready"]`).count()) === 0,
      { timeout: 60_000, interval: 250 },
    )
    await expect.poll(() => page.locator('#lbs table tbody tr').count(), { timeout: 60_000 }).toBe(3)
    await new Promise((done) => setTimeout(done, 1000))
    const load = await stopLoad()
    expect(load.failures).toEqual({})
    expect(load.ok).toBe(load.sent)
    expect(load.sent).toBeGreaterThan(100)
    await shot('3-copy-removed')
  })

  it('starts a rolling rollout to 1.1 from the form, approves it and watches it finish', async () => {
    const form = page.locator('#rollout-form')
    await form.getByLabel('Version').selectOption('educa@1.1')
    await form.getByLabel('Strategy').selectOption('rolling')
    await form.getByLabel('Approval').selectOption('manual')
    await form.getByRole('button', { name: 'Start rollout' }).click()
    const waiting = page.locator('.rollout[data-state="waiting-approval"]')
    await expect.poll(() => waiting.count(), { timeout: 60_000 }).toBe(1)
    await shot('4-waiting-approval')
    // Gated: nothing moved before the approval.
    expect((await api<NodeRow[]>('/api/nodes')).filter((n) => n.distribution === 'educa@1.1')).toEqual([])
    await waiting.getByRole('button', { name: 'Approve' }).click()
    await expect
      .poll(() => page.locator('#rollout-history tr').first().locator('td').nth(4).textContent(), {
        timeout: 60_000,
        interval: 500,
      })
      .toBe('done')
    await expect
      .poll(() => page.locator('#nodes tr[data-state="ready"]').filter({ hasText: 'educa@1.1' }).count(), {
        timeout: 60_000,
      })
      .toBe(3)
    const answer = (await (await fetch(printed.app)).json()) as { version: string }
    expect(answer.version).toBe('1.1')
    await shot('5-rolled-out')
  })

  it('rolls back to 1.0 from the form', async () => {
    const form = page.locator('#rollback-form')
    await form.getByLabel('Distribution').selectOption('educa')
    await form.getByRole('button', { name: 'Roll back' }).click()
    await expect
      .poll(() => page.locator('#rollout-history tr').first().textContent(), {
        timeout: 60_000,
        interval: 500,
      })
      .toMatch(/rollback\s*educa@1\.0[\s\S]*done/)
    await expect
      .poll(() => page.locator('#nodes tr[data-state="ready"]').filter({ hasText: 'educa@1.0' }).count(), {
        timeout: 60_000,
      })
      .toBe(3)
    const answer = (await (await fetch(printed.app)).json()) as { version: string }
    expect(answer.version).toBe('1.0')
    await expect
      .poll(() => page.locator('#audit tr').filter({ hasText: 'rollback' }).count())
      .toBeGreaterThan(0)
    await shot('6-rolled-back')
  })

  it('shows a download under way (held, rate, sources, ETA, a rate chart) and why one is paused', async () => {
    // A feed of its own: a real download on the demo's tiny release is over before a page could see it.
    const version = (id: string, over: Record<string, unknown>) => ({
      id,
      name: id.split('@')[0],
      version: id.split('@')[1],
      complete: false,
      artifacts: 1,
      bytes: 100_000_000,
      publisher: 'ed25519:00',
      createdAt: '2025-01-01T00:00:00.000Z',
      supersedes: null,
      digest: 'sha256:00',
      holders: [],
      progress: { chunks: 42, total: 100 },
      transfer: null,
      ...over,
    })
    const transfer = { sources: 3, eta: 2, bytesDone: 42_000_000, bytesTotal: 100_000_000, paused: null }
    const snapshot = (rate: number) => ({
      status: { id: 'agent', cluster: 'fake', manager: null, managerStatus: {} },
      members: [],
      nodes: [],
      rollouts: [],
      lb: [],
      audit: [],
      distributions: [
        version('big@1.0', { complete: true }),
        version('big@1.1', { transfer: { ...transfer, rate } }),
        version('big@1.2', {
          transfer: {
            ...transfer,
            rate: 0,
            sources: 0,
            eta: null,
            paused: { code: 'ERR_DISK_FULL', message: 'disk full: 58.0 MB more needed' },
          },
        }),
      ],
    })
    const feed = [20_000_000, 38_200_000]
      .map((rate) => `event: snapshot\ndata: ${JSON.stringify(snapshot(rate))}\n\n`)
      .join('')
    const fetching = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    try {
      await fetching.route('**/api/events', (route) =>
        route.fulfill({ status: 200, contentType: 'text/event-stream', body: feed }),
      )
      await fetching.goto(printed.dashboard)
      const row = (id: string) => fetching.locator(`#distributions tr[data-distribution="${id}"] td`).nth(1)
      await expect.poll(() => row('big@1.1').textContent()).toContain('38.2 MB/s · 3 sources · eta 2s')
      expect(await row('big@1.1').textContent()).toMatch(/42 %\s+42\.0 MB of 100\.0 MB/)
      expect(await row('big@1.1').locator('svg.sparkline polyline').count()).toBe(1)
      expect(await row('big@1.2').textContent()).toContain('paused: disk full: 58.0 MB more needed')
      expect(await row('big@1.0').textContent()).toBe('complete')
      await fetching.locator('#distributions').screenshot({ path: join(SCREENSHOTS, '7-download.png') })
    } finally {
      await fetching.close()
    }
  })
})
