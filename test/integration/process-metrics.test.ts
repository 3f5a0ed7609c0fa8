/**
 * Node's process metrics on an agent's FIRST scrape. They used to start at the
 * first `GET /metrics`, which then showed an event-loop lag min of
 * 9223372036.85 s, a mean of NaN and a few milliseconds of CPU for an agent that
 * had used seconds. A file of its own: process metrics are started once per
 * process, so only the first scrape in a fresh test process shows the bug.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'

/** `name value` samples without labels, as the text format writes them. */
function plainSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line)
    if (match != null) samples.set(match[1]!, /nan/i.test(match[2]!) ? Number.NaN : Number(match[2]))
  }
  return samples
}

/** Keeps the CPU busy and the event loop blocked for `ms`. */
function busy(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) Math.sqrt(Math.random())
}

describe('the first scrape of an agent', () => {
  const cluster = new TestCluster()
  let agent: Agent
  let dir: string
  let keys: { key: string; pub: string }

  beforeAll(async () => {
    dir = await cluster.dataDir()
    keys = await makeKey(dir)
    agent = await cluster.start({ trust: [keys.pub] })
  })
  afterAll(() => cluster.cleanup())

  it('shows the event loop and CPU since the agent started, not since the scrape', async () => {
    // Work before anyone scrapes: a publish, and the loop blocked for 300 ms.
    await publish(new ApiClient(agent.apiUrl), {
      dir: await makeComponentDistribution(join(dir, 'app'), {
        app: {
          files: { 'main.mjs': 'setInterval(() => {}, 1000)\n' },
          descriptor: { start: { node: 'main.mjs' } },
        },
      }),
      name: 'app',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    busy(300)
    await new Promise((resolve) => setImmediate(resolve))
    const usedBefore = process.cpuUsage()

    const response = await fetch(`${agent.apiUrl}/metrics`)
    expect(response.status).toBe(200)
    const text = await response.text()
    const samples = plainSamples(text)

    expect(text).not.toMatch(/ nan$/im)
    const lag = (name: string) => samples.get(`nodejs_eventloop_lag_${name}_seconds`)
    for (const name of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
      expect(lag(name), name).toBeGreaterThanOrEqual(0)
      expect(lag(name), name).toBeLessThan(60)
    }
    // The blocked loop was seen.
    expect(lag('max')).toBeGreaterThanOrEqual(0.25)
    // The process's CPU total, at least what it had used when the scrape was sent.
    expect(samples.get('process_cpu_seconds_total')).toBeGreaterThanOrEqual(
      (usedBefore.user + usedBefore.system) / 1e6 - 0.001,
    )
    expect(samples.get('process_cpu_seconds_total')).toBeGreaterThan(0.3)
  })
})
