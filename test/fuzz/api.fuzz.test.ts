import { createHash, generateKeyPairSync } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiApp } from '../../src/api/server.js'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { commandSchema } from '../../src/manager/index.js'
import type { Provider } from '../../src/providers/provider.js'
import { silentLogger } from '../../src/shared/logger.js'
import { TestCluster } from '../helpers/cluster.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { waitFor } from '../helpers/wait.js'
import {
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  hostileString,
  type Json,
  jsonText,
  mutated,
  randomBytes,
  utf8,
} from './harness.js'

/**
 * The admin API of ONE real agent (a single-node cluster with the test preset,
 * already running `fz@1.0`), served in-process by `createApiApp` over the real
 * Agent. Every mutating endpoint gets mutated and random bodies. Whatever the
 * request: never a 5xx or a crash; a refusal is a 4xx JSON `{"error":{"code":"ERR_…"}}`
 * and leaves the agent's state (distributions, rollouts, nodes, the running
 * version, the blob store) exactly as it was; a body that is not JSON is refused.
 * An accepted request (a valid rollout of the running version, a correct upload)
 * may change state: the test waits for it to settle and compares against the new state.
 */
const target = new FuzzTarget('api')
const KNOWN = 'fz@1.0'

const cluster = new TestCluster()
let agent: Agent
let app: Hono
let blobsDir: string
let signedManifest: Json
let artifactBytes: Uint8Array

/** A provider that launches nothing: `POST /api/nodes` may not start real agents here. */
const inertProvider: Provider = {
  name: 'local',
  launch: async () => {
    throw new Error('the fuzz agent launches no nodes')
  },
  terminate: async () => {},
}

beforeAll(async () => {
  const dir = await cluster.dataDir()
  const keys = await makeKey(dir)
  agent = await cluster.start({ trust: [keys.pub] })
  await waitFor('the agent to act as manager', () => agent.manager.status().acting)
  const release = await makeDistributionDir(join(dir, 'release'), { 'data.bin': 3000 })
  await publish(new ApiClient(agent.apiUrl), {
    dir: release,
    name: 'fz',
    version: '1.0',
    keyFile: keys.key,
    progress: false,
  })
  await new ApiClient(agent.apiUrl).post('/api/rollouts', { json: { distribution: KNOWN } })
  await waitFor('fz@1.0 to run', () => agent.api.status().distribution === KNOWN, { timeout: 60_000 })
  ;(
    agent.nodeOps as unknown as { components: { providers: Map<string, Provider> } }
  ).components.providers.set('local', inertProvider)
  const entry = agent.artifacts.catalogue.get(KNOWN)!
  signedManifest = JSON.parse(JSON.stringify(entry.signed)) as Json
  blobsDir = join(agent.config.dataDir, 'blobs')
  artifactBytes = new Uint8Array(0)
  app = createApiApp(agent.api, null, silentLogger)
})

afterAll(() => cluster.cleanup())

// --- requests -------------------------------------------------------------------------------

interface FuzzRequest {
  endpoint: string
  path: string
  body?: Uint8Array | FormData
  contentType?: string
}

const safeSegment = (s: string): string => {
  try {
    return encodeURIComponent(s)
  } catch {
    return 'x' // a lone surrogate cannot be put in a URL at all
  }
}

/** A JSON body: a mutated valid one mostly, else random bytes or odd JSON. */
const jsonBody = (valid: Json) =>
  fc.oneof(
    { weight: 6, arbitrary: mutated(valid).map((v) => utf8(jsonText(v))) },
    { weight: 1, arbitrary: fc.constant(utf8(JSON.stringify(valid))) },
    { weight: 2, arbitrary: randomBytes },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '"x"', '5', 'true', '{', '{}').map(utf8) },
  )
const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom(undefined, 'text/plain', 'multipart/form-data; boundary=x') },
)

