import type { Hono } from 'hono'
import { stream, streamSSE } from 'hono/streaming'
import { z } from 'zod'
import type { ManagerCommand, ManagerStatus, RolloutView } from '../manager/index.js'
import type { ComponentStatus, Endpoint, RuntimeStatus } from '../runtime/index.js'
import { NotFoundError } from '../shared/index.js'
import { type Caller, callerOf } from './auth.js'
import { NO_MANAGER, segment } from './schemas/common.js'
import {
  ComponentStatus as ComponentStatusSchema,
  RuntimeStatus as RuntimeStatusSchema,
  ServiceEndpoints,
  Weight,
  WeightRequest,
} from './schemas/components.js'
import {
  type Errors,
  eventStream,
  json,
  jsonRequest,
  type Operation,
  serve,
  text,
} from './schemas/operation.js'
import {
  type FollowedState,
  ManagerStatus as ManagerStatusSchema,
  RollbackRequest,
  RolloutId,
  RolloutRequest,
  RolloutView as RolloutViewSchema,
} from './schemas/rollouts.js'

/** What the component, service and rollout endpoints need from the agent. */
export interface RuntimeApi {
  status(): RuntimeStatus
  logTail(name: string, lines: number): Promise<string[]>
  followLog(name: string, listener: (text: string) => void): Promise<() => void>
  stopComponent(name: string): Promise<ComponentStatus>
  startComponent(name: string): Promise<ComponentStatus>
  setWeight(name: string, weight: number): Promise<{ name: string; weight: number }>
  services(name: string): Endpoint[]
  /** Calls `listener` whenever membership or local components change. */
  onChange(listener: () => void): () => void
  /** Fetches the members' details when this node does not watch (ApiBackend.freshDetails). */
  freshDetails?(): Promise<void>
  /** `caller`: who asked, when the request carried a token (recorded as the rollout's requester). */
  startRollout(body: unknown, caller?: Caller | null): Promise<RolloutView>
  rollouts(): RolloutView[]
  command(command: ManagerCommand, caller?: Caller | null): Promise<RolloutView>
  /** The election as this node sees it, and the cluster state it follows. */
  manager(): ManagerStatus & FollowedState
}

const MAX_LOG_LINES = 10_000
/** An open service-events stream on a node that does not watch fetches the members' details this often. */
const DETAILS_EVERY_MS = 2000

const componentName = segment('Component name')
const serviceName = segment('Service name (a component provides its own name and what its descriptor lists)')
const NO_COMPONENT = { ERR_NOT_FOUND: 'No component of that name on this node' } as const

/** approve, pause, resume, abort: a command on one rollout, carried out by the manager. */
const control = (op: string, summary: string, extra: Errors = {}) =>
  ({
    method: 'post',
    path: `/api/rollouts/{id}/${op}`,
    operationId: `${op}Rollout`,
    summary,
    tag: 'rollouts',
    params: { id: RolloutId },
    responses: {
      200: json(op === 'abort' ? 'The rollout now (rolling-back)' : 'The rollout now', RolloutViewSchema),
    },
    errors: {
      ERR_BAD_REQUEST: 'Not a rollout id',
      ERR_NOT_FOUND: 'No such rollout',
      ERR_ROLLOUT_FINISHED: 'It has ended, or is rolling back',
      ...extra,
      ...NO_MANAGER,
    },
  }) satisfies Operation

