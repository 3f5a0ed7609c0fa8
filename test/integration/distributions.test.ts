import { open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

const CHUNK = 64 * 1024

describe('distributions travel peer to peer', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  async function setup(files: Record<string, number> = { 'web.bin': 600_000, 'conf/app.json': 200 }) {
    cluster = new TestCluster()
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const content = await makeDistributionDir(join(dir, 'educa-1.0'), files, {
      artifacts: { 'web.bin': { kind: 'resource' }, 'conf/app.json': { kind: 'config' } },
      config: { greeting: 'hello' },
    })
    return { dir, keys, content }
  }

  const publishTo = (agent: Agent, content: string, key: string, version = '1.0') =>
    publish(new ApiClient(agent.apiUrl), {
      dir: content,
      name: 'educa',
      version,
      keyFile: key,
      chunkSize: CHUNK,
      progress: false,
    })

  const complete = (agents: Agent[], id: string) =>
    waitFor(
      `${id} complete on ${agents.length} agents`,
      () => agents.every((a) => a.artifacts.distributor.isComplete(id)),
      {
        timeout: 60_000,
      },
    )

  it('reaches every node from the one it was published to, late joiners fetch from several peers', async () => {
    const { keys, content } = await setup()
    const agents = await cluster.startMany(4, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    const published = await publishTo(agents[0]!, content, keys.key)
    expect(published.result).toBe('added')
    await complete(agents, 'educa@1.0')
    for (const agent of agents) expect(await agent.artifacts.store.verifyAll()).toMatchObject({ corrupt: [] })

    const late = await cluster.start({ trust: [keys.pub] })
    await complete([late], 'educa@1.0')
    const sources = late.artifacts.distributor.detail('educa@1.0').sources
    expect(Object.keys(sources).length).toBeGreaterThan(1)
    expect(Object.values(sources).reduce((a, b) => a + b, 0)).toBe(600_200)

    // With the publisher gone, a node joining through another still gets everything.
    await agents[0]!.stop({ leave: true })
    const later = await cluster.start({
      trust: [keys.pub],
      bootstrap: [agents[1]!.membership.self.addrs[0]!],
    })
    await complete([later], 'educa@1.0')
    expect(later.api.distributions.list()).toMatchObject([
      { id: 'educa@1.0', complete: true, artifacts: 2, bytes: 600_200 },
    ])
  })

  it('detects a peer serving corrupt chunks, penalises it and completes from another peer', async () => {
    const { keys, content } = await setup({ 'web.bin': 640 * 1024, 'conf/app.json': 100 })
    // The honest publisher uploads slowly, so the fresh node's fetch lasts long enough
    // to learn of the liar and ask it for chunks, whichever holder it hears of first.
    const publisher = await cluster.start({ trust: [keys.pub], artifacts: { uploadRate: 256 * 1024 } })
    const agents = [publisher, await cluster.start({ trust: [keys.pub] })]
    await cluster.waitForConvergence(agents)
    await publishTo(publisher, content, keys.key)
    await complete(agents, 'educa@1.0')
    // Agent 1 keeps advertising the blob, but its bytes on disk rot (same size: only a re-hash would tell).
    const liar = agents[1]!
    const web = liar.artifacts.distributor
      .detail('educa@1.0')
      .manifest.manifest.artifacts.find((a) => a.name === 'web.bin')!
    const file = await open(liar.artifacts.store.pathOf(web.sha256), 'r+')
    for (let offset = 0; offset < web.size; offset += CHUNK)
      await file.write(Buffer.from('rot'), 0, 3, offset + 10)
    await file.close()

    const fresh = await cluster.start({ trust: [keys.pub] })
    await complete([fresh], 'educa@1.0')
    const stats = fresh.artifacts.distributor.stats()
    expect(stats.badChunks).toBeGreaterThan(0)
    expect(stats.penalised.map((p) => p.peer)).toContain(liar.id)
    expect(await fresh.artifacts.store.verifyAll()).toMatchObject({ corrupt: [] })
  })

  it('refuses forged, untrusted, unsigned, malformed, escaping and oversized input and changes nothing', async () => {
    const { dir, keys, content } = await setup()
    const agent = await cluster.start({ trust: [keys.pub], artifacts: { maxArtifactBytes: 1_000_000 } })
    const client = new ApiClient(agent.apiUrl)
    await publishTo(agent, content, keys.key)
    const before = JSON.stringify(agent.api.distributions.list())
    const blobs = agent.artifacts.store.list().length
    const signed = agent.artifacts.distributor.detail('educa@1.0').manifest
    const post = (body: unknown) =>
      client.post('/api/distributions', { json: body }).then(
        () => 'accepted',
        (e) => e.code,
      )

    const forged = structuredClone(signed)
    forged.manifest.version = '6.6.6'
    expect(await post(forged)).toBe('ERR_MANIFEST_SIGNATURE')
    expect(await post({ manifest: { ...signed.manifest, version: '2.0' } })).toBe('ERR_MANIFEST_SIGNATURE')
    const stranger = await makeKey(dir, 'stranger.key')
    const other = await publish(client, {
      dir: content,
      name: 'educa',
      version: '3.0',
      keyFile: stranger.key,
      progress: false,
    }).catch((e) => e.code)
    expect(other).toBe('ERR_MANIFEST_SIGNATURE')
    expect(await post({ manifest: { name: 'educa' }, signature: 'AAAA' })).toBe('ERR_MANIFEST_INVALID')
    expect(await post('not even an object')).toBe('ERR_MANIFEST_INVALID')
    const escaping = structuredClone(signed)
    escaping.manifest.artifacts[0]!.name = '../../etc/passwd'
    expect(await post(escaping)).toBe('ERR_MANIFEST_INVALID')

    const big = await makeDistributionDir(join(dir, 'big'), { 'huge.bin': 1_200_000 })
    const tooBig = await publish(client, {
      dir: big,
      name: 'educa',
      version: '4.0',
      keyFile: keys.key,
      progress: false,
    }).catch((e) => e.code)
    expect(tooBig).toBe('ERR_ARTIFACT_TOO_LARGE')
    const raw = await fetch(`${agent.apiUrl}/api/artifacts?sha256=${'0'.repeat(64)}`, {
      method: 'POST',
      body: 'abc',
    })
    expect(await raw.json()).toMatchObject({ error: { code: 'ERR_ARTIFACT_CORRUPT' } })

    expect(JSON.stringify(agent.api.distributions.list())).toBe(before)
    expect(agent.artifacts.store.list()).toHaveLength(blobs)
    expect(await agent.artifacts.store.verifyAll()).toMatchObject({ corrupt: [] })
  })

  it('refuses to publish a version again with other content, and keeps history in order', async () => {
    const { dir, keys, content } = await setup()
    const agents = await cluster.startMany(2, { trust: [keys.pub] })
    await cluster.waitForConvergence(agents)
    await publishTo(agents[0]!, content, keys.key, '1.0')
    expect((await publishTo(agents[1]!, content, keys.key, '1.0').catch((e) => e)).result).toBe('same')
    await writeFile(join(content, 'conf/app.json'), '{"changed":true}')
    expect(await publishTo(agents[0]!, content, keys.key, '1.0').catch((e) => e.code)).toBe(
      'ERR_VERSION_EXISTS',
    )
    await publishTo(agents[0]!, content, keys.key, '1.1')
    const v2 = await makeDistributionDir(join(dir, 'v2'), { 'web.bin': 1000 })
    await publishTo(agents[1]!, v2, keys.key, '2.0')
    await complete(agents, 'educa@2.0')
    await complete(agents, 'educa@1.1')
    const history = agents[1]!.api.distributions.history('educa') as Array<{
      version: string
      supersedes: string | null
    }>
    expect(history.map((h) => h.version)).toEqual(['1.0', '1.1', '2.0'])
    expect(history.map((h) => h.supersedes)).toEqual([null, '1.0', '1.1'])
  })

  it('keeps the newest versions per the retention policy and drops the blobs nobody references', async () => {
    const { dir, keys } = await setup()
    const agent = await cluster.start({ trust: [keys.pub], artifacts: { retention: 2 } })
    for (const version of ['1', '2', '3']) {
      const folder = await makeDistributionDir(join(dir, `r${version}`), { 'only.bin': 1000 })
      await publishTo(agent, folder, keys.key, version)
    }
    expect(agent.api.distributions.history('educa').map((h) => (h as { version: string }).version)).toEqual([
      '2',
      '3',
    ])
    expect(agent.artifacts.store.list()).toHaveLength(2)
  })

  it('resumes a download interrupted by a stop from the chunks already on disk', async () => {
    const { keys, content } = await setup({ 'web.bin': 1_600_000, 'conf/app.json': 100 })
    const seed = await cluster.start({ trust: [keys.pub] })
    await publishTo(seed, content, keys.key)
    const slow = await cluster.start({
      trust: [keys.pub],
      artifacts: { downloadRate: 400_000, parallelChunks: 2 },
    })
    const progress = () =>
      (slow.api.distributions.list()[0] as { progress?: { chunks: number } } | undefined)?.progress?.chunks ??
      0
    await waitFor('some chunks on disk', () => progress() >= 5, { timeout: 60_000 })
    const dataDir = slow.config.dataDir
    await slow.stop({ leave: false })
    cluster.agents.splice(cluster.agents.indexOf(slow), 1)
    const total = Math.ceil(1_600_000 / CHUNK) + 1
    const again = await cluster.start({ trust: [keys.pub], dataDir })
    await complete([again], 'educa@1.0')
    expect(again.artifacts.distributor.stats().chunksFetched).toBeLessThanOrEqual(total - 5)
    expect(await again.artifacts.store.verifyAll()).toMatchObject({ corrupt: [] })
  })
})