const rolloutBody: Json = {
  distribution: KNOWN,
  strategy: 'rolling',
  approve: 'manual',
  maxUnavailable: 1,
  minReadyMs: 0,
  failureThreshold: 1,
  autoRollback: true,
  nodes: [],
}
const rollbackBody: Json = { name: 'fz', to: '1.0', strategy: 'all-at-once', approve: 'manual' }
const nodesBody: Json = { count: 1, like: 'self', provider: 'local' }

const withBody = (endpoint: string, path: fc.Arbitrary<string>, body: fc.Arbitrary<Uint8Array>) =>
  fc.record({ endpoint: fc.constant(endpoint), path, body, contentType })

const publishForm = fc
  .record({
    name: fc.option(fc.oneof(fc.constant('fz'), hostileString)),
    version: fc.option(fc.oneof(fc.constantFrom('1.0', '2.0'), hostileString)),
    key: fc.option(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.constant(
          utf8('-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n'),
        ),
      ),
    ),
    keyAsText: fc.boolean(),
    files: fc.array(
      fc.record({
        name: fc.oneof(fc.constantFrom('web.tgz', 'conf/app.json', 'distribution.json'), hostileString),
        data: fc.uint8Array({ maxLength: 100 }),
      }),
      { maxLength: 3 },
    ),
  })
  .map(({ name, version, key, keyAsText, files }) => {
    const form = new FormData()
    if (name != null) form.append('name', name)
    if (version != null) form.append('version', version)
    if (key != null) {
      if (keyAsText) form.append('key', new TextDecoder().decode(key))
      else form.append('key', new File([key], 'publisher.key'))
    }
    for (const f of files) form.append('file', new File([f.data], f.name))
    return form
  })

const request: fc.Arbitrary<FuzzRequest> = fc.oneof(
  withBody('rollouts', fc.constant('/api/rollouts'), jsonBody(rolloutBody)),
  withBody('rollbacks', fc.constant('/api/rollbacks'), jsonBody(rollbackBody)),
  withBody('nodes', fc.constant('/api/nodes'), jsonBody(nodesBody)),
  withBody(
    'distributions',
    fc.constant('/api/distributions'),
    fc.constant(null).chain(() => jsonBody(signedManifest)),
  ),
  withBody(
    'weight',
    fc
      .oneof(fc.constant('x'), fc.constant('web'), hostileString)
      .map((n) => `/api/components/${safeSegment(n)}/weight`),
    jsonBody({ weight: 50 }),
  ),
  withBody(
    'control',
    fc
      .tuple(
        fc.oneof(fc.constantFrom('r1', 'r2', 'r3', 'r9'), hostileString),
        fc.constantFrom('approve', 'pause', 'resume', 'abort'),
      )
      .map(([id, op]) => `/api/rollouts/${safeSegment(id)}/${op}`),
    jsonBody({}),
  ),
  fc
    .record({
      data: fc.oneof(
        fc.uint8Array({ maxLength: 4096 }),
        fc.constant(null).map(() => artifactBytes),
      ),
      hash: fc.oneof(
        { weight: 2, arbitrary: fc.constant('own') },
        { weight: 2, arbitrary: fc.stringMatching(/^[0-9a-f]{64}$/) },
        { weight: 2, arbitrary: hostileString },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
    })
    .map(({ data, hash }) => {
      const sha = hash === 'own' ? createHash('sha256').update(data).digest('hex') : hash
      return {
        endpoint: 'artifacts',
        path: sha == null ? '/api/artifacts' : `/api/artifacts?sha256=${safeSegment(sha)}`,
        body: data,
        contentType: 'application/octet-stream',
      }
    }),
  fc.oneof(
    {
      weight: 3,
      arbitrary: publishForm.map((body) => ({ endpoint: 'publish', path: '/api/publish', body })),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        endpoint: fc.constant('publish'),
        path: fc.constant('/api/publish'),
        body: fc.uint8Array({ maxLength: 300 }),
        contentType: fc.constantFrom('multipart/form-data; boundary=x', 'multipart/form-data', undefined),
      }),
    },
  ),
)

