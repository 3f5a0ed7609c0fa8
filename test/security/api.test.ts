import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { CLI, runCli } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'

const noCli = skipReason(
  import.meta.url,
  'the CLI against a token-less agent',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

const VIEWER = 'viewer-token-0123456789abcdef'
const ADMIN = 'admin-token-0123456789abcdef'

/**
 * One HTTP request with the path sent exactly as given (fetch would normalise
 * it first), so path tricks reach the server as an attacker would send them.
 */
function rawRequest(
  api: string,
  path: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(api)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const codeOf = (body: string): string | undefined => {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code
  } catch {
    return undefined
  }
}

describe('API with tokens: no token 401, wrong role 403, no way around it', () => {
  const cluster = new TestCluster()
  let agent: Agent

  beforeAll(async () => {
    const dir = await cluster.dataDir()
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({
        tokens: [
          { token: VIEWER, role: 'viewer', name: 'vic' },
          { token: ADMIN, role: 'admin', name: 'alice' },
        ],
      }),
      { mode: 0o600 },
    )
    agent = await cluster.start({ tokensFile })
  })

  afterAll(() => cluster.cleanup())

  it('no token or an unknown one: 401 ERR_UNAUTHORIZED; a role that may not: 403 ERR_FORBIDDEN', async () => {
    const none = await rawRequest(agent.apiUrl, '/api/status')
    expect([none.status, codeOf(none.body)]).toEqual([401, 'ERR_UNAUTHORIZED'])
    const unknown = await rawRequest(agent.apiUrl, '/api/status', {
      headers: { authorization: `Bearer ${VIEWER}x` },
    })
    expect([unknown.status, codeOf(unknown.body)]).toEqual([401, 'ERR_UNAUTHORIZED'])
    const viewer = await rawRequest(agent.apiUrl, '/api/verify', {
      method: 'POST',
      headers: { authorization: `Bearer ${VIEWER}` },
    })
    expect([viewer.status, codeOf(viewer.body)]).toEqual([403, 'ERR_FORBIDDEN'])
    // The same calls with the right token go through (the refusals are the token's doing).
    const ok = await rawRequest(agent.apiUrl, '/api/verify', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    })
    expect(ok.status).toBe(200)
  })

  it('path and header tricks never reach a protected endpoint without a token', async () => {
    const paths = [
      '/API/members',
      '/Api/status',
      '/api//members',
      '//api/members',
      '/%61pi/members',
      '/api/%6dembers',
      '/api/./members',
      '/api/health/../members',
      '/api/health/%2e%2e/members',
      '/api/health%2f..%2fmembers',
      '/api/health;/../members',
      '/api/health/',
      '/api/members/',
      '/api%2fmembers',
      '/api/health%00',
      'http://elsewhere/api/members',
      '/api/events',
      '/api/audit',
      '/api/openapi.json',
    ]
    const answers = await Promise.all(paths.map((path) => rawRequest(agent.apiUrl, path)))
    const reached = paths.filter((_, i) => ![401, 404].includes(answers[i]!.status))
    expect(reached).toEqual([])
    const headers: Array<Record<string, string>> = [
      { authorization: `Basic ${VIEWER}` },
      { authorization: 'Bearer' },
      { authorization: `Bearer ${VIEWER.toUpperCase()}` },
      { 'x-shoal-token': VIEWER },
      { cookie: `token=${VIEWER}` },
    ]
    for (const extra of headers)
      expect((await rawRequest(agent.apiUrl, '/api/members', { headers: extra })).status).toBe(401)
    expect((await rawRequest(agent.apiUrl, `/api/members?token=${VIEWER}`)).status).toBe(401)
    // Every mutating method is checked, not only POST.
    for (const method of ['PUT', 'PATCH', 'DELETE'])
      expect(
        (
          await rawRequest(agent.apiUrl, '/api/rollouts', {
            method,
            headers: { authorization: `Bearer ${VIEWER}` },
          })
        ).status,
      ).toBe(403)
  })
})

describe('API without tokens', () => {
  it.skipIf(noCli != null)(
    'an agent asked to listen beyond loopback without --tokens exits at start with a clear error',
    async () => {
      const data = await mkdtemp(join(tmpdir(), 'shoal-exposed-'))
      for (const api of ['0.0.0.0:0', '[::]:0']) {
        const result = await runCli([
          'agent',
          '--cluster',
          'exposed',
          '--api',
          api,
          '--listen',
          '/ip4/127.0.0.1/tcp/0',
          '--no-mdns',
          '--data',
          join(data, 'agent'),
        ])
        expect(result.code).not.toBe(0)
        expect(result.stdout).toBe('')
        expect(result.stderr).toMatch(/loopback only.*--tokens.*ERR_CONFIG/)
      }
      // It stopped before touching anything: no data folder was made.
      expect(existsSync(join(data, 'agent'))).toBe(false)
      await rm(data, { recursive: true, force: true })
    },
  )

  describe('on loopback', () => {
    const cluster = new TestCluster()
    let agent: Agent
    beforeAll(async () => {
      agent = await cluster.start()
    })
    afterAll(() => cluster.cleanup())

    // Without tokens a web page the operator opens could POST "simple" requests (no CORS
    // preflight) to http://127.0.0.1:7070/api/...: a foreign Origin is refused
    // (src/api/browser-guard.ts).
    it('refuses a cross-origin POST (CSRF from a web page)', async () => {
      const answer = await rawRequest(agent.apiUrl, '/api/verify', {
        method: 'POST',
        headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
        body: '{}',
      })
      expect(answer.status).toBe(403)
    })

    // DNS rebinding (evil.example resolving to 127.0.0.1 after the page loaded) would make
    // the page same-origin with the API: without tokens only loopback Host names are served.
    it('refuses a foreign Host header (DNS rebinding)', async () => {
      const answer = await rawRequest(agent.apiUrl, '/api/members', {
        headers: { host: 'evil.example:7070' },
      })
      expect(answer.status).not.toBe(200)
    })

    it('control: the same requests with the API’s own origin and host are served', async () => {
      const own = new URL(agent.apiUrl)
      const answer = await rawRequest(agent.apiUrl, '/api/verify', {
        method: 'POST',
        headers: { origin: own.origin, 'content-type': 'application/json' },
        body: '{}',
      })
      expect(answer.status).toBe(200)
      expect((await rawRequest(agent.apiUrl, '/api/members', { headers: { host: own.host } })).status).toBe(
        200,
      )
    })
  })
})
