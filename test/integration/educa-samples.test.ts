/**
 * The bad Educa versions (examples/educa): 1.2 passes its health check but answers
 * a share of real requests with 500; 1.2-slow answers them correctly but late.
 * Each web component runs as the agent would start it: the package unpacked, the
 * descriptor's entry point run with Node, PORT/HOST and the SHOAL_* environment
 * (SHOAL_CONFIG is the distribution's config). No agent and no catalog: the front
 * page then answers 200 with the catalog "unavailable", quickly.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as tar from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca, EDUCA_VERSIONS, type EducaVersion } from '../../examples/educa/build.mjs'
import { parseDescriptor } from '../../src/runtime/descriptor.js'
import { freePort } from '../../src/shared/ports.js'
import { waitFor } from '../helpers/wait.js'

interface DistributionFile {
  artifacts: Record<string, { kind: string; descriptor?: unknown }>
  config: Record<string, unknown>
}

let root: string
/** Built with the defaults (failureRate 0.1, delayMs 150). */
let built: Record<EducaVersion, string>
/** Built with failureRate 0.25 and delayMs 300. */
let tuned: Record<EducaVersion, string>
const children: ChildProcess[] = []
let runs = 0

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'educa-samples-'))
  built = await buildEduca(join(root, 'default'))
  tuned = await buildEduca(join(root, 'tuned'), { failureRate: 0.25, delayMs: 300 })
})

afterAll(async () => {
  for (const child of children) if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
  await rm(root, { recursive: true, force: true })
})

const readDistribution = async (dist: string): Promise<DistributionFile> =>
  JSON.parse(await readFile(join(dist, 'distribution.json'), 'utf8'))

async function entries(file: string): Promise<string[]> {
  const names: string[] = []
  await tar.t({ file, onReadEntry: (entry) => names.push(entry.path) })
  return names.sort()
}

interface Web {
  url: string
  child: ChildProcess
  exit: Promise<number | null>
  stderr(): string
}

/**
 * Unpacks the web component of `dist` and starts it as the agent does: its
 * descriptor's entry point, with the distribution's config in SHOAL_CONFIG
 * (`config` replaces it when given; null leaves SHOAL_CONFIG unset).
 */
async function startWeb(
  dist: string,
  version: string,
  config?: Record<string, unknown> | null,
): Promise<Web> {
  const distribution = await readDistribution(dist)
  const descriptor = parseDescriptor('web.tgz', distribution.artifacts['web.tgz']!.descriptor)
  if (!('node' in descriptor.start)) throw new Error('web is not a node component')
  const dir = join(root, 'run', String(runs++))
  await mkdir(dir, { recursive: true })
  await tar.x({ file: join(dist, 'web.tgz'), cwd: dir })
  const port = await freePort()
  const shoalConfig = config === undefined ? distribution.config : config
  const child = spawn(process.execPath, [join(dir, descriptor.start.node)], {
    cwd: dir,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      SHOAL_NODE_ID: 'node-a',
      SHOAL_COMPONENT: 'web',
      SHOAL_VERSION: version,
      SHOAL_DISTRIBUTION: `educa@${version}`,
      SHOAL_CONFIG_DIR: dist,
      ...(shoalConfig === null ? {} : { SHOAL_CONFIG: JSON.stringify(shoalConfig) }),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr += chunk
  })
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  const url = `http://127.0.0.1:${port}`
  await waitFor(
    `web ${version} to answer /healthz`,
    async () => (await get(`${url}/healthz`)).status === 200,
    {
      timeout: 30_000,
    },
  )
  return { url, child, exit, stderr: () => stderr }
}

async function get(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = performance.now()
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
  const body = (await res.json()) as Record<string, unknown>
  return { status: res.status, body, ms: performance.now() - started }
}