export const RUNTIME_OPERATIONS = {
  runtime: {
    method: 'get',
    path: '/api/components',
    operationId: 'getRuntime',
    summary: "This node's runtime: active and target version, phase, components",
    tag: 'components',
    responses: { 200: json('The runtime', RuntimeStatusSchema) },
  },
  component: {
    method: 'get',
    path: '/api/components/{name}',
    operationId: 'getComponent',
    summary: 'One component on this node',
    tag: 'components',
    params: { name: componentName },
    responses: { 200: json('The component', ComponentStatusSchema) },
    errors: NO_COMPONENT,
  },
  logs: {
    method: 'get',
    path: '/api/components/{name}/logs',
    operationId: 'getComponentLogs',
    summary: "The tail of a component's log; with `follow=true` the connection stays open with new output",
    tag: 'components',
    params: { name: componentName },
    query: {
      lines: z
        .number()
        .int()
        .min(0)
        .max(MAX_LOG_LINES)
        .default(100)
        .describe(`Lines from the end (0–${MAX_LOG_LINES})`),
      follow: z
        .enum(['true', 'false'])
        .default('false')
        .describe('`true`: keep streaming what the component writes'),
    },
    responses: { 200: text('Log text', 'text/plain', z.string()) },
    errors: { ERR_NOT_FOUND: 'No component of that name has run on this node' },
  },
  stop: {
    method: 'post',
    path: '/api/components/{name}/stop',
    operationId: 'stopComponent',
    summary: 'Drain and stop a component, held stopped until start or the next switch',
    tag: 'components',
    params: { name: componentName },
    responses: { 200: json('Its state now', ComponentStatusSchema) },
    errors: NO_COMPONENT,
  },
  start: {
    method: 'post',
    path: '/api/components/{name}/start',
    operationId: 'startComponent',
    summary: 'Start a stopped (or failed) component afresh',
    tag: 'components',
    params: { name: componentName },
    responses: { 200: json('Its state now', ComponentStatusSchema) },
    errors: NO_COMPONENT,
  },
  weight: {
    method: 'post',
    path: '/api/components/{name}/weight',
    operationId: 'setComponentWeight',
    summary: 'Set the share of load-balanced traffic a component here gets',
    tag: 'components',
    params: { name: componentName },
    body: jsonRequest(WeightRequest),
    responses: { 200: json('The weight set', Weight) },
    errors: { ERR_BAD_REQUEST: 'Not JSON, or not a whole number from 0 to 256', ...NO_COMPONENT },
  },
  service: {
    method: 'get',
    path: '/api/services/{name}',
    operationId: 'getService',
    summary: 'Ready endpoints of a service across the cluster, this node first',
    tag: 'components',
    params: { name: serviceName },
    responses: { 200: json('Possibly none', ServiceEndpoints) },
  },
  serviceEvents: {
    method: 'get',
    path: '/api/services/{name}/events',
    operationId: 'streamService',
    summary: 'The endpoints of a service as server-sent events, on connect and at every change',
    tag: 'components',
    params: { name: serviceName },
    responses: {
      200: eventStream(
        '`event: endpoints` whose `data` is ServiceEndpoints (JSON), at once and on change; a ' +
          '`: keep-alive` comment every 15 s.',
        z.string(),
        { endpoints: ServiceEndpoints },
      ),
    },
  },
  rollouts: {
    method: 'get',
    path: '/api/rollouts',
    operationId: 'listRollouts',
    summary: 'Rollouts and rollbacks, newest first, with per-node progress',
    tag: 'rollouts',
    responses: { 200: json('The audit trail the cluster state keeps', z.array(RolloutViewSchema)) },
  },
  startRollout: {
    method: 'post',
    path: '/api/rollouts',
    operationId: 'startRollout',
    summary: 'Move the cluster (or some nodes) to a version, through the manager',
    tag: 'rollouts',
    body: jsonRequest(RolloutRequest),
    responses: { 202: json('Started; follow it with GET /api/rollouts/{id}', RolloutViewSchema) },
    errors: {
      ERR_BAD_REQUEST: 'Not JSON, or a field breaks the schema',
      ERR_BAD_ANALYSIS: 'An analysis condition, `steps` or an analysis option the manager cannot use',
      ERR_MANIFEST_INVALID: 'The version breaks the distribution rules (its placement, say)',
      ERR_UNKNOWN_DISTRIBUTION: 'The version is not known here, or to the manager',
      ERR_UNKNOWN_NODE: '`nodes` names a member the cluster does not have',
      ERR_VERSION_UNPUBLISHED: 'The version was unpublished',
      ...NO_MANAGER,
    },
  },
  rollout: {
    method: 'get',
    path: '/api/rollouts/{id}',
    operationId: 'getRollout',
    summary: 'One rollout or rollback',
    tag: 'rollouts',
    params: { id: segment() },
    responses: { 200: json('The rollout', RolloutViewSchema) },
    errors: { ERR_NOT_FOUND: 'No such rollout' },
  },
  approve: control(
    'approve',
    'Let a rollout waiting for approval (or paused on an inconclusive verdict) go on',
    {
      ERR_NOT_WAITING: 'It is not waiting for approval',
    },
  ),
  pause: control('pause', 'Hold a rollout where it is'),
  resume: control('resume', 'Go on with a paused rollout', { ERR_NOT_PAUSED: 'It is not paused' }),
  abort: control('abort', 'Stop a rollout and send every node it moved back'),
  rollback: {
    method: 'post',
    path: '/api/rollbacks',
    operationId: 'rollback',
    summary: 'A rollout to an earlier version of a distribution (nothing is downloaded)',
    tag: 'rollouts',
    body: jsonRequest(RollbackRequest),
    responses: { 202: json('Started', RolloutViewSchema) },
    errors: {
      ERR_BAD_REQUEST: 'Not JSON, or a field breaks the schema',
      ERR_UNKNOWN_DISTRIBUTION: 'The version to go back to is not known to the manager',
      ERR_UNKNOWN_NODE: '`nodes` names a member the cluster does not have',
      ERR_NO_PREVIOUS: 'No earlier version to go back to',
      ERR_ALREADY_RUNNING: 'Every node already runs the version to go back to',
      ERR_VERSION_UNPUBLISHED: 'The version to go back to was unpublished',
      ...NO_MANAGER,
    },
  },
  manager: {
    method: 'get',
    path: '/api/manager',
    operationId: 'getManager',
    summary: 'The election as this node sees it, and the cluster state it follows',
    tag: 'rollouts',
    responses: { 200: json('Manager, term, quorum, voters, placement', ManagerStatusSchema) },
  },
} satisfies Record<string, Operation>

