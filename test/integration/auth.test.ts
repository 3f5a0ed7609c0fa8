import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent, AgentOptions } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { makeKey } from '../helpers/distribution.js'
import { CLI, runCli } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const noCli = skipReason(
  import.meta.url,
  'the CLI sends tokens',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

const TOKENS = {
  admin: 'admin-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
  developer: 'developer-token-0123456789abcdef',
  viewer: 'viewer-token-0123456789abcdef',
}
const NAMES = { admin: 'alice', operator: 'olga', developer: 'dev', viewer: 'vic' }

describe('API roles and tokens', () => {
  const cluster = new TestCluster()
  let agent: Agent
  let dir: string
  let keys: { key: string; pub: string }

  /** A raw request, so the test sees the status and error body as sent. */
  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const response = await fetch(new URL(path, agent.apiUrl), {
      method,
      headers: {
        ...(token == null ? {} : { authorization: `Bearer ${token}` }),
        ...(body == null ? {} : { 'content-type': 'application/json' }),
      },
      ...(body == null ? {} : { body: JSON.stringify(body) }),
    })
    return {
      status: response.status,
      body: (await response.json().catch(() => null)) as { error?: { code: string; message: string } },
    }
  }

  beforeAll(async () => {
    dir = await cluster.dataDir()
    keys = await makeKey(dir)
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({
        tokens: (Object.keys(TOKENS) as Array<keyof typeof TOKENS>).map((role) => ({
          token: TOKENS[role],
          role,
          name: NAMES[role],
        })),
      }),
    )
    const options: Partial<AgentOptions> = { tokensFile, trust: [keys.pub] }
    agent = await cluster.start(options)
    expect(agent.config.tokensFile).toBe(tokensFile)
  })

  afterAll(() => cluster.cleanup())

  it('answers 401 without a token or with an unknown one; /api/health and / stay open', async () => {
    const none = await call('GET', '/api/members')
    expect(none.status).toBe(401)
    expect(none.body.error?.code).toBe('ERR_UNAUTHORIZED')
    const wrong = await call('GET', '/api/members', 'not-a-known-token-at-all')
    expect(wrong.status).toBe(401)
    expect(wrong.body.error?.code).toBe('ERR_UNAUTHORIZED')
    expect((await call('POST', '/api/rollouts', undefined, { distribution: 'x@1' })).status).toBe(401)
    expect((await call('GET', '/api/health')).status).toBe(200)
    expect((await fetch(new URL('/', agent.apiUrl))).status).toBe(200)
  })

  it('lets a viewer read but not change anything', async () => {
    const members = await call('GET', '/api/members', TOKENS.viewer)
    expect(members.status).toBe(200)
    const forbidden = await call('POST', '/api/rollouts', TOKENS.viewer, { distribution: 'x@1' })
    expect(forbidden.status).toBe(403)
    expect(forbidden.body.error?.code).toBe('ERR_FORBIDDEN')
    expect(forbidden.body.error?.message).toMatch(/admin/)
  })

  it('keeps a developer away from nodes and an operator away from rollouts', async () => {
    const nodes = await call('POST', '/api/nodes', TOKENS.developer, { count: 1 })
    expect(nodes.status).toBe(403)
    expect(nodes.body.error?.message).toMatch(/operator or admin/)
    expect((await call('POST', '/api/rollouts', TOKENS.operator, { distribution: 'x@1' })).status).toBe(403)
    expect((await call('POST', '/api/distributions', TOKENS.operator, {})).status).toBe(403)
    expect((await call('POST', '/api/verify', TOKENS.developer)).status).toBe(403)
  })

  it('lets an admin through (the command then fails for its own reasons)', async () => {
    const result = await call('POST', '/api/rollouts', TOKENS.admin, { distribution: 'nothing@1.0' })
    expect([401, 403]).not.toContain(result.status)
    expect(result.body.error?.code).toBe('ERR_UNKNOWN_DISTRIBUTION')
  })

  it('a developer publishes, an admin rolls out, recorded as requested by the token holder', async () => {
    // The component asks the API for a service with the token its agent gave it, and without.
    const probe = `
      import { writeFileSync } from 'node:fs'
      const url = process.env.SHOAL_API + '/api/services/app'
      const headers = { authorization: 'Bearer ' + process.env.SHOAL_TOKEN }
      const withToken = (await fetch(url, { headers })).status
      const without = (await fetch(url)).status
      writeFileSync(process.env.OUT, JSON.stringify({ withToken, without }))
      setInterval(() => {}, 1000)
    `
    const out = join(dir, 'component-saw.json')
    const app = await makeComponentDistribution(join(dir, 'app'), {
      app: {
        files: { 'main.mjs': probe },
        descriptor: { start: { node: 'main.mjs' }, env: { OUT: out } },
      },
    })
    await expect(
      publish(new ApiClient(agent.apiUrl), {
        dir: app,
        name: 'app',
        version: '1.0',
        keyFile: keys.key,
        progress: false,
      }),
    ).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' })
    await publish(new ApiClient(agent.apiUrl, TOKENS.developer), {
      dir: app,
      name: 'app',
      version: '1.0',
      keyFile: keys.key,
      progress: false,
    })
    const admin = new ApiClient(agent.apiUrl, TOKENS.admin)
    const started = await admin.post<RolloutView>('/api/rollouts', { json: { distribution: 'app@1.0' } })
    expect(started.requestedBy).toBe('alice (admin)')
    // Its components read the API as viewers with a token of their own (service discovery).
    const saw = await waitFor('the component to call the API', async () =>
      JSON.parse(await readFile(out, 'utf8').catch(() => 'null')),
    )
    expect(saw).toEqual({ withToken: 200, without: 401 })
  })

  it.skipIf(noCli != null)('the CLI sends SHOAL_TOKEN or --token; a 401/403 exits non-zero', async () => {
    const api = agent.apiUrl
    const denied = await runCli(['members', '--json', '--api', api])
    expect(denied.code).not.toBe(0)
    expect(denied.stderr).toMatch(/ERR_UNAUTHORIZED/)
    const viaEnv = await runCli(['members', '--json', '--api', api], { SHOAL_TOKEN: TOKENS.viewer })
    expect(viaEnv.code).toBe(0)
    expect(JSON.parse(viaEnv.stdout)).toHaveLength(1)
    const viaFlag = await runCli(['status', '--json', '--api', api, '--token', TOKENS.viewer])
    expect(viaFlag.code).toBe(0)
    const forbidden = await runCli(['verify', '--api', api], { SHOAL_TOKEN: TOKENS.viewer })
    expect(forbidden.code).not.toBe(0)
    expect(forbidden.stderr).toMatch(/ERR_FORBIDDEN/)
  })
})