/** The 1-based numbers of the requests, out of `count` sequential GETs of `url`, that answered 500. */
async function failures(url: string, count: number, between?: () => Promise<void>): Promise<number[]> {
  const failed: number[] = []
  for (let i = 1; i <= count; i++) {
    const { status, body } = await get(url)
    if (status === 500) {
      expect(body.error).toBe('injected failure')
      failed.push(i)
    } else {
      expect(status).toBe(200)
    }
    await between?.()
  }
  return failed
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function timings(url: string, count: number): Promise<number[]> {
  const ms: number[] = []
  for (let i = 0; i < count; i++) {
    const answer = await get(url)
    expect(answer.status).toBe(200)
    ms.push(answer.ms)
  }
  return ms
}

async function stop(web: Web): Promise<void> {
  web.child.kill('SIGTERM')
  expect(await web.exit, web.stderr()).toBe(0)
}

describe('educa bad versions', () => {
  it('builds 1.2 and 1.2-slow beside 1.0 and 1.1, with their config in distribution.json', async () => {
    expect(Object.keys(built)).toEqual([...EDUCA_VERSIONS])
    expect(EDUCA_VERSIONS).toEqual(['1.0', '1.1', '1.2', '1.2-slow'])
    for (const version of EDUCA_VERSIONS) {
      const dist = await readDistribution(built[version])
      for (const [name, artifact] of Object.entries(dist.artifacts)) {
        if (artifact.kind === 'component') expect(parseDescriptor(name, artifact.descriptor).http).toBe(true)
      }
      const web = parseDescriptor('web.tgz', dist.artifacts['web.tgz']!.descriptor)
      const bad = version.startsWith('1.2')
      expect(web.start).toEqual({ node: bad ? 'faults.mjs' : 'server.mjs', args: [] })
      expect(await entries(join(built[version], 'web.tgz'))).toEqual(
        bad ? ['faults.mjs', 'release.json', 'server.mjs'] : ['release.json', 'server.mjs'],
      )
      expect(await entries(join(built[version], 'catalog.tgz'))).toEqual(['release.json', 'server.mjs'])
    }
    expect((await readDistribution(built['1.0'])).config).toEqual({ greeting: 'Welcome to Educa 1.0' })
    expect((await readDistribution(built['1.2'])).config).toEqual({
      greeting: 'Welcome to Educa 1.2',
      failureRate: 0.1,
    })
    expect((await readDistribution(built['1.2-slow'])).config).toEqual({
      greeting: 'Welcome to Educa 1.2 (slow)',
      delayMs: 150,
    })
    expect((await readDistribution(tuned['1.2'])).config.failureRate).toBe(0.25)
    expect((await readDistribution(tuned['1.2-slow'])).config.delayMs).toBe(300)
    // The options only change the bad versions.
    for (const version of ['1.0', '1.1'] as const) {
      for (const file of ['distribution.json', 'web.tgz', 'catalog.tgz']) {
        const a = await readFile(join(built[version], file))
        const b = await readFile(join(tuned[version], file))
        expect(a.equals(b), `${version}/${file}`).toBe(true)
      }
    }
    await expect(buildEduca(join(root, 'bad'), { failureRate: 1.5 })).rejects.toThrow(/failureRate/)
    await expect(buildEduca(join(root, 'bad'), { delayMs: -1 })).rejects.toThrow(/delayMs/)
  })

  it('1.2 answers every 10th real request with 500 and keeps /healthz and /admin/health right', async () => {
    const web = await startWeb(built['1.2'], '1.2')
    const page = await get(`${web.url}/`)
    expect(page).toMatchObject({
      status: 200,
      body: { app: 'educa', version: '1.2', greeting: 'Welcome to Educa 1.2', theme: 'ocean' },
    })
    // Health checks between the requests neither fail nor count.
    let checks = 0
    const healthz = async () => {
      expect((await get(`${web.url}/healthz`)).status).toBe(200)
      checks++
    }
    // The page above was real request 1; 99 more make 100.
    const failed = await failures(`${web.url}/`, 99, healthz)
    expect(checks).toBe(99)
    expect(failed.map((i) => i + 1)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    // Other routes are real traffic too: 101-109 pass, 110 fails.
    const slow = await failures(`${web.url}/slow?ms=1`, 10)
    expect(slow).toEqual([10])
    // The operators' switch still works, and is not counted either.
    expect((await get(`${web.url}/admin/health?ok=false`, { method: 'POST' })).status).toBe(200)
    expect((await get(`${web.url}/healthz`)).status).toBe(503)
    expect((await get(`${web.url}/admin/health?ok=true`, { method: 'POST' })).status).toBe(200)
    expect((await get(`${web.url}/healthz`)).status).toBe(200)
    expect(await failures(`${web.url}/`, 10)).toEqual([10])
    await stop(web)
  })

  it('1.2 takes its share from config.failureRate, and falls back to 10 % without a usable one', async () => {
    const [quarter, missing, broken, none] = await Promise.all([
      startWeb(tuned['1.2'], '1.2'),
      startWeb(built['1.2'], '1.2', null),
      startWeb(built['1.2'], '1.2', { failureRate: 'lots' }),
      startWeb(built['1.2'], '1.2', { failureRate: 0 }),
    ])
    const [q, m, b, n] = await Promise.all(
      [quarter, missing, broken, none].map((web) => failures(`${web.url}/`, 100)),
    )
    expect(q).toHaveLength(25)
    expect(q!.slice(0, 3)).toEqual([4, 8, 12])
    expect(m).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    expect(b).toEqual(m)
    expect(broken.stderr()).toContain('ignoring config.failureRate="lots"')
    expect(n).toEqual([])
    await Promise.all([quarter, missing, broken, none].map(stop))
  })

  it('1.2-slow answers every real request, at least 100 ms later than 1.0; /healthz stays fast', async () => {
    const [good, slow, slower] = await Promise.all([
      startWeb(built['1.0'], '1.0'),
      startWeb(built['1.2-slow'], '1.2-slow'),
      startWeb(tuned['1.2-slow'], '1.2-slow'),
    ])
    const [goodMs, slowMs, healthMs] = [
      await timings(`${good.url}/`, 7),
      await timings(`${slow.url}/`, 7),
      await timings(`${slow.url}/healthz`, 7),
    ]
    for (const ms of slowMs) expect(ms).toBeGreaterThanOrEqual(145)
    expect(median(slowMs) - median(goodMs)).toBeGreaterThanOrEqual(100)
    expect(median(slowMs) - median(healthMs)).toBeGreaterThanOrEqual(100)
    expect((await get(`${slow.url}/`)).body).toMatchObject({ version: '1.2-slow', theme: 'ocean' })
    expect(await failures(`${slow.url}/`, 5)).toEqual([])
    for (const ms of await timings(`${slower.url}/`, 3)) expect(ms).toBeGreaterThanOrEqual(295)
    await Promise.all([good, slow, slower].map(stop))
  })

  it('1.0 never fails and is never slowed, whatever its config says', async () => {
    const web = await startWeb(built['1.0'], '1.0', { greeting: 'hi', failureRate: 1, delayMs: 60_000 })
    const started = performance.now()
    expect(await failures(`${web.url}/`, 100)).toEqual([])
    // 100 requests delayed by a minute each would take 100 minutes.
    expect(performance.now() - started).toBeLessThan(60_000)
    expect((await get(`${web.url}/`)).body).toMatchObject({ version: '1.0', greeting: 'hi' })
    await stop(web)
  })
})