// --- state ----------------------------------------------------------------------------------

async function get(path: string): Promise<unknown> {
  const response = await app.request(path)
  expect(response.status, `GET ${path}`).toBe(200)
  return response.json()
}

/** What a refused request may not change. */
async function snapshot(): Promise<string> {
  const status = (await get('/api/status')) as Record<string, unknown>
  const runtime = status.runtime as Record<string, unknown>
  const list = (dir: string) => readdir(join(blobsDir, dir)).then((names) => names.sort())
  return JSON.stringify({
    distributions: await get('/api/distributions'),
    rollouts: await get('/api/rollouts'),
    nodes: await get('/api/nodes'),
    distribution: status.distribution,
    known: status.distributions,
    runtime: { active: runtime.active, target: runtime.target, phase: runtime.phase },
    blobs: { whole: await list('sha256'), partial: await list('partial'), tmp: await list('tmp') },
  })
}

/** After an accepted request: waits until rollouts stop moving and the state holds still. */
async function settled(): Promise<string> {
  await waitFor(
    'the agent to settle',
    async () => {
      const rollouts = (await get('/api/rollouts')) as Array<{ state: string }>
      if (rollouts.some((r) => r.state === 'running' || r.state === 'rolling-back')) return false
      const first = await snapshot()
      await new Promise((resolve) => setTimeout(resolve, 30))
      return first === (await snapshot()) ? first : false
    },
    { timeout: 60_000 },
  )
  return snapshot()
}

// --- known issues outside the fuzz targets' files (reported, not fixed here) -----------------

const parses = (bytes: Uint8Array | FormData | undefined): { ok: boolean; value?: unknown } => {
  if (!(bytes instanceof Uint8Array)) return { ok: false }
  try {
    return { ok: true, value: JSON.parse(new TextDecoder().decode(bytes)) }
  } catch {
    return { ok: false }
  }
}

/**
 * Requests that reach a bug in a file outside this task (docs/reliability.md lists
 * them with file, input and symptom). They are still sent and must not crash the
 * agent or change its state, but their answer is not held to the rules above.
 */
function knownIssue(_req: FuzzRequest): string | null {
  // None left: the node, weight and publish bodies this target found are refused with coded 400s now.
  return null
}

/** Bodies that would make the agent wait 5 s for an unknown version: valid, only slow, so not sent. */
function waitsForUnknownVersion(req: FuzzRequest): boolean {
  const body = parses(req.body)
  if (!body.ok || body.value == null || typeof body.value !== 'object') return false
  const fields = body.value as Record<string, unknown>
  if (req.endpoint === 'rollouts')
    return (
      typeof fields.distribution === 'string' &&
      fields.distribution.includes('@') &&
      fields.distribution !== KNOWN
    )
  if (req.endpoint === 'rollbacks') {
    const command = commandSchema.safeParse({ ...fields, op: 'rollback' })
    if (!command.success || command.data.op !== 'rollback' || command.data.to == null) return false
    const to = command.data.to
    return (to.includes('@') ? to : `${command.data.name}@${to}`) !== KNOWN
  }
  return false
}

const JSON_ENDPOINTS = new Set(['rollouts', 'rollbacks', 'nodes', 'distributions', 'weight'])
const MOVES_ROLLOUTS = new Set(['rollouts', 'rollbacks', 'control'])

// --- the property ---------------------------------------------------------------------------

