/**
 * `GET /metrics` on agents and the load balancer's metrics, read as Prometheus
 * reads them: every line is checked against the text exposition format 0.0.4 by
 * a strict parser below (no lenient third-party parser handles labelled
 * histograms correctly), then the numbers are held against what the cluster did.
 */
import { writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { AdminServer, type Backend, HttpProxy } from '../../src/loadbalancer/index.js'
import type { RolloutView } from '../../src/manager/index.js'
import { MetricsServer, RateMeter } from '../../src/metrics/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

// --- a strict parser of the Prometheus text format --------------------------------

type Labels = Record<string, string>
interface Sample {
  name: string
  labels: Labels
  value: number
}
interface Family {
  type: string
  help: string
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
// Go's strconv.ParseFloat, which Prometheus uses: special values in any case (prom-client writes "Nan").
const FLOAT = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)$/i
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
}

function parseFloatStrict(text: string, line: string): number {
  if (!FLOAT.test(text)) throw new Error(`bad value in: ${line}`)
  if (/inf/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity
  return /nan/i.test(text) ? Number.NaN : Number(text)
}

/** `a="x",b="y\"z"` → labels; escapes \\ \" \n only, as the format allows. */
function parseLabels(text: string, line: string): Labels {
  const labels: Labels = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    const name = text.slice(i, eq).trim()
    if (eq < 0 || !LABEL_NAME.test(name) || text[eq + 1] !== '"') throw new Error(`bad label in: ${line}`)
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] !== '\\') {
        value += text[j]
        continue
      }
      const next = text[++j]
      if (next === 'n') value += '\n'
      else if (next === '\\' || next === '"') value += next
      else throw new Error(`bad escape in: ${line}`)
    }
    if (j >= text.length) throw new Error(`unterminated label value in: ${line}`)
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`)
    labels[name] = value
    i = j + 1
    if (i < text.length && text[i] !== ',') throw new Error(`bad label separator in: ${line}`)
    i++
  }
  return labels
}

/**
 * Every line must be a HELP, a TYPE, a comment or a sample; a family's TYPE comes
 * before its samples, once; a family's samples are not interleaved with another's;
 * no series appears twice; histograms have ordered, cumulative buckets ending in
 * +Inf equal to _count, and a _sum.
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const done = new Set<string>()
  const series = new Set<string>()
  let current: string | null = null
  const family = (name: string) => {
    let f = families.get(name)
    if (f == null) {
      f = { type: 'untyped', help: '', samples: [] }
      families.set(name, f)
    }
    return f
  }
  const enter = (name: string) => {
    if (current === name) return
    if (done.has(name)) throw new Error(`family ${name} interleaved with another`)
    if (current != null) done.add(current)
    current = name
  }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line)
    if (meta != null) {
      const [, kind, name, rest = ''] = meta
      if (!NAME.test(name!)) throw new Error(`bad metric name in: ${line}`)
      enter(name!)
      const f = family(name!)
      if (kind === 'TYPE') {
        if (f.samples.length > 0 || f.type !== 'untyped') throw new Error(`TYPE late or twice: ${line}`)
        if (!TYPES.has(rest.trim())) throw new Error(`unknown type in: ${line}`)
        f.type = rest.trim()
      } else f.help = rest
      continue
    }
    if (line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line)
    if (sample == null) throw new Error(`not a sample line: ${line}`)
    const [, name, labelText = '', valueText] = sample
    const labels = parseLabels(labelText, line)
    const value = parseFloatStrict(valueText!, line)
    const owner =
      [...families].find(([base, f]) =>
        (SUFFIXES[f.type] ?? ['']).some((suffix) => name === base + suffix),
      )?.[0] ?? name!
    enter(owner)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(key)) throw new Error(`series twice: ${line}`)
    series.add(key)
    family(owner).samples.push({ name: name!, labels, value })
  }
  for (const [name, f] of families) if (f.type === 'histogram') checkHistogram(name, f)
  return families
}

function checkHistogram(name: string, f: Family): void {
  const groups = new Map<string, Sample[]>()
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    groups.set(key, [...(groups.get(key) ?? []), s])
  }
  for (const [key, samples] of groups) {
    const buckets = samples
      .filter((s) => s.name === `${name}_bucket`)
      .map((s) => ({ le: parseFloatStrict(s.labels.le ?? 'x', `le of ${name}`), count: s.value }))
    const count = samples.find((s) => s.name === `${name}_count`)?.value
    const sum = samples.find((s) => s.name === `${name}_sum`)?.value
    if (count == null || sum == null) throw new Error(`${name}${key}: no _count or _sum`)
    if (buckets.at(-1)?.le !== Infinity || buckets.at(-1)?.count !== count)
      throw new Error(`${name}${key}: the last bucket must be +Inf and equal _count`)
    for (let i = 1; i < buckets.length; i++)
      if (buckets[i]!.le <= buckets[i - 1]!.le || buckets[i]!.count < buckets[i - 1]!.count)
        throw new Error(`${name}${key}: buckets not ordered and cumulative`)
  }
}

/** The value of the one sample of `name` whose labels include `labels`. */
function sampleValue(families: Map<string, Family>, name: string, labels: Labels = {}): number | undefined {
  const matches = [...families.values()]
    .flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (matches.length > 1)
    throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return matches[0]?.value
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseExposition(await res.text())
}

describe('the exposition parser used here', () => {
  it('refuses what Prometheus would refuse', () => {
    expect(() => parseExposition('foo bar\n')).toThrow(/bad value/)
    expect(() => parseExposition('foo{a="b" 1\n')).toThrow()
    expect(() => parseExposition('# TYPE foo gauge\nfoo 1\n# TYPE bar gauge\nbar 1\nfoo{x="1"} 2\n')).toThrow(
      /interleaved/,
    )
    expect(() =>
      parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'),
    ).toThrow(/cumulative|\+Inf/)
    const ok = parseExposition('# HELP c A "c".\n# TYPE c counter\nc{a="x\\"y",b="\\\\"} 1.5e3\n')
    expect(sampleValue(ok, 'c', { a: 'x"y', b: '\\' })).toBe(1500)
  })
})

describe('the transfer rate', () => {
  it('is the growth over the last window, and 0 once a transfer stalls', () => {
    const meter = new RateMeter(10_000)
    expect(meter.perSecond()).toBe(0)
    for (let t = 0; t <= 20_000; t += 1000) meter.sample(t < 15_000 ? t * 100 : 1_500_000, t)
    // From 10 s to 20 s: 1,000,000 → 1,500,000 bytes, then nothing.
    expect(meter.perSecond()).toBe(50_000)
    for (let t = 21_000; t <= 30_000; t += 1000) meter.sample(1_500_000, t)
    expect(meter.perSecond()).toBe(0)
  })
})

// --- agents -------------------------------------------------------------------------

/** A one-component HTTP app with a health check. */
function helloApp(dir: string): Promise<string> {
  const server = `
    import { createServer } from 'node:http'
    createServer((req, res) => res.end(req.url === '/health' ? '' : 'hello'))
      .listen(Number(process.env.PORT), process.env.HOST)
  `
  return makeComponentDistribution(join(dir, 'hello'), {
    hello: {
      files: { 'main.mjs': server },
      descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/health', intervalMs: 100 } },
    },
  })
}

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'

/**
 * Scrapes `url` every 100 ms until stopped and keeps the scrape with the highest
 * received transfer rate, with the received byte total of that same scrape. A rate
 * is a 10 s window that the scrape must fall in; watching the whole transfer, not
 * one scrape after it, keeps that from depending on how fast a loaded machine is.
 */
function watchReceivedRate(url: string) {
  const peak = { rate: 0, bytes: 0 }
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      try {
        const metrics = await scrape(url)
        const rate =
          sampleValue(metrics, 'shoal_transfer_rate_bytes_per_second', { direction: 'received' }) ?? 0
        if (rate > peak.rate) {
          peak.rate = rate
          peak.bytes = sampleValue(metrics, 'shoal_transfer_bytes_total', { direction: 'received' }) ?? 0
        }
      } catch {
        // A failed scrape is retried; the test asserts on what the others saw.
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  return {
    peak,
    stop: async () => {
      stopped = true
      await loop
    },
  }
}

describe('GET /metrics on an agent', () => {
  const cluster = new TestCluster()
  let agents: Agent[]
  let receivedRate: ReturnType<typeof watchReceivedRate> | undefined

  beforeAll(async () => {
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    // With API tokens, so the scrapes below show that /metrics needs none.
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin', name: 'ops' }] }),
    )
    agents = await cluster.startMany(3, { trust: [keys.pub], tokensFile })
    await cluster.waitForConvergence(agents)
    receivedRate = watchReceivedRate(`${agents[1]!.apiUrl}/metrics`)
    const api = new ApiClient(agents[0]!.apiUrl, ADMIN_TOKEN)
    await publish(api, {
      dir: await helloApp(dir),
      name: 'hello',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    const started = await api.post<RolloutView>('/api/rollouts', { json: { distribution: 'hello@1.0' } })
    // Done as every agent sees it (the state record reaches the others a moment after the
    // manager), and every runtime settled: what each agent's metrics then report.
    await waitFor(
      'the rollout to be done on every agent',
      async () => {
        const views = await Promise.all(
          agents.map((a) =>
            new ApiClient(a.apiUrl, ADMIN_TOKEN).get<RolloutView>(`/api/rollouts/${started.id}`),
          ),
        )
        return (
          views.every((v) => v.state === 'done') && agents.every((a) => a.runtime.status().phase === 'done')
        )
      },
      { timeout: 30_000, interval: 100 },
    )
    // The rate rises at the first sample after the chunks arrive and stays up for its window;
    // if it never does, the test below says so.
    const peak = receivedRate.peak
    await waitFor('agents[1] to report a received transfer rate', () => peak.rate > 0, {
      timeout: 30_000,
      interval: 100,
    })
      .catch(() => {})
      .finally(() => receivedRate?.stop())
  })

  afterAll(async () => {
    await receivedRate?.stop()
    await cluster.cleanup()
  })

  it('parses as Prometheus text, without a token, and counts what the cluster did', async () => {
    // agents[1] did not publish: it fetched every byte from its peers.
    const fetcher = agents[1]!
    expect((await fetch(`${fetcher.apiUrl}/api/status`)).status).toBe(401)
    const metrics = await scrape(`${fetcher.apiUrl}/metrics`)

    expect(metrics.get('shoal_members')?.type).toBe('gauge')
    expect(sampleValue(metrics, 'shoal_members', { state: 'alive' })).toBe(3)
    for (const state of ['suspect', 'dead', 'left'])
      expect(sampleValue(metrics, 'shoal_members', { state })).toBe(0)
    expect(sampleValue(metrics, 'shoal_agent_info', { id: fetcher.id, cluster: cluster.cluster })).toBe(1)

    for (const direction of ['sent', 'received']) {
      expect(metrics.get('shoal_wire_bytes_total')?.type).toBe('counter')
      expect(sampleValue(metrics, 'shoal_wire_bytes_total', { direction })).toBeGreaterThan(0)
      expect(sampleValue(metrics, 'shoal_gossip_messages_total', { direction })).toBeGreaterThan(0)
      expect(sampleValue(metrics, 'shoal_gossip_bytes_total', { direction })).toBeGreaterThan(0)
    }
    const gossip = fetcher.membership.stats()
    expect(sampleValue(metrics, 'shoal_gossip_bytes_total', { direction: 'received' })).toBeLessThanOrEqual(
      gossip.gossipBytesReceived,
    )

    const [hello] = fetcher.artifacts.distributor.list() as Array<{ bytes: number }>
    // Every byte of the version came from its peers.
    expect(
      sampleValue(metrics, 'shoal_transfer_bytes_total', { direction: 'received' }),
    ).toBeGreaterThanOrEqual(hello!.bytes)
    expect(sampleValue(metrics, 'shoal_transfer_chunks_total', { direction: 'received' })).toBeGreaterThan(0)
    // The download showed as a rate, in bytes per second: two samples are at least 1 s apart,
    // so no rate exceeds the bytes received so far (half a second of slack for the timers).
    expect(receivedRate!.peak.rate, 'the received transfer rate never rose above 0').toBeGreaterThan(0)
    expect(receivedRate!.peak.rate).toBeLessThanOrEqual(receivedRate!.peak.bytes / 0.5)
    expect(sampleValue(metrics, 'shoal_chunk_failures_total', { reason: 'corrupt' })).toBe(0)
    // The bytes came over the data plane: no chunk had to fall back to libp2p.
    expect(sampleValue(metrics, 'shoal_data_plane_fallbacks_total', {})).toBe(0)
    expect(sampleValue(metrics, 'shoal_data_plane_answers_total', { answer: 'busy' })).toBeGreaterThanOrEqual(
      0,
    )
    expect(sampleValue(metrics, 'shoal_distributions', { state: 'complete' })).toBe(1)

    expect(sampleValue(metrics, 'shoal_component_ready', { component: 'hello' })).toBe(1)
    expect(sampleValue(metrics, 'shoal_component_state', { component: 'hello', state: 'ready' })).toBe(1)
    expect(sampleValue(metrics, 'shoal_component_restarts_total', { component: 'hello' })).toBe(0)
    expect(sampleValue(metrics, 'shoal_runtime_info', { active: 'hello@1.0', phase: 'done' })).toBe(1)

    expect(sampleValue(metrics, 'shoal_rollouts', { state: 'done' })).toBe(1)
    expect(sampleValue(metrics, 'shoal_rollout_info', { distribution: 'hello@1.0', state: 'done' })).toBe(1)
    expect(sampleValue(metrics, 'shoal_rollout_nodes', { state: 'done' })).toBe(3)
    expect(sampleValue(metrics, 'shoal_rollout_nodes', { state: 'failed' })).toBe(0)

    // Node's process metrics come along.
    expect(metrics.get('process_cpu_user_seconds_total')?.type).toBe('counter')
  })

  it('shows one manager, and the same term, on every agent', async () => {
    const all = await Promise.all(agents.map((a) => scrape(`${a.apiUrl}/metrics`)))
    expect(all.map((m) => sampleValue(m, 'shoal_is_manager')).reduce((a, b) => a! + b!, 0)).toBe(1)
    const terms = new Set(all.map((m) => sampleValue(m, 'shoal_manager_term')))
    expect(terms.size).toBe(1)
    expect(all.every((m) => sampleValue(m, 'shoal_manager_quorum') === 1)).toBe(true)
  })
})

// --- the load balancer ---------------------------------------------------------------

describe('the load balancer metrics', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
  })

  async function backend(name: string): Promise<Backend> {
    const server: Server = createServer((_req, res) => res.end(name))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    })
    const port = (server.address() as AddressInfo).port
    const endpoint = `http://127.0.0.1:${port}`
    return {
      key: `${name}/web`,
      node: name,
      component: 'web',
      version: '1',
      endpoint,
      host: '127.0.0.1',
      port,
      state: 'ready',
      weight: 100,
    }
  }

  it('parses as Prometheus text, with a latency histogram per backend, on the admin listener and on its own', async () => {
    const a = await backend('a')
    const b = await backend('b')
    const proxy = new HttpProxy(
      {
        host: '127.0.0.1',
        port: 0,
        service: 'web',
        strategy: 'round-robin',
        ejectMs: 5000,
        connectTimeoutMs: 1000,
        requestTimeoutMs: 5000,
        maxRetries: 2,
      },
      silentLogger,
    )
    const { port } = await proxy.start()
    cleanups.push(() => proxy.stop())
    proxy.setBackends([a, b])
    for (let i = 0; i < 6; i++) expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200)

    const listener = new MetricsServer(
      { host: '127.0.0.1', port: 0, render: () => proxy.prometheus() },
      silentLogger,
    )
    const own = await listener.start()
    cleanups.push(() => listener.stop())
    const adminServer = new AdminServer(
      { host: '127.0.0.1', port: 0, authorize: null },
      { status: () => proxy.status(), prometheus: () => proxy.prometheus() },
      silentLogger,
    )
    const admin = `http://127.0.0.1:${(await adminServer.start()).port}`
    cleanups.push(() => adminServer.stop())

    for (const url of [
      `${admin}/metrics`,
      `${admin}/_shoal/metrics`,
      `http://127.0.0.1:${own.port}/metrics`,
    ]) {
      const metrics = await scrape(url)
      expect(sampleValue(metrics, 'shoal_lb_requests_total', { service: 'web' })).toBe(6)
      expect(metrics.get('shoal_lb_request_duration_seconds')?.type).toBe('histogram')
      for (const key of ['a/web', 'b/web']) {
        expect(sampleValue(metrics, 'shoal_lb_backend_requests_total', { backend: key })).toBe(3)
        expect(sampleValue(metrics, 'shoal_lb_backend_responses_total', { backend: key, code: '2xx' })).toBe(
          3,
        )
        expect(sampleValue(metrics, 'shoal_lb_backend_up', { backend: key, state: 'ready' })).toBe(1)
        expect(sampleValue(metrics, 'shoal_lb_request_duration_seconds_count', { backend: key })).toBe(3)
        expect(
          sampleValue(metrics, 'shoal_lb_request_duration_seconds_sum', { backend: key }),
        ).toBeGreaterThan(0)
      }
    }
    expect((await fetch(`http://127.0.0.1:${own.port}/other`)).status).toBe(404)

    // A backend that leaves takes its series with it.
    proxy.setBackends([a])
    const after = await scrape(`${admin}/metrics`)
    expect(
      sampleValue(after, 'shoal_lb_request_duration_seconds_count', { backend: 'b/web' }),
    ).toBeUndefined()
    expect(sampleValue(after, 'shoal_lb_request_duration_seconds_count', { backend: 'a/web' })).toBe(3)
  })
})
