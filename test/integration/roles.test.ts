import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROLES, type Role } from '../../src/api/index.js'
import { OPENAPI_DOCUMENT, type OpenApiMethod } from '../../src/api/openapi.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { TestCluster } from '../helpers/cluster.js'

/**
 * Every endpoint of the OpenAPI document with every role and without a token,
 * against one real agent with a tokens file: 401 without a token, 403
 * ERR_FORBIDDEN for a role the endpoint does not allow, through the check
 * otherwise. Which roles an endpoint allows comes from the document's
 * `x-shoal-roles` (test/integration/openapi.test.ts holds those to auth.ts).
 */

const TOKENS: Record<Role, string> = {
  viewer: 'viewer-token-0123456789abcdef',
  developer: 'developer-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
}
type Caller = Role | 'no token'
const CALLERS: readonly Caller[] = ['no token', ...ROLES]

/** Over the 40 characters a rollout id may have: refused before the manager is asked. */
const LONG_ID = 'r'.repeat(41)

/**
 * For each mutating endpoint, a request an allowed caller gets past the role
 * check with and that changes nothing (ids that name nothing, bodies that are
 * refused), and what the agent then answers.
 */
const HARMLESS: Record<string, { path: string; body?: unknown; answer: number; why: string }> = {
  'POST /api/artifacts': { path: '/api/artifacts', answer: 400, why: 'no ?sha256' },
  'POST /api/distributions': { path: '/api/distributions', body: {}, answer: 400, why: 'no manifest' },
  'DELETE /api/distributions/{name}/{version}': {
    path: '/api/distributions/NOT-A-NAME/1.0',
    answer: 400,
    why: 'not a distribution name',
  },
  'POST /api/publish': { path: '/api/publish', answer: 400, why: 'not a form' },
  'POST /api/verify': { path: '/api/verify', answer: 200, why: 'an empty store: nothing to re-hash' },
  'POST /api/components/{name}/stop': {
    path: '/api/components/no-such-component/stop',
    answer: 404,
    why: 'no such component',
  },
  'POST /api/components/{name}/start': {
    path: '/api/components/no-such-component/start',
    answer: 404,
    why: 'no such component',
  },
  'POST /api/components/{name}/weight': {
    path: '/api/components/no-such-component/weight',
    body: { weight: 50 },
    answer: 404,
    why: 'no such component',
  },
  'POST /api/rollouts': {
    path: '/api/rollouts',
    body: { distribution: 'no-version-given' },
    answer: 400,
    why: 'not NAME@VERSION',
  },
  'POST /api/rollouts/{id}/approve': { path: `/api/rollouts/${LONG_ID}/approve`, answer: 400, why: 'bad id' },
  'POST /api/rollouts/{id}/pause': { path: `/api/rollouts/${LONG_ID}/pause`, answer: 400, why: 'bad id' },
  'POST /api/rollouts/{id}/resume': { path: `/api/rollouts/${LONG_ID}/resume`, answer: 400, why: 'bad id' },
  'POST /api/rollouts/{id}/abort': { path: `/api/rollouts/${LONG_ID}/abort`, answer: 400, why: 'bad id' },
  'POST /api/rollbacks': { path: '/api/rollbacks', body: {}, answer: 400, why: 'no name' },
  'POST /api/nodes': { path: '/api/nodes', body: { count: 0 }, answer: 400, why: 'count 0' },
  'POST /api/nodes/{id}/copy': { path: '/api/nodes/no-such-node/copy', answer: 404, why: 'no such member' },
  'POST /api/nodes/{id}/remove': {
    path: '/api/nodes/no-such-node/remove',
    answer: 404,
    why: 'no such member',
  },
  'POST /api/voters/reset': { path: '/api/voters/reset', answer: 400, why: 'no {"force": true}' },
}

/** Path parameters of the read-only requests: names nothing, so answers are small (often 404). */
const EXAMPLE_PARAMS: Record<string, string> = {
  sha256: '0'.repeat(64),
  name: 'no-such-name',
  version: '1.0',
  id: 'no-such-id',
}

