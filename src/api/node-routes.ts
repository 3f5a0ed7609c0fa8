import type { Hono } from 'hono'

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
    const body = (await c.req.json().catch(() => ({}))) as Record<string, unknown>
    const count = body.count == null ? 1 : Number(body.count)
    return c.json(
      api().add({
        count,
        ...(typeof body.like === 'string' ? { like: body.like } : {}),
        ...(typeof body.provider === 'string' ? { provider: body.provider } : {}),
      }),
      202,
    )
  })
  app.post('/api/nodes/:id/copy', (c) => c.json(api().copy(c.req.param('id')), 202))
  app.post('/api/nodes/:id/remove', async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { force?: unknown }
    return c.json(api().remove(c.req.param('id'), body.force === true), 202)
  })
  app.get('/api/operations/:id', (c) => c.json(api().operation(c.req.param('id'))))
}
