import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { PublishResult } from '../../src/artifacts/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The dashboard's publish form (`POST /api/publish`) on real agents: the agent
 * publishes in-process with the library `shoal publish` uses (src/artifacts/publisher.ts),
 * so the same rules refuse the same mistakes before anything is stored, the same
 * release gives the same version, and the agent makes no HTTP request to itself.
 */
describe('the publish form', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  const form = (key: Buffer, version: string, files: Record<string, string>) => {
    const body = new FormData()
    body.set('name', 'site')
    body.set('version', version)
    body.set('key', new Blob([key]), 'publisher.key')
    for (const [name, text] of Object.entries(files)) body.append('file', new Blob([text]), name)
    return body
  }

  it('applies the rules of shoal publish before storing anything, publishes what the CLI would, and never calls its own API', async () => {
    const dir = await cluster.dataDir()
    const keys = await makeKey(dir)
    const key = await readFile(keys.key)
    const [agent, peer] = await cluster.startMany(2, { trust: [keys.pub] })
    await cluster.waitForConvergence([agent!, peer!])
    const post = async (body: FormData) => {
      const response = await fetch(`${agent!.apiUrl}/api/publish`, { method: 'POST', body })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    const release = {
      'index.html': '<h1>hello</h1>\n',
      'conf/site.json': '{"title":"hello"}\n',
      'distribution.json': JSON.stringify({
        artifacts: { 'conf/site.json': { kind: 'config' } },
        config: { greeting: 'hello' },
      }),
    }

    // A placement typo: refused with the CLI's code and message, before any blob is stored.
    const refused = await post(
      form(key, '1.0', {
        ...release,
        'distribution.json': JSON.stringify({ artifacts: {}, placement: { wbe: 'all' } }),
      }),
    )
    expect(refused).toMatchObject({
      status: 400,
      body: { error: { code: 'ERR_MANIFEST_INVALID', message: expect.stringContaining('placement.wbe') } },
    })
    expect(agent!.artifacts.store.list()).toEqual([])
    expect(agent!.artifacts.catalogue.list()).toEqual([])

    const published = await post(form(key, '1.0', release))
    expect(published).toMatchObject({
      status: 201,
      body: { result: 'added', distribution: { id: 'site@1.0', artifacts: 2 }, uploaded: { artifacts: 2 } },
    })
    // Its peers fetch it as any published version.
    await waitFor('the peer to hold site@1.0', () => peer!.artifacts.distributor.isComplete('site@1.0'))

    // The agent's audit trail holds the form's request only: no upload or publish request to itself.
    const audit = await new ApiClient(agent!.apiUrl).get<Array<{ method: string; path: string }>>(
      '/api/audit',
    )
    expect(audit.map((e) => `${e.method} ${e.path}`)).toEqual(['POST /api/publish', 'POST /api/publish'])

    // The same release through the CLI is the same version: nothing new to upload, nothing changed.
    const folder = join(dir, 'site')
    for (const [name, text] of Object.entries(release)) {
      await mkdir(join(folder, name, '..'), { recursive: true })
      await writeFile(join(folder, name), text)
    }
    const again: PublishResult = await publish(new ApiClient(peer!.apiUrl), {
      dir: folder,
      name: 'site',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    expect(again).toMatchObject({ result: 'same', uploaded: { artifacts: 0, bytes: 0 } })
  })
})
