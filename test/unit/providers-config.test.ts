import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadProviders } from '../../src/providers/index.js'
import { createLogger } from '../../src/shared/logger.js'

const log = createLogger({ level: 'silent' })

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
      ec2: { region: 'eu-west-1', imageId: 'ami-123', instanceType: 't3.small', shoalVersion: '0.1.0' },
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
})
