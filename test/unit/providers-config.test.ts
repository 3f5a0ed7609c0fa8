import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadProviders } from '../../src/providers/index.js'
import { createLogger } from '../../src/shared/logger.js'
import { VERSION } from '../../src/shared/version.js'

const log = createLogger({ level: 'silent' })
const EC2 = { region: 'eu-west-1', imageId: 'ami-123', instanceType: 't3.small' }

describe('the --providers file', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-providers-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  const load = async (content: unknown) => {
    const file = join(dir, `p-${Math.random().toString(36).slice(2)}.json`)
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content))
    return loadProviders(file, '12D3KooWtest', log)
  }

  it('builds the static and ec2 providers it configures, with the default it names', async () => {
    const configured = await load({
      default: 'static',
      static: { hosts: [{ host: '10.0.0.7', user: 'shoal', identityFile: '/etc/shoal/id_ed25519' }] },
      ec2: { ...EC2, releaseUrl: 'http://10.0.1.5:7070' },
    })
    expect(configured.providers.map((p) => p.name).sort()).toEqual(['ec2', 'static'])
    expect(configured.defaultProvider).toBe('static')
  })

  it('defaults to the local provider and nothing else', async () => {
    expect(await load({})).toEqual({ providers: [], defaultProvider: 'local' })
  })

  it('refuses a malformed file, an unknown field, or a default that is not configured, naming the problem', async () => {
    await expect(load('{ not json')).rejects.toMatchObject({ code: 'ERR_CONFIG' })
    await expect(load({ static: { hosts: [] } })).rejects.toThrow(/static\.hosts/)
    await expect(
      load({ static: { hosts: [{ host: 'h', user: 'u', identityFile: 'k' }], bogus: 1 } }),
    ).rejects.toThrow(/static/)
    await expect(load({ default: 'ec2' })).rejects.toThrow(/default provider "ec2" is not configured/)
  })

  it('has ec2 instances install the release this agent serves at releaseUrl, or npmPackage', async () => {
    const configured = await load({
      ec2: { ...EC2, releaseUrl: 'http://10.0.1.5:7070', releaseUrlTtlMs: 120_000 },
    })
    expect(configured.providers[0]?.releases).toBeDefined()
    const npm = await load({ ec2: { ...EC2, npmPackage: 'shoal@0.1.0', shoalVersion: '0.1.0' } })
    expect(npm.providers[0]?.releases).toBeUndefined()
    await expect(load({ ec2: EC2 })).rejects.toThrow(
      /ec2\.releaseUrl: set it to this agent's API .* or set ec2\.npmPackage/,
    )
    for (const url of [
      'http://127.0.0.1:7070',
      'http://localhost:7070',
      'http://[::1]:7070',
      'http://0.0.0.0:7070',
    ])
      await expect(load({ ec2: { ...EC2, releaseUrl: url } })).rejects.toThrow(/cannot reach/)
    await expect(load({ ec2: { ...EC2, releaseUrl: 'ftp://10.0.1.5/' } })).rejects.toThrow(/ec2\.releaseUrl/)
    await expect(
      load({ ec2: { ...EC2, releaseUrl: 'http://10.0.1.5:7070', releaseUrlTtlMs: 1000 } }),
    ).rejects.toThrow(/releaseUrlTtlMs/)
    await expect(
      load({ ec2: { ...EC2, releaseUrl: 'http://10.0.1.5:7070', shoalVersion: '99.0.0' } }),
    ).rejects.toThrow(
      new RegExp(`shoalVersion is 99\\.0\\.0 but this agent runs Shoal ${VERSION.replaceAll('.', '\\.')}`),
    )
  })
})