interface Endpoint {
  key: string
  method: string
  path: string
  roles: readonly Role[]
  /** Documented with `security: []`: answered without a token. */
  open: boolean
}

function endpoints(methods: readonly OpenApiMethod[]): Endpoint[] {
  return Object.entries(OPENAPI_DOCUMENT.paths).flatMap(([template, item]) =>
    methods.flatMap((m) => {
      const operation = item[m]
      if (operation == null) return []
      const method = m.toUpperCase()
      return [
        {
          key: `${method} ${template}`,
          method,
          path: template.replace(/\{(\w+)\}/g, (_, name: string) => EXAMPLE_PARAMS[name] ?? 'x'),
          roles: operation['x-shoal-roles'] ?? ROLES,
          open: operation.security?.length === 0,
        },
      ]
    }),
  )
}

const MUTATING = endpoints(['post', 'delete'])
const READING = endpoints(['get', 'head'])

describe('roles: every endpoint with every role', () => {
  const cluster = new TestCluster()
  let agent: Agent

  /** The status and error code as sent; streams are cut once their headers arrive. */
  const call = async (method: string, path: string, caller: Caller, body?: unknown) => {
    const response = await fetch(new URL(path, agent.apiUrl), {
      method,
      headers: {
        ...(caller === 'no token' ? {} : { authorization: `Bearer ${TOKENS[caller]}` }),
        ...(body == null ? {} : { 'content-type': 'application/json' }),
      },
      ...(body == null ? {} : { body: JSON.stringify(body) }),
    })
    let code: string | null = null
    if ((response.headers.get('content-type') ?? '').includes('application/json')) {
      const parsed = (await response.json().catch(() => null)) as { error?: { code?: string } } | null
      code = parsed?.error?.code ?? null
    } else await response.body?.cancel()
    return { status: response.status, code }
  }

  beforeAll(async () => {
    const dir = await cluster.dataDir()
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({ tokens: ROLES.map((role) => ({ token: TOKENS[role], role, name: `the-${role}` })) }),
    )
    agent = await cluster.start({ tokensFile })
  })

  afterAll(() => cluster.cleanup())

  it('has a harmless request for every mutating endpoint of the document, and no other', () => {
    expect(Object.keys(HARMLESS).sort()).toEqual(MUTATING.map((e) => e.key).sort())
  })

  describe.each(MUTATING.map((e) => [e.key, e.roles.join(', '), e] as const))(
    '%s (allowed: %s)',
    (key, _allowed, { method, roles }) => {
      const cases = CALLERS.map((caller) => [
        caller,
        caller === 'no token' ? '401' : roles.includes(caller) ? 'allowed' : '403',
      ])
      it.each(cases)('%s → %s', async (caller, expected) => {
        const request = HARMLESS[key]!
        const { status, code } = await call(method, request.path, caller as Caller, request.body)
        if (expected === '401') expect({ status, code }).toEqual({ status: 401, code: 'ERR_UNAUTHORIZED' })
        else if (expected === '403') expect({ status, code }).toEqual({ status: 403, code: 'ERR_FORBIDDEN' })
        // Past the check; the request then fails (or does nothing) for its own reason.
        else expect({ status, why: request.why }).toEqual({ status: request.answer, why: request.why })
      })
    },
  )

  describe.each(READING.map((e) => [e.key, e.open ? 'open' : 'every role', e] as const))(
    '%s (%s)',
    (_key, _access, { method, path, open }) => {
      const cases = CALLERS.map((caller) => [caller, caller === 'no token' && !open ? '401' : 'allowed'])
      it.each(cases)('%s → %s', async (caller, expected) => {
        const { status, code } = await call(method, path, caller as Caller)
        // A HEAD answer has no body to carry the code.
        if (expected === '401')
          expect({ status, code }).toEqual({
            status: 401,
            code: method === 'HEAD' ? null : 'ERR_UNAUTHORIZED',
          })
        else {
          expect([401, 403]).not.toContain(status)
          expect(status).toBeLessThan(500)
        }
      })
    },
  )
})
