import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/shared/ports.js'
import { makeDistributionDir } from '../helpers/distribution.js'
import { type AgentProcess, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

interface DistributionJson {
  id: string
  complete: boolean
  progress: { chunks: number; total: number }
}

describe('publishing through the CLI to agent processes', () => {
  let dir: string
  let seedPort: number
  const agents: AgentProcess[] = []
  const list = async (api: string): Promise<DistributionJson[]> =>
    JSON.parse((await runCli(['distributions', '--json', '--api', api])).stdout)

  const startAgent = async (name: string, extra: string[] = []) => {
    const args = [
      '--cluster',
      'e2e-dist',
      '--data',
      join(dir, name),
      '--listen',
      `/ip4/127.0.0.1/tcp/${name === 'a' ? seedPort : 0}`,
    ]
    args.push(
      '--api',
      `127.0.0.1:${await freePort()}`,
      '--no-mdns',
      '--preset',
      'test',
      '--trust',
      join(dir, 'pub.key.pub'),
    )
    if (name !== 'a') args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${seedPort}`)
    const agent = await spawnAgent([...args, ...extra], dir)
    agents.push(agent)
    return agent
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-dist-'))
    seedPort = await freePort()
    expect((await runCli(['key', 'new', join(dir, 'pub.key')])).code).toBe(0)
    await makeDistributionDir(
      join(dir, 'educa'),
      { 'web.bin': 3_000_000, 'app.json': 100 },
      {
        artifacts: { 'app.json': { kind: 'config' } },
      },
    )
  })

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.stop('SIGKILL')))
    if (process.env.SHOAL_KEEP_TEST_DIRS == null) await rm(dir, { recursive: true, force: true })
  })

  it('an agent killed -9 mid-download resumes after restart and ends with a verified store', async () => {
    const a = await startAgent('a')
    const published = await runCli([
      'publish',
      join(dir, 'educa'),
      '--name',
      'educa',
      '--version',
      '1.0',
      '--key',
      join(dir, 'pub.key'),
      '--chunk-size',
      '64k',
      '--api',
      a.info.api,
    ])
    expect(published.code, published.stderr).toBe(0)
    expect(published.stdout).toContain('published educa@1.0')

    const b = await startAgent('b', ['--download-rate', '600k'])
    await waitFor(
      'a partial download on b',
      async () => {
        const d = (await list(b.info.api))[0]
        return d != null && !d.complete && d.progress.chunks >= 4
      },
      { timeout: 20_000 },
    )
    await b.stop('SIGKILL')

    const again = await startAgent('b')
    expect(again.info.id).toBe(b.info.id)
    await waitFor(
      'b complete after restart',
      async () => (await list(again.info.api))[0]?.complete === true,
      { timeout: 20_000 },
    )
    const verify = await runCli(['verify', '--api', again.info.api, '--json'])
    expect(verify.code).toBe(0)
    expect(JSON.parse(verify.stdout)).toEqual({ checked: 2, corrupt: [] })

    const history = await runCli(['history', 'educa', '--api', again.info.api])
    expect(history.stdout).toMatch(/educa@1\.0\s+yes\s+2\s+3000100\s+2/)
  })

  it('refuses a manifest from an untrusted key with a clear message and a non-zero exit', async () => {
    expect((await runCli(['key', 'new', join(dir, 'stranger.key')])).code).toBe(0)
    const result = await runCli([
      'publish',
      join(dir, 'educa'),
      '--name',
      'educa',
      '--version',
      '9.9',
      '--key',
      join(dir, 'stranger.key'),
      '--api',
      agents[0]!.info.api,
    ])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('ERR_MANIFEST_SIGNATURE')
    expect(result.stderr).toContain('does not trust')
  })

  it('refuses a broken distribution.json before uploading, and unpublishes a version never rolled out (not one in use)', async () => {
    const [a, b] = [agents[0]!.info.api, agents.at(-1)!.info.api]
    const publishCli = (folder: string, version: string, api: string) =>
      runCli([
        'publish',
        folder,
        '--name',
        'educa',
        '--version',
        version,
        '--key',
        join(dir, 'pub.key'),
        '--api',
        api,
        '--json',
      ])
    const held = async (api: string) => (await list(api)).map((d) => d.id)

    // A descriptor on a file not marked as a component (its "kind" forgotten): refused, nothing uploaded.
    const broken = await makeDistributionDir(
      join(dir, 'broken'),
      { 'web.tgz': 2000 },
      {
        artifacts: { 'web.tgz': { descriptor: { name: 'web', start: { node: 'main.mjs' } } } },
      },
    )
    const refused = await publishCli(broken, '3.0', a)
    expect(refused.code).toBe(1)
    expect(JSON.parse(refused.stderr)).toMatchObject({
      error: { code: 'ERR_MANIFEST_INVALID', message: expect.stringContaining('(web.tgz).descriptor') },
    })
    const sha = createHash('sha256')
      .update(await readFile(join(broken, 'web.tgz')))
      .digest('hex')
    expect((await fetch(`${a}/api/artifacts/${sha}`, { method: 'HEAD' })).status).toBe(404)
    expect(await held(a)).not.toContain('educa@3.0')

    // 2.0 is published and never rolled out: unpublished through the other agent, gone from both.
    const typo = await makeDistributionDir(join(dir, 'educa-2.0'), { 'notes.txt': 300 })
    expect((await publishCli(typo, '2.0', a)).code).toBe(0)
    await waitFor('b to hold educa@2.0', async () => (await held(b)).includes('educa@2.0'))
    const unpublished = await runCli(['unpublish', 'educa@2.0', '--api', b, '--json'])
    expect(unpublished.code, unpublished.stderr).toBe(0)
    expect(JSON.parse(unpublished.stdout)).toMatchObject({ result: 'unpublished', id: 'educa@2.0' })
    expect(await held(b)).toEqual(['educa@1.0'])
    await waitFor('a to drop educa@2.0', async () => !(await held(a)).includes('educa@2.0'))
    const again = await runCli(['unpublish', 'educa@2.0', '--api', a])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('educa@2.0 was already unpublished')
    const republished = await publishCli(typo, '2.0', a)
    expect(republished.code).toBe(4)
    expect(JSON.parse(republished.stderr)).toMatchObject({ error: { code: 'ERR_VERSION_UNPUBLISHED' } })

    // A version the cluster runs is kept, and the command says why.
    const rollout = await runCli(['rollout', 'educa@1.0', '--wait', '--timeout', '120', '--api', a, '--json'])
    expect(rollout.code, rollout.stderr).toBe(0)
    const inUse = await runCli(['unpublish', 'educa@1.0', '--api', b])
    expect(inUse.code).toBe(4)
    expect(inUse.stderr).toMatch(/educa@1\.0 is the version the cluster runs.*\(ERR_VERSION_IN_USE\)/)
    expect(await held(a)).toEqual(['educa@1.0'])

    const usage = await runCli(['unpublish', 'educa', '--api', a])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('is not NAME@VERSION')
  })
})