describe('API without tokens', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  it('refuses to listen beyond loopback', async () => {
    await expect(cluster.start({ api: '0.0.0.0:0' })).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      message: expect.stringMatching(/loopback only/),
    })
  })

  it('stops at a bad tokens file, naming the field', async () => {
    const dir = await cluster.dataDir()
    const file = join(dir, 'tokens.json')
    await writeFile(file, JSON.stringify({ tokens: [{ token: 'short', role: 'admin', name: 'a' }] }))
    await expect(cluster.start({ tokensFile: file })).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      message: expect.stringMatching(/tokens\.0\.token/),
    })
    await writeFile(file, JSON.stringify({ tokens: [{ token: TOKENS.admin, role: 'root', name: 'a' }] }))
    await expect(cluster.start({ tokensFile: file })).rejects.toMatchObject({
      message: expect.stringMatching(/tokens\.0\.role/),
    })
  })

  it('names every bad entry of a tokens file at once', async () => {
    const dir = await cluster.dataDir()
    const file = join(dir, 'tokens.json')
    await writeFile(
      file,
      JSON.stringify({
        tokens: [
          { token: 'short', role: 'admin', name: 'a' },
          { token: TOKENS.admin, role: 'admin', name: 'alice' },
          { token: TOKENS.viewer, role: 'root', name: 'v' },
        ],
      }),
    )
    const refused = await cluster.start({ tokensFile: file }).then(
      () => null,
      (err: unknown) => err as { code: string; message: string },
    )
    expect(refused?.code).toBe('ERR_CONFIG')
    expect(refused?.message).toMatch(/has 2 problems: tokens\.0\.token: .*; tokens\.2\.role: /)
  })
})
