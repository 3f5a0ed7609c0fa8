import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { z } from 'zod'
import { NotFoundError } from '../shared/index.js'
import type { AuditTrail } from './audit.js'
import { publishUpload } from './browser-publish.js'
import { TOO_LARGE } from './errors.js'
import { type LoadBalancerView, loadBalancers } from './lb-view.js'
import { AuditEntry, LoadBalancerView as LoadBalancerViewSchema, Snapshot } from './schemas/cluster.js'
import { PublishForm, PublishUploadResult } from './schemas/distributions.js'
import { documentedRequest, eventStream, json, type Operation, serve } from './schemas/operation.js'
import type { ApiBackend } from './server.js'

const JS = 'text/javascript; charset=utf-8'
const CSS = 'text/css; charset=utf-8'
/**
 * The dashboard's files, by the name they are served as: its own (dashboard/ at the
 * package root) and the chart library's (uPlot, a dependency, read from node_modules:
 * agents run in closed networks, so nothing comes from a CDN).
 */
const ASSETS: Record<string, { type: string; module?: string }> = {
  'app.js': { type: JS },
  'style.css': { type: CSS },
  'uplot.js': { type: JS, module: 'uplot/dist/uPlot.iife.min.js' },
  'uplot.css': { type: CSS, module: 'uplot/dist/uPlot.min.css' },
}
/** How often the event stream looks for changes nobody signals (transfers, operations, the LB). */
const POLL_MS = 1_000
/** A comment this often finds clients that went away. */
const KEEP_ALIVE_MS = 15_000
/** Largest upload of the publish form. */
const MAX_UPLOAD = 512 * 1024 * 1024

export const DASHBOARD_OPERATIONS = {
  events: {
    method: 'get',
    path: '/api/events',
    operationId: 'streamEvents',
    summary: 'The dashboard feed: a `snapshot` event on connect and at every change (server-sent events)',
    tag: 'cluster',
    responses: {
      200: eventStream(
        'A stream of `event: snapshot` whose `data` is a Snapshot (JSON), sent on connect and whenever ' +
          'anything in it changes (looked at on every membership, runtime or audit event, and every ' +
          'second); a `: keep-alive` comment after 15 s without one.',
        z.string(),
        { snapshot: Snapshot },
      ),
    },
  },
  lb: {
    method: 'get',
    path: '/api/lb',
    operationId: 'listLoadBalancers',
    summary: 'The load balancers in the membership and the backends each one reports',
    tag: 'cluster',
    responses: { 200: json('One entry per load balancer member', z.array(LoadBalancerViewSchema)) },
  },
  audit: {
    method: 'get',
    path: '/api/audit',
    operationId: 'listAudit',
    summary: 'The mutating requests this agent served, refusals included (the last 500, in memory)',
    description:
      'Per agent and since its start. Who started each rollout is also kept, cluster-wide and durably, ' +
      'in the rollout records (`requestedBy`, GET /api/rollouts).',
    tag: 'cluster',
    responses: { 200: json('Newest last', z.array(AuditEntry)) },
  },
  publish: {
    method: 'post',
    path: '/api/publish',
    operationId: 'publishUpload',
    summary:
      "The dashboard's publish form: upload a release folder and a key; the agent runs `shoal publish`",
    description:
      'The agent signs with the uploaded key (read from the request only, never written or logged) and ' +
      'publishes as `shoal publish` does (the same rules, checked before anything is stored), straight ' +
      `into its own store: only the artifacts it lacks are kept. Up to ${MAX_UPLOAD / 1024 / 1024} MiB; ` +
      'larger releases go through `shoal publish`.',
    tag: 'distributions',
    body: documentedRequest('multipart/form-data', PublishForm),
    responses: {
      200: json('The same content was already published under this version', PublishUploadResult),
      201: json('Published', PublishUploadResult),
    },
    errors: {
      ERR_BAD_REQUEST: 'A field is missing, or a file path leaves the folder',
      ERR_MANIFEST_INVALID: 'The release breaks the distribution rules',
      ERR_KEY_INVALID: 'The key is not an ed25519 private key',
      ERR_MANIFEST_SIGNATURE: 'The key is not trusted',
      ERR_VERSION_EXISTS: 'The version exists with other content',
      ERR_VERSION_UNPUBLISHED: 'The version was unpublished from this cluster',
      ERR_ARTIFACT_TOO_LARGE: 'A file is larger than the agent accepts',
    },
    bodyLimit: {
      maxBytes: MAX_UPLOAD,
      code: TOO_LARGE,
      why: `Larger than ${MAX_UPLOAD / 1024 / 1024} MiB`,
      message: `uploads larger than ${MAX_UPLOAD} bytes go through shoal publish`,
    },
  },
} satisfies Record<string, Operation>

