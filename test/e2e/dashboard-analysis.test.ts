import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import { steadyLoad } from '../helpers/load.js'
import { type AgentProcess, CLI, runCli, spawnAgent } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** Debian's Chromium (.ci/run installs it), as test/e2e/dashboard.test.ts drives it. */
const CHROMIUM = '/usr/bin/chromium'
/** Screenshots of each step, kept as test artifacts. */
const SCREENSHOTS = resolve(import.meta.dirname, '../../artifacts/dashboard')
const BROWSER_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
]

const noBrowser = skipReason(
  import.meta.url,
  'progressive delivery on the dashboard',
  existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium)`,
)

/** One version's figures, as GET /api/traffic and the verdicts give them. */
const figures = (requests: number, errors: number, p99Ms: number | null) => ({
  requests,
  errors,
  errorRate: requests === 0 ? 0 : errors / requests,
  p50Ms: p99Ms == null ? null : p99Ms / 4,
  p90Ms: p99Ms == null ? null : p99Ms / 2,
  p99Ms,
})

/**
 * The page alone, fed a made-up event stream and made-up traffic figures: what a
 * canary under analysis looks like (steps, verdicts with their figures, the
 * charts per version), a rollout paused by an inconclusive verdict (Approve is
 * offered), and the Traffic panel when no rollout runs. The agent only serves
 * the page and its files (the chart library from node_modules included).
 */
describe.skipIf(noBrowser != null)('progressive delivery on the dashboard, made-up figures', () => {
  let dir: string
  let agent: AgentProcess
  let browser: Browser

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-dashboard-analysis-'))
    await mkdir(SCREENSHOTS, { recursive: true })
    agent = await spawnAgent(
      ['--cluster', 'e2e-analysis-page', '--data', join(dir, 'agent'), '--api', '127.0.0.1:0'].concat([
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--no-mdns',
        '--preset',
        'test',
      ]),
      dir,
    )
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS })
  })

  afterAll(async () => {
    await browser?.close()
    await agent?.stop('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  })

  const now = Math.floor(Date.now() / 1000)
  const iso = (unix: number) => new Date(unix * 1000).toISOString()
  const rollout = (over: Record<string, unknown>) => ({
    id: 'r7',
    kind: 'rollout',
    distribution: 'educa@1.1',
    from: 'educa@1.0',
    strategy: 'canary',
    state: 'running',
    requestedBy: 'admin (admin)',
    requestedAt: iso(now - 60),
    startedAt: iso(now - 60),
    finishedAt: null,
    actions: [],
    nodes: { total: 4, pending: 2, updating: 0, done: 2, failed: 0, reverted: 0, lost: 0, skipped: 0 },
    members: [],
    steps: [10, 50, 100],
    stepIndex: 1,
    analysis: {
      conditions: ['error-rate<1%', 'p99<+50ms'],
      intervalMs: 30_000,
      minRequests: 200,
      onMissing: 'pause',
    },
    window: { step: 1, from: iso(now - 10), to: iso(now + 20) },
    verdicts: [
      {
        step: 0,
        percent: 10,
        from: iso(now - 50),
        to: iso(now - 20),
        at: iso(now - 20),
        verdict: 'pass',
        canary: figures(312, 1, 18.4),
        baseline: figures(2841, 3, 15.2),
        checks: [
          { condition: 'error-rate<1%', ok: true, value: 0.0032, limit: 0.01 },
          { condition: 'p99<+50ms', ok: true, value: 18.4, limit: 65.2 },
        ],
        sources: { answered: 1, known: 1 },
        decision: 'next step',
        reason: 'every condition held',
      },
    ],
    ...over,
  })
  const snapshot = (rollouts: unknown[]) => ({
    status: { id: 'agent', cluster: 'fake', manager: null, managerStatus: {} },
    members: [],
    nodes: [],
    rollouts,
    lb: [],
    audit: [],
    distributions: [],
  })
  /** 120 s of steady traffic: 1.0 at 90 requests/s, 1.1 at 10 then 45 (the 50 % step), a few errors. */
  const trafficAnswer = () => {
    const series = (version: string) =>
      Array.from({ length: 120 }, (_, i) => now - 120 + i)
        .filter((at) => version === '1.0' || at >= now - 55)
        .map((at) => {
          const requests = version === '1.0' ? (at >= now - 15 ? 50 : 90) : at >= now - 15 ? 45 : 10
          return { at, requests, errors: at % 7 === 0 ? 1 : 0, p99Ms: version === '1.0' ? 15 : 19 }
        })
    const version = (v: string) => {
      const s = series(v)
      const requests = s.reduce((n, p) => n + p.requests, 0)
      return {
        version: v,
        figures: figures(requests, s.filter((p) => p.errors > 0).length, v === '1.0' ? 15 : 19),
        series: s,
      }
    }
    return {
      at: iso(now),
      from: now - 119,
      to: now,
      loadBalancers: [{ id: '12D3KooWFakeLoadBalancer', service: 'web', ok: true, error: null }],
      versions: [version('1.0'), version('1.1')],
    }
  }

  /** A page whose event stream and traffic figures are the ones given. */
  const fedPage = async (rollouts: unknown[]): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } })
    await page.route('**/api/events', (route) =>
      route.fulfill({
        status: 200,
        contentType: 'text/event-stream',
        body: `event: snapshot\ndata: ${JSON.stringify(snapshot(rollouts))}\n\n`,
      }),
    )
    await page.route('**/api/traffic?**', (route) =>
      route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(trafficAnswer()) }),
    )
    await page.goto(agent.info.api)
    return page
  }

  it('shows a canary under analysis: its steps, the verdict with its figures, and a chart per version', async () => {
    const page = await fedPage([rollout({})])
    try {
      const card = page.locator('.rollout[data-rollout-id="r7"]')
      const steps = card.locator('ol.steps')
      await expect.poll(() => steps.textContent()).toMatch(/^10% ✓passed50% \(analysing, \d+ s left\)100%$/)
      expect(await steps.getAttribute('aria-label')).toBe('steps of r7')
      expect(await card.locator('ol.steps li[aria-current="step"]').textContent()).toContain('50%')
      const verdict = card.locator('table.verdicts tr[data-verdict="0"]')
      const cells = await verdict.locator('td').allTextContents()
      expect(cells[0]).toBe('1: 10%')
      expect(cells[1]).toContain('pass')
      expect(cells[3]).toBe('312 / 2841')
      expect(cells[4]).toBe('0.32 % / 0.11 %')
      expect(cells[5]).toBe('18.4 ms / 15.2 ms')
      expect(cells[6]).toContain('error-rate<1% 0.32 % against 1.00 %')
      expect(cells[6]).toContain('p99<+50ms 18.4 ms against 65.2 ms')
      expect(cells[7]).toContain('next step')
      expect(await card.locator('.analysis').textContent()).toMatch(
        /error-rate<1% · p99<\+50ms,\s+over 30 s windows/,
      )
      // The charts live in the rollout while it runs: three of them, a line per version, the table their legend.
      const chart = card.locator('#traffic-chart')
      await expect.poll(() => chart.getAttribute('data-versions')).toBe('1.0 1.1')
      expect(await chart.locator('.traffic-charts figure canvas').count()).toBe(3)
      expect(await chart.locator('.traffic-charts figcaption').allTextContents()).toEqual([
        'Requests/s',
        'Error rate (5 s)',
        'p99 latency',
      ])
      expect(await chart.locator('.traffic-figures tbody th').allTextContents()).toEqual([
        expect.stringMatching(/1\.0 \(old\)$/),
        expect.stringMatching(/1\.1 \(new\)$/),
      ])
      expect(await chart.locator('[data-chart="requests"] .plot').getAttribute('aria-label')).toMatch(
        /latest: 1\.0 50, 1\.1 45$/,
      )
      expect(await page.locator('#traffic-note').textContent()).toBe(
        'Shown with rollout r7 above while it runs.',
      )
      await expect.poll(() => card.getByRole('button', { name: 'Pause' }).count()).toBe(1)
      expect(await card.getByRole('button', { name: 'Abort' }).count()).toBe(1)
      await card.screenshot({ path: join(SCREENSHOTS, 'analysis-1-canary.png') })
    } finally {
      await page.close()
    }
  })

  it('offers Approve, Resume and Abort on a rollout paused by an inconclusive verdict', async () => {
    const paused = rollout({
      state: 'paused',
      window: null,
      verdicts: [
        ...(rollout({}).verdicts as unknown[]),
        {
          step: 1,
          percent: 50,
          from: iso(now - 40),
          to: iso(now - 10),
          at: iso(now - 10),
          verdict: 'inconclusive',
          canary: figures(120, 0, 19),
          baseline: figures(130, 0, 15),
          checks: [
            { condition: 'error-rate<1%', ok: null, value: 0, limit: 0.01 },
            { condition: 'p99<+50ms', ok: null, value: 19, limit: 65 },
          ],
          sources: { answered: 1, known: 1 },
          decision: 'paused',
          reason: 'too little traffic: 120 requests to the new version (at least 200 needed)',
        },
      ],
    })
    const page = await fedPage([paused])
    const posted: string[] = []
    await page.route('**/api/rollouts/r7/*', (route) => {
      posted.push(new URL(route.request().url()).pathname)
      return route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: '{"id":"r7","state":"running"}',
      })
    })
    try {
      const card = page.locator('.rollout[data-rollout-id="r7"]')
      await expect
        .poll(() => card.locator('ol.steps').textContent())
        .toBe('10% ✓passed50% ?inconclusive (paused: inconclusive)100%')
      expect(await card.locator('.actions button').allTextContents()).toEqual(['Approve', 'Resume', 'Abort'])
      const row = await card.locator('table.verdicts tr[data-verdict="1"] td').allTextContents()
      expect(row[1]).toContain('inconclusive')
      expect(row[6]).toContain('error-rate<1% 0.00 % against 1.00 %')
      expect(row[7]).toContain('too little traffic: 120 requests to the new version')
      await card.getByRole('button', { name: 'Approve' }).click()
      await expect.poll(() => posted).toEqual(['/api/rollouts/r7/approve'])
      await card.screenshot({ path: join(SCREENSHOTS, 'analysis-2-paused.png') })
    } finally {
      await page.close()
    }
  })

  it('shows the traffic per version in the Traffic panel when no rollout runs', async () => {
    const page = await fedPage([])
    try {
      const chart = page.locator('#traffic-panel #traffic-chart')
      await expect.poll(() => chart.getAttribute('data-versions')).toBe('1.0 1.1')
      expect(await chart.locator('canvas').count()).toBeGreaterThanOrEqual(3)
      expect(await chart.locator('.traffic-figures caption').textContent()).toBe(
        'Over the last 2 min, summed over 1 load balancer',
      )
      // Closed, it stays closed across a reload (and the page stops asking for figures).
      await page.locator('#traffic-panel summary').click()
      expect(
        await page.locator('#traffic-panel').evaluate((d) => (d as unknown as { open: boolean }).open),
      ).toBe(false)
      await page.reload()
      await expect
        .poll(() => page.locator('#active-rollouts').textContent())
        .toContain('No rollout in progress')
      expect(
        await page.locator('#traffic-panel').evaluate((d) => (d as unknown as { open: boolean }).open),
      ).toBe(false)
    } finally {
      await page.close()
    }
  })
})

interface Demo {
  app: string
  dashboard: string
  apis: string[]
  token: string
}

interface RolloutAnswer {
  id: string
  state: string
}

interface NodeRow {
  id: string | null
  state: string
  distribution: string | null
}

/**
 * The same views on a real cluster: a 3-node `shoal demo` (educa 1.0 running,
 * 1.1 published, `shoal lb` in front) with educa 1.2 published too (it answers
 * 10 % of real requests with 500), under a steady load through the load
 * balancer. Canaries with steps and analysis are started through the API, as
 * the brief of issue 21 gives it; the page shows what happens and its buttons
 * act on it.
 */
describe.skipIf(noBrowser != null)('progressive delivery on the dashboard, a real cluster under load', () => {
  let dir: string
  let demo: ChildProcess
  let printed: Demo
  let browser: Browser
  let page: Page
  let stopLoad: (() => Promise<unknown>) | undefined

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${printed.apis[0]}${path}`, {
      method,
      headers: { authorization: `Bearer ${printed.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const answer = (await res.json()) as T
    expect(res.ok, `${method} ${path}: ${JSON.stringify(answer)}`).toBe(true)
    return answer
  }
  /** Every node of the demo runs `distribution`, as the API says. */
  const allOn = async (distribution: string) =>
    (await api<NodeRow[]>('GET', '/api/nodes')).every((n) => n.distribution === distribution)
  /** A rollout's state in the history (its cell's class: the text adds the reason). */
  const historyState = (id: string) =>
    page.locator(`#rollout-history tr[data-rollout-row="${id}"] td`).nth(4).getAttribute('class')
  /**
   * A screenshot of the part of the page that matters (`selector`), clipped from the
   * page's: a rollout that changes meanwhile is drawn again, and a screenshot of the
   * element itself would fail on it.
   */
  const shot = async (name: string, selector: string) => {
    await page.locator(selector).scrollIntoViewIfNeeded()
    const clip = await page.locator(selector).boundingBox()
    await page.screenshot({
      path: join(SCREENSHOTS, `analysis-${name}.png`),
      ...(clip == null ? {} : { clip }),
    })
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-dashboard-analysis-demo-'))
    await mkdir(SCREENSHOTS, { recursive: true })
    demo = spawn(process.execPath, [CLI, 'demo', '--json', '--nodes', '3', '--data', join(dir, 'demo')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    printed = JSON.parse(
      await new Promise<string>((done, fail) => {
        createInterface({ input: demo.stdout! }).once('line', done)
        demo.once('exit', (code) => fail(new Error(`shoal demo exited with ${code} before starting`)))
      }),
    ) as Demo
    // The failing 1.2, built with the sample's own script and signed with the demo's key.
    const built = await buildEduca(join(dir, 'build'))
    const published = await runCli(
      [
        'publish',
        built['1.2'],
        '--name',
        'educa',
        '--version',
        '1.2',
        '--key',
        join(dir, 'demo', 'publisher.key'),
      ].concat(['--api', printed.apis[0]!]),
      { SHOAL_TOKEN: printed.token },
    )
    expect(published.code, published.stderr).toBe(0)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS })
    page = await browser.newPage({ viewport: { width: 1400, height: 1200 } })
    // The link carries the token in its fragment, as the demo prints it.
    await page.goto(`${printed.dashboard}/#token=${printed.token}`)
    await waitFor(
      'the page to show three ready nodes',
      async () => (await page.locator('#nodes tr[data-state="ready"]').count()) === 3,
      { timeout: 60_000, interval: 250 },
    )
    // 60 requests/s: a 5 s window gives the old version (one node of three) about 100, twice minRequests.
    stopLoad = steadyLoad(printed.app, 60)
  })

  afterAll(async () => {
    await stopLoad?.()
    await browser?.close()
    if (demo != null && demo.exitCode == null) {
      const exited = new Promise((done) => demo.once('exit', done))
      demo.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('charts the traffic per version in the Traffic panel while no rollout runs', async () => {
    const chart = page.locator('#traffic-panel #traffic-chart')
    await expect.poll(() => chart.getAttribute('data-versions'), { timeout: 60_000 }).toBe('1.0')
    expect(await chart.locator('.traffic-charts canvas').count()).toBeGreaterThanOrEqual(3)
    await expect
      .poll(async () => Number(await chart.locator('tr[data-version="1.0"] td').first().textContent()), {
        timeout: 30_000,
      })
      .toBeGreaterThan(40)
    await shot('3-traffic', '#traffic-panel')
  })

  it('a canary of 1.1 with steps and analysis: both versions on the chart, the verdict with its figures, Approve', async () => {
    const started = await api<RolloutAnswer>('POST', '/api/rollouts', {
      distribution: 'educa@1.1',
      strategy: 'canary',
      steps: [50, 100],
      analysis: ['error-rate<1%', 'p99<+50ms'],
      intervalMs: 5000,
      minRequests: 50,
      onMissing: 'fail',
      approve: 'manual',
    })
    const card = page.locator(`.rollout[data-rollout-id="${started.id}"]`)
    // The charts move into the rollout, and show the new version beside the old one.
    const chart = card.locator('#traffic-chart')
    await expect.poll(() => chart.getAttribute('data-versions'), { timeout: 60_000 }).toBe('1.0 1.1')
    expect(await chart.locator('tr[data-version="1.1"] th').textContent()).toMatch(/1\.1 \(new\)$/)
    const steps = card.locator('ol.steps')
    await expect
      .poll(() => steps.textContent(), { timeout: 60_000, interval: 200 })
      .toMatch(/^50% \(analysing, \d+ s left\)100%$/)
    await shot('4-analysing', `.rollout[data-rollout-id="${started.id}"]`)
    // The verdict: passed, with the figures of both versions over the window, and the rollout waits.
    const verdict = card.locator('table.verdicts tr[data-verdict="0"]')
    await expect.poll(() => verdict.getAttribute('data-result'), { timeout: 60_000 }).toBe('pass')
    const cells = await verdict.locator('td').allTextContents()
    // 50 % of three nodes: two move.
    expect(cells[0]).toBe('1: 50% (67% of nodes)')
    const [canary, baseline] = cells[3]!.split(' / ').map(Number)
    expect(canary).toBeGreaterThanOrEqual(50)
    expect(baseline).toBeGreaterThanOrEqual(50)
    expect(cells[4]).toBe('0.00 % / 0.00 %')
    expect(cells[5]).toMatch(/^[\d.]+ ms \/ [\d.]+ ms$/)
    expect(cells[6]).toMatch(/✓ error-rate<1% 0\.00 % against 1\.00 %/)
    expect(cells[6]).toMatch(/✓ p99<\+50ms [\d.]+ ms against [\d.]+ ms/)
    expect(cells[7]).toContain('waiting for approval')
    await expect.poll(() => steps.textContent()).toBe('50% ✓passed (waiting for approval)100%')
    await shot('5-verdict', `.rollout[data-rollout-id="${started.id}"]`)
    await card.getByRole('button', { name: 'Approve' }).click()
    await expect.poll(() => historyState(started.id), { timeout: 90_000, interval: 500 }).toBe('done')
    await waitFor('every node on educa 1.1', () => allOn('educa@1.1'), { timeout: 60_000 })
    // The history keeps the verdict under the finished rollout.
    expect(
      await page
        .locator(`#rollout-history tr[data-rollout-notes="${started.id}"] tr[data-result="pass"]`)
        .count(),
    ).toBe(1)
  })

  it('a canary of the failing 1.2 fails at its first step: the figures say why, every node goes back', async () => {
    const started = await api<RolloutAnswer>('POST', '/api/rollouts', {
      distribution: 'educa@1.2',
      strategy: 'canary',
      steps: [50, 100],
      analysis: ['error-rate<1%'],
      intervalMs: 5000,
      minRequests: 50,
      onMissing: 'fail',
    })
    await expect.poll(() => historyState(started.id), { timeout: 90_000, interval: 500 }).toBe('failed')
    const verdict = page.locator(
      `#rollout-history tr[data-rollout-notes="${started.id}"] tr[data-verdict="0"]`,
    )
    expect(await verdict.getAttribute('data-result')).toBe('fail')
    const cells = await verdict.locator('td').allTextContents()
    const canaryRate = Number(/^([\d.]+) %/.exec(cells[4]!)?.[1])
    expect(canaryRate).toBeGreaterThan(1)
    expect(cells[6]).toMatch(/✗ error-rate<1% [\d.]+ % against 1\.00 %/)
    expect(cells[7]).toContain('rolled back')
    await waitFor('every node back on educa 1.1', () => allOn('educa@1.1'), { timeout: 60_000 })
    await shot('6-failed', `#rollout-history tr[data-rollout-notes="${started.id}"]`)
  })

  it('a canary started from the form, paused by an inconclusive verdict, offers Approve, Resume and Abort; Abort sends it back', async () => {
    const before = new Set((await api<RolloutAnswer[]>('GET', '/api/rollouts')).map((r) => r.id))
    const form = page.locator('#rollout-form')
    await form.getByLabel('Version').selectOption('educa@1.2')
    await form.getByLabel('Strategy').selectOption('canary')
    await form.getByLabel('Approval').selectOption('auto')
    await form.getByLabel('Steps %').fill('50, 100')
    await form.getByLabel('Analysis').fill('error-rate<1%')
    await form.getByLabel('Interval s').fill('5')
    // More than the load sends in a window: the verdict is inconclusive and the rollout waits for a person.
    await form.getByLabel('Min requests').fill('1000000')
    await form.getByLabel('Too few requests').selectOption('pause')
    await form.getByRole('button', { name: 'Start rollout' }).click()
    const started = await waitFor(
      'the rollout started from the form',
      async () => (await api<RolloutAnswer[]>('GET', '/api/rollouts')).find((r) => !before.has(r.id)),
      { timeout: 30_000, interval: 250 },
    )
    const record = (await api<Array<RolloutAnswer & Record<string, unknown>>>('GET', '/api/rollouts')).find(
      (r) => r.id === started.id,
    )!
    expect(record).toMatchObject({
      distribution: 'educa@1.2',
      strategy: 'canary',
      steps: [50, 100],
      analysis: {
        conditions: ['error-rate<1%'],
        intervalMs: 5000,
        minRequests: 1_000_000,
        onMissing: 'pause',
      },
    })
    const card = page.locator(`.rollout[data-rollout-id="${started.id}"]`)
    await expect
      .poll(() => card.getAttribute('data-state'), { timeout: 90_000, interval: 500 })
      .toBe('paused')
    expect(await card.locator('ol.steps').textContent()).toBe('50% ?inconclusive (paused: inconclusive)100%')
    expect(await card.locator('.actions button').allTextContents()).toEqual(['Approve', 'Resume', 'Abort'])
    expect(await card.locator('tr[data-verdict="0"] td').nth(7).textContent()).toContain('too little traffic')
    await shot('7-paused', `.rollout[data-rollout-id="${started.id}"]`)
    await card.getByRole('button', { name: 'Abort' }).click()
    await expect.poll(() => historyState(started.id), { timeout: 90_000, interval: 500 }).toBe('aborted')
    await waitFor('every node back on educa 1.1', () => allOn('educa@1.1'), { timeout: 60_000 })
    expect(await page.locator('#active-rollouts').textContent()).toContain('No rollout in progress')
  })
})