/**
 * - `GET /api/components`: this node's runtime (active/target version, phase, components);
 * - `GET /api/components/:name/logs?lines=N&follow=true`: the log tail as text, then new output;
 * - `POST /api/components/:name/stop|start`: hold a component stopped, or start it afresh;
 * - `POST /api/components/:name/weight {weight}`: its share of load-balanced traffic (0–256);
 * - `GET /api/services/:name`: ready endpoints across the cluster, this node's first;
 * - `GET /api/services/:name/events`: the same as server-sent events, on connect and on change;
 * - `POST /api/rollouts {distribution, strategy, maxUnavailable, canaryPercent, approve, minReadyMs,
 *   failureThreshold, autoRollback, nodes}`, `GET /api/rollouts`, `GET /api/rollouts/:id`,
 *   `POST /api/rollouts/:id/approve|pause|resume|abort`, `POST /api/rollbacks {name, to?, ...}`;
 * - `GET /api/manager`: the election as this node sees it (manager, term, quorum, voters).
 */
export function runtimeRoutes(app: Hono, api: () => RuntimeApi): void {
  const ops = RUNTIME_OPERATIONS
  serve(app, ops.runtime, (c) => c.json(api().status()))
  serve(app, ops.component, (c, { params }) => {
    const status = api().status()
    // During a make-before-break switch a component runs twice: the one of the target version is it.
    const named = status.components.filter((x) => x.name === params.name)
    const found = named.find((x) => x.distribution === status.target) ?? named[0]
    if (found == null) throw new NotFoundError(`no component "${params.name}" on this node`)
    return c.json(found)
  })
  serve(app, ops.logs, async (c, { params: { name } }) => {
    const lines = Math.min(MAX_LOG_LINES, Math.max(0, Number(c.req.query('lines') ?? 100) || 0))
    const tail = await api().logTail(name, lines)
    const text = tail.length === 0 ? '' : `${tail.join('\n')}\n`
    if (c.req.query('follow') !== 'true') return c.text(text)
    c.header('Content-Type', 'text/plain; charset=utf-8')
    return stream(c, async (out) => {
      const pending: string[] = []
      let wake: (() => void) | undefined
      const off = await api().followLog(name, (chunk) => {
        pending.push(chunk)
        wake?.()
      })
      out.onAbort(() => {
        off()
        wake?.()
      })
      try {
        await out.write(text)
        while (!out.aborted) {
          if (pending.length === 0) await new Promise<void>((resolve) => (wake = resolve))
          wake = undefined
          if (pending.length > 0) await out.write(pending.splice(0).join(''))
        }
      } finally {
        off()
      }
    })
  })
  serve(app, ops.stop, async (c, { params }) => c.json(await api().stopComponent(params.name)))
  serve(app, ops.start, async (c, { params }) => c.json(await api().startComponent(params.name)))
  serve(app, ops.weight, async (c, { params, body }) =>
    c.json(await api().setWeight(params.name, body.weight)),
  )

  serve(app, ops.service, (c, { params: { name: service } }) =>
    c.json({ service, endpoints: api().services(service) }),
  )
  serve(app, ops.serviceEvents, (c, { params: { name: service } }) =>
    streamSSE(c, async (sse) => {
      let last = ''
      let wake: (() => void) | undefined
      const off = api().onChange(() => wake?.())
      sse.onAbort(() => {
        off()
        wake?.()
      })
      try {
        while (!sse.aborted) {
          const data = JSON.stringify({ service, endpoints: api().services(service) })
          if (data !== last) {
            last = data
            await sse.writeSSE({ event: 'endpoints', data })
          }
          // Wake on change, or every 15 s for a keep-alive comment that finds dead clients; a
          // node that does not watch fetches the members' details every 2 s meanwhile.
          for (let waited = 0; waited < 15_000 && !sse.aborted; waited += DETAILS_EVERY_MS) {
            const woke = await new Promise<boolean>((resolve) => {
              wake = () => resolve(true)
              setTimeout(() => resolve(false), DETAILS_EVERY_MS).unref()
            })
            wake = undefined
            if (woke) break
            await api().freshDetails?.()
            if (JSON.stringify({ service, endpoints: api().services(service) }) !== last) break
          }
          if (!sse.aborted && JSON.stringify({ service, endpoints: api().services(service) }) === last)
            await sse.write(': keep-alive\n\n')
        }
      } finally {
        off()
      }
    }),
  )

  serve(app, ops.startRollout, async (c, { body }) =>
    c.json(await api().startRollout(body, callerOf(c.req.raw)), 202),
  )
  serve(app, ops.rollouts, (c) => c.json(api().rollouts()))
  for (const op of ['approve', 'pause', 'resume', 'abort'] as const)
    serve(app, ops[op], async (c, { params }) =>
      c.json(await api().command({ op, id: params.id }, callerOf(c.req.raw))),
    )
  serve(app, ops.rollback, async (c, { body }) =>
    c.json(await api().command({ ...body, op: 'rollback' }, callerOf(c.req.raw)), 202),
  )
  serve(app, ops.manager, (c) => c.json(api().manager()))
  serve(app, ops.rollout, (c, { params }) => {
    const found = api()
      .rollouts()
      .find((r) => r.id === params.id)
    if (found == null) throw new NotFoundError(`no rollout ${params.id}`)
    return c.json(found)
  })
}
