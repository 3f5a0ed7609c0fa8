import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadTokens, tokensFileProblems } from '../../src/api/auth.js'

const GOOD = { token: 'admin-token-0123456789abcdef', role: 'admin', name: 'alice' }

describe('the tokens file (--tokens)', () => {
  let dir: string
  let file: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-tokens-'))
    file = join(dir, 'tokens.json')
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  const write = async (content: unknown, mode: number) => {
    await writeFile(file, JSON.stringify(content))
    await chmod(file, mode)
  }
  const load = async () => {
    const warnings: string[] = []
    const table = await loadTokens(file, { warn: (w) => warnings.push(w) })
    return { table, warnings }
  }

  it('loads a file of mode 0600 without a word', async () => {
    await write({ tokens: [GOOD] }, 0o600)
    const { table, warnings } = await load()
    expect(warnings).toEqual([])
    expect(table.lookup(GOOD.token)).toEqual({ name: 'alice', role: 'admin' })
  })

  it.skipIf(process.platform === 'win32')(
    'warns in one line, as ssh does, of a file others may read',
    async () => {
      await write({ tokens: [GOOD] }, 0o644)
      const { table, warnings } = await load()
      expect(warnings).toEqual([`tokens file ${file} is readable by others (mode 0644); chmod 600 ${file}`])
      expect(table.lookup(GOOD.token)).not.toBeNull()
      await chmod(file, 0o620)
      expect((await load()).warnings).toEqual([
        `tokens file ${file} is writable by others (mode 0620); chmod 600 ${file}`,
      ])
    },
  )

  it('reports every bad entry at once, each with its index and field', async () => {
    await write(
      {
        tokens: [
          { token: 'short', role: 'admin', name: 'a' },
          GOOD,
          { token: 'viewer-token-0123456789abcdef', role: 'root', name: '' },
          { token: 'other-token-0123456789abcdef', role: 'viewer', name: 'o', extra: 1 },
        ],
      },
      0o600,
    )
    const error = await load().then(
      () => null,
      (err: unknown) => err as { code: string; message: string },
    )
    expect(error?.code).toBe('ERR_CONFIG')
    expect(error?.message).toBe(
      `tokens file ${file} has 4 problems: ` +
        'tokens.0.token: a token needs at least 16 characters; ' +
        'tokens.2.role: a role is one of viewer, developer, operator, admin; ' +
        'tokens.2.name: give each token a name (who holds it); ' +
        'tokens.3: Unrecognized key: "extra"',
    )
  })

  it('names every token listed twice, and keeps one problem on one line', async () => {
    expect(tokensFileProblems({ tokens: [GOOD, GOOD, { ...GOOD, name: 'bob' }] })).toEqual([
      'tokens.1.token: listed twice (also tokens.0.token)',
      'tokens.2.token: listed twice (also tokens.0.token)',
    ])
    // Named beside the other entries' problems, in the order of the entries.
    expect(tokensFileProblems({ tokens: [GOOD, { ...GOOD, role: 'root' }, { token: 7 }, 'x'] })).toEqual([
      'tokens.1.role: a role is one of viewer, developer, operator, admin',
      'tokens.1.token: listed twice (also tokens.0.token)',
      expect.stringMatching(/^tokens\.2\.token: /),
      expect.stringMatching(/^tokens\.2\.role: /),
      expect.stringMatching(/^tokens\.2\.name: /),
      expect.stringMatching(/^tokens\.3: /),
    ])
    expect(tokensFileProblems(null)).toEqual([expect.stringMatching(/^\(top level\): /)])
    await write({ tokens: [] }, 0o600)
    await expect(load()).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      message: `tokens file ${file}: tokens: list at least one token`,
    })
  })
})