describe('api fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('every mutating endpoint: refusals are coded 4xx that change nothing, never a 5xx', async () => {
    let baseline = await settled()
    await target.check(
      fc.asyncProperty(request, async (req) => {
        fc.pre(!waitsForUnknownVersion(req))
        const response = await app.request(req.path, {
          method: 'POST',
          ...(req.contentType == null ? {} : { headers: { 'content-type': req.contentType } }),
          ...(req.body == null ? {} : { body: req.body }),
        })
        const text = await response.text()
        const issue = knownIssue(req)
        target.tally(
          issue == null ? `${req.endpoint} ${response.status}` : `known issue (${issue}) ${response.status}`,
        )
        if (issue == null) {
          expect(
            response.status,
            `${req.path} answered ${response.status}: ${text.slice(0, 300)}`,
          ).toBeLessThan(500)
          const answer = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }
          if (response.status >= 400) {
            expect(answer.error?.code).toMatch(/^ERR_[A-Z0-9_]+$/)
            expect(typeof answer.error?.message).toBe('string')
          } else if (JSON_ENDPOINTS.has(req.endpoint))
            expect(parses(req.body).ok, `${req.path} accepted a body that is not JSON`).toBe(true)
        }
        if (response.status >= 200 && response.status < 300) {
          baseline = MOVES_ROLLOUTS.has(req.endpoint) ? await settled() : await snapshot()
          return
        }
        expect(await snapshot(), `${req.path} refused (${response.status}) but changed the state`).toBe(
          baseline,
        )
      }),
    )
    expect((await app.request('/api/health')).status).toBe(200)
  })

  describe('known issues outside the fuzzed files (fail when fixed: then turn into it() and drop the filter)', () => {
    const post = (path: string, body: string) =>
      app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body })

    it('POST /api/nodes with a body that is not JSON is refused (node-routes.ts treats it as {} and launches a node)', async () => {
      expect((await post('/api/nodes', '{not json')).status).toBe(400)
    })

    it('POST /api/nodes with {"count":"2"} or {"count":true} is refused (node-routes.ts coerces with Number())', async () => {
      expect((await post('/api/nodes', '{"count":true}')).status).toBe(400)
    })

    it('POST /api/nodes with the body null is a 400 (node-routes.ts: TypeError, 500)', async () => {
      expect((await post('/api/nodes', 'null')).status).toBe(400)
    })

    it('POST /api/components/x/weight with the body null is a 400 (runtime-routes.ts: TypeError, 500)', async () => {
      expect((await post('/api/components/x/weight', 'null')).status).toBe(400)
    })

    it('POST /api/components/x/weight with {"weight":{"toString":1}} is a 400 (runtime-routes.ts: Number() throws, 500)', async () => {
      expect((await post('/api/components/x/weight', '{"weight":{"toString":1}}')).status).toBe(400)
    })

    const form = (files: Array<[string, string]>) => {
      const body = new FormData()
      body.append('name', 'fz')
      body.append('version', '9.0')
      body.append('key', new File(['not a key'], 'publisher.key'))
      for (const [name, data] of files) body.append('file', new File([data], name))
      return body
    }
    it('POST /api/publish signed by a key the cluster does not trust leaves no blobs behind (they are uploaded first)', async () => {
      const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
      const body = form([['orphan.bin', `bytes nobody will reference ${Math.random()}`]])
      body.set('key', new File([key], 'publisher.key'))
      const before = await snapshot()
      const response = await app.request('/api/publish', { method: 'POST', body })
      expect(response.status).toBe(403)
      expect(await snapshot()).toBe(before)
    })

    it.each([
      ['a NUL byte', [['a\u0000b', 'x']]],
      ['a name over 255 bytes', [['x'.repeat(300), 'x']]],
      ['a trailing slash', [['a/', 'x']]],
      [
        'a file and a folder of the same name',
        [
          ['a', 'x'],
          ['a/b', 'y'],
        ],
      ],
    ] as Array<[string, Array<[string, string]>]>)(
      'POST /api/publish with a file name holding %s is a 400 (browser-publish.ts: fs error, 500)',
      async (_what, files) => {
        expect((await app.request('/api/publish', { method: 'POST', body: form(files) })).status).toBe(400)
      },
    )
  })
})