/**
 * The dashboard at `/` and what only it needs:
 * - `GET /`, `GET /dashboard/:file`: the page, its script and style, and the chart library's;
 * - `GET /api/events`: server-sent `snapshot` events (the whole view) on connect and on change;
 * - `GET /api/lb`: the load balancers in membership and their backends;
 * - `GET /api/audit`: mutating requests this agent served, newest last;
 * - `POST /api/publish`: the publish form (multipart upload, signed like `shoal publish`).
 */
export function dashboardRoutes(
  app: Hono,
  backend: ApiBackend,
  audit: AuditTrail,
  // Opens load balancers' admin listeners that ask for tokens (docs/loadbalancer.md).
  lbCredential: string | null = null,
): void {
  app.get('/', async (c) => c.html(await asset('index.html')))
  app.get('/dashboard/:file', async (c) => {
    const file = ASSETS[c.req.param('file')]
    if (file == null) throw new NotFoundError(`no dashboard file ${c.req.param('file')}`)
    const body = file.module == null ? await asset(c.req.param('file')) : await dependency(file.module)
    return c.body(body, 200, {
      'Content-Type': file.type,
      'Cache-Control': 'no-cache',
    })
  })
  serve(app, DASHBOARD_OPERATIONS.lb, async (c) =>
    c.json(await loadBalancers(backend.members(), lbCredential)),
  )
  serve(app, DASHBOARD_OPERATIONS.audit, (c) => c.json(audit.list()))
  serve(app, DASHBOARD_OPERATIONS.publish, (c) => publishUpload(c, backend.distributions))
  serve(app, DASHBOARD_OPERATIONS.events, (c) =>
    streamSSE(c, async (sse) => {
      let wake: (() => void) | undefined
      const offChange = backend.runtimeApi.onChange(() => wake?.())
      const offAudit = audit.onRecord(() => wake?.())
      sse.onAbort(() => wake?.())
      let last = ''
      let lastSent = Date.now()
      let lb: LoadBalancerView[] = []
      try {
        while (!sse.aborted) {
          lb = await loadBalancers(backend.members(), lbCredential).catch(() => lb)
          const data = JSON.stringify(snapshot(backend, audit, lb))
          if (data !== last) {
            last = data
            lastSent = Date.now()
            await sse.writeSSE({ event: 'snapshot', data })
          } else if (Date.now() - lastSent >= KEEP_ALIVE_MS) {
            lastSent = Date.now()
            await sse.write(': keep-alive\n\n')
          }
          await new Promise<void>((resolve) => {
            wake = resolve
            setTimeout(resolve, POLL_MS).unref()
          })
          wake = undefined
        }
      } finally {
        offChange()
        offAudit()
      }
    }),
  )
}

/** Everything the dashboard shows, as this agent sees it. */
function snapshot(backend: ApiBackend, audit: AuditTrail, lb: LoadBalancerView[]) {
  const { config: _config, ...status } = backend.status()
  return {
    status,
    members: backend.members(),
    nodes: backend.nodesApi.nodes(),
    distributions: backend.distributions.list(),
    rollouts: backend.runtimeApi.rollouts(),
    lb,
    audit: audit.list().slice(-50),
  }
}

let assetRoot: string | undefined
/** dashboard/ at the package root: three levels up from dist/src/api, two from src/api. */
async function asset(file: string): Promise<string> {
  assetRoot ??= [join(here(), '../../../dashboard'), join(here(), '../../dashboard')].find((dir) =>
    existsSync(join(dir, 'index.html')),
  )
  if (assetRoot == null) throw new NotFoundError('the dashboard files are not installed')
  return readFile(join(assetRoot, file), 'utf8')
}

/** A file of an installed package (the chart library), wherever npm put it. */
async function dependency(path: string): Promise<string> {
  let file: string
  try {
    file = createRequire(import.meta.url).resolve(path)
  } catch {
    throw new NotFoundError(`${path} is not installed (npm install)`)
  }
  return readFile(file, 'utf8')
}

function here(): string {
  return fileURLToPath(new URL('.', import.meta.url))
}
