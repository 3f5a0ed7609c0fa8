import type { Hono } from 'hono'
import { z } from 'zod'
import { jsonBody, parseBody } from './bodies.js'

const addBody = z.strictObject({
  count: z.number().int().min(1).max(100).default(1),
  like: z.string().min(1).max(200).optional(),
  provider: z.string().min(1).max(100).optional(),
})
const removeBody = z.strictObject({ force: z.boolean().default(false) })

function pick<T extends object, K extends keyof T>(body: T, key: K): Partial<Pick<T, K>> {
  return body[key] == null ? {} : ({ [key]: body[key] } as Partial<Pick<T, K>>)
}

export interface NodesApi {
  nodes(): unknown[]
  add(body: { count: number; like?: string; provider?: string }): unknown
  copy(id: string): unknown
  remove(id: string, force: boolean): unknown
  operation(id: string): unknown
}

/**
 * Nodes through the infrastructure provider (docs/providers.md):
 * - `GET /api/nodes`: members with their provider state, and nodes still launching;
 * - `POST /api/nodes {count, like?, provider?}`: launch nodes (202, an operation);
 * - `POST /api/nodes/:id/copy`: one more node like `id`;
 * - `POST /api/nodes/:id/remove {force?}`: drain, leave, terminate;
 * - `GET /api/operations/:id`: an operation's progress.
 */
export function nodeRoutes(app: Hono, api: () => NodesApi): void {
  app.get('/api/nodes', (c) => c.json(api().nodes()))
  app.post('/api/nodes', async (c) => {
    const body = parseBody(addBody, await jsonBody(c.req.raw))
    return c.json(api().add({ count: body.count, ...pick(body, 'like'), ...pick(body, 'provider') }), 202)
  })
  app.post('/api/nodes/:id/copy', (c) => c.json(api().copy(c.req.param('id')), 202))
  app.post('/api/nodes/:id/remove', async (c) => {
    const body = parseBody(removeBody, await jsonBody(c.req.raw, {}))
    return c.json(api().remove(c.req.param('id'), body.force), 202)
  })
  app.get('/api/operations/:id', (c) => c.json(api().operation(c.req.param('id'))))
}
