import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadTokens, MIN_TOKEN_LENGTH, ROLES } from '../../src/api/auth.js'
import { loadProviders } from '../../src/providers/config.js'
import { silentLogger } from '../../src/shared/logger.js'
import {
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  type Json,
  mutatedBytes,
  outcomeAsync,
  randomBytes,
  utf8,
} from './harness.js'

/**
 * Files an operator writes: the API tokens file (`--tokens`, src/api/auth.ts) and
 * the providers file (`--providers`, src/providers/config.ts). Whatever a file
 * holds: the agent refuses it at start with ERR_CONFIG naming the problem, never
 * with a stack trace, or it accepts exactly what the docs allow.
 */
const target = new FuzzTarget('config')
const CODES = ['ERR_CONFIG']

const tokens: Json = {
  tokens: [
    { token: 'admin-token-0123456789abcdef', role: 'admin', name: 'alice' },
    { token: 'viewer-token-0123456789abcdef', role: 'viewer', name: 'vic' },
  ],
}
const providers: Json = {
  default: 'static',
  static: {
    hosts: [
      {
        host: '10.0.0.7',
        port: 22,
        user: 'shoal',
        identityFile: '/etc/shoal/id_ed25519',
        address: '10.0.0.7',
      },
    ],
    shoalCommand: ['npx', 'shoal'],
    dataDir: '~/.shoal-node',
    startTimeoutMs: 60_000,
    stopTimeoutMs: 30_000,
  },
  ec2: {
    region: 'eu-west-1',
    endpoint: 'http://127.0.0.1:4566',
    imageId: 'ami-123',
    instanceType: 't3.small',
    securityGroupIds: ['sg-1'],
    shoalVersion: '0.1.0',
    releaseUrl: 'http://10.0.1.5:7070',
    pollMs: 2000,
  },
}

/** File contents: mutated valid ones, random bytes and text, a BOM, invalid UTF-8. */
const contents = (valid: Json) =>
  fc.oneof(
    { weight: 6, arbitrary: mutatedBytes(valid) },
    { weight: 2, arbitrary: randomBytes },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        new Uint8Array(),
        utf8(`\ufeff${JSON.stringify(valid)}`),
        Uint8Array.from([0xc3, 0x28, 0xa0, 0xa1]),
        utf8('null'),
        utf8('[]'),
      ),
    },
  )

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-fuzz-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('config fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('loadTokens: a tokens file is refused with ERR_CONFIG or gives each listed token its role', async () => {
    const file = join(dir, 'tokens.json')
    await target.check(
      fc.asyncProperty(contents(tokens), async (bytes) => {
        await writeFile(file, bytes)
        const result = await outcomeAsync(() => loadTokens(file), CODES)
        target.tally(result == null ? 'tokens refused' : 'tokens accepted')
        if (result == null) return
        const listed = JSON.parse(new TextDecoder().decode(bytes)) as {
          tokens: Array<{ token: string; role: string; name: string }>
        }
        for (const entry of listed.tokens) {
          expect(entry.token.length).toBeGreaterThanOrEqual(MIN_TOKEN_LENGTH)
          expect(ROLES).toContain(entry.role)
          expect(result.value.lookup(entry.token)).toEqual({ name: entry.name, role: entry.role })
        }
        expect(result.value.lookup('not-a-listed-token-at-all')).toBeNull()
      }),
    )
  })

  it('loadProviders: a providers file is refused with ERR_CONFIG or configures a default it has', async () => {
    const file = join(dir, 'providers.json')
    await target.check(
      fc.asyncProperty(contents(providers), async (bytes) => {
        await writeFile(file, bytes)
        const result = await outcomeAsync(() => loadProviders(file, '12D3KooWfuzz', silentLogger), CODES)
        target.tally(result == null ? 'providers refused' : 'providers accepted')
        if (result == null) return
        const names = result.value.providers.map((p) => p.name)
        expect(['local', ...names]).toContain(result.value.defaultProvider)
        expect(new Set(names).size).toBe(names.length)
      }),
    )
  })
})
