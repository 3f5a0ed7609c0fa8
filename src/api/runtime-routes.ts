import type { Hono } from 'hono'
import { stream, streamSSE } from 'hono/streaming'
import { z } from 'zod'
import type { ManagerCommand, ManagerStatus, RolloutView } from '../manager/index.js'
import type { ComponentStatus, Endpoint, RuntimeStatus } from '../runtime/index.js'
import { ShoalError } from '../shared/index.js'
import { type Caller, callerOf } from './auth.js'
import { jsonBody, parseBody } from './bodies.js'

const weightBody = z.strictObject({ weight: z.number().int().min(0).max(256) })

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
  /** `caller`: who asked, when the request carried a token (recorded as the rollout's requester). */
  startRollout(body: unknown, caller?: Caller | null): Promise<RolloutView>
  rollouts(): RolloutView[]
  command(command: ManagerCommand, caller?: Caller | null): Promise<RolloutView>
  manager(): ManagerStatus
}

const MAX_LOG_LINES = 10_000

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
  app.get('/api/components', (c) => c.json(api().status()))
  app.get('/api/components/:name', (c) => {
    const status = api().status()
    // During a make-before-break switch a component runs twice: the one of the target version is it.
    const named = status.components.filter((x) => x.name === c.req.param('name'))
    const found = named.find((x) => x.distribution === status.target) ?? named[0]
    if (found == null)
      throw new ShoalError('ERR_NOT_FOUND', `no component "${c.req.param('name')}" on this node`, 404)
    return c.json(found)
  })
  app.get('/api/components/:name/logs', async (c) => {
    const name = c.req.param('name')
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
  app.post('/api/components/:name/stop', async (c) => c.json(await api().stopComponent(c.req.param('name'))))
  app.post('/api/components/:name/start', async (c) =>
    c.json(await api().startComponent(c.req.param('name'))),
  )
  app.post('/api/components/:name/weight', async (c) => {
    const body = parseBody(weightBody, await jsonBody(c.req.raw, null))
    return c.json(await api().setWeight(c.req.param('name'), body.weight))
  })

  app.get('/api/services/:name', (c) => {
    const service = c.req.param('name')
    return c.json({ service, endpoints: api().services(service) })
  })
  app.get('/api/services/:name/events', (c) => {
    const service = c.req.param('name')
    return streamSSE(c, async (sse) => {
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
          // Wake on change, or every 15 s for a keep-alive comment that finds dead clients.
          await new Promise<void>((resolve) => {
            wake = resolve
            setTimeout(resolve, 15_000).unref()
          })
          wake = undefined
          if (!sse.aborted && JSON.stringify({ service, endpoints: api().services(service) }) === last)
            await sse.write(': keep-alive\n\n')
        }
      } finally {
        off()
      }
    })
  })

  app.post('/api/rollouts', async (c) => {
    const body = await c.req.json().catch(() => {
      throw new ShoalError('ERR_BAD_REQUEST', 'the body must be JSON {"distribution":"NAME@VERSION"}', 400)
    })
    return c.json(await api().startRollout(body, callerOf(c.req.raw)), 202)
  })
  app.get('/api/rollouts', (c) => c.json(api().rollouts()))
  for (const op of ['approve', 'pause', 'resume', 'abort'] as const)
    app.post(`/api/rollouts/:id/${op}`, async (c) =>
      c.json(await api().command({ op, id: c.req.param('id') }, callerOf(c.req.raw))),
    )
  app.post('/api/rollbacks', async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as Record<string, unknown>
    return c.json(
      await api().command({ ...body, op: 'rollback' } as ManagerCommand, callerOf(c.req.raw)),
      202,
    )
  })
  app.get('/api/manager', (c) => c.json(api().manager()))
  app.get('/api/rollouts/:id', (c) => {
    const found = api()
      .rollouts()
      .find((r) => r.id === c.req.param('id'))
    if (found == null) throw new ShoalError('ERR_NOT_FOUND', `no rollout ${c.req.param('id')}`, 404)
    return c.json(found)
  })
}
