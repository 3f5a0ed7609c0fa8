import type { Hono } from 'hono'
import { z } from 'zod'
import { NotFoundError } from '../shared/index.js'
import { MemberView, StatusView } from './schemas/cluster.js'
import { Health } from './schemas/common.js'
import { json, type Operation, serve, text } from './schemas/operation.js'
import type { ApiBackend } from './server.js'

export const AGENT_OPERATIONS = {
  health: {
    method: 'get',
    path: '/api/health',
    operationId: 'getHealth',
    summary: 'Liveness: the API answers',
    description: 'Open without a token, also when the agent runs with `--tokens`.',
    tag: 'meta',
    access: 'open',
    responses: { 200: json('The agent is up', Health) },
  },
  openapi: {
    method: 'get',
    path: '/api/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This document',
    tag: 'meta',
    responses: { 200: json('The OpenAPI 3.1 document', z.record(z.string(), z.unknown())) },
  },
  metrics: {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: "The agent's metrics in Prometheus' text format",
    description: 'Outside `/api`: not behind a token.',
    tag: 'meta',
    access: 'open',
    responses: { 200: text('Prometheus exposition format 0.0.4', 'text/plain', z.string()) },
    errors: { ERR_NOT_FOUND: 'This process exports no metrics' },
  },
  status: {
    method: 'get',
    path: '/api/status',
    operationId: 'getStatus',
    summary: 'This node, the manager, the active version, running rollouts (`shoal status --json`)',
    tag: 'cluster',
    responses: { 200: json('This agent as it sees itself', StatusView) },
  },
  members: {
    method: 'get',
    path: '/api/members',
    operationId: 'listMembers',
    summary: 'The membership view of this agent (`shoal members --json`)',
    tag: 'cluster',
    responses: { 200: json('Every member this agent knows, itself included', z.array(MemberView)) },
  },
} satisfies Record<string, Operation>

/**
 * This agent: `GET /api/health`, `/api/status`, `/api/members`, `/metrics`, and
 * `GET /api/openapi.json` (`document`).
 */
export function agentRoutes(app: Hono, backend: ApiBackend, document: object): void {
  serve(app, AGENT_OPERATIONS.openapi, (c) => c.json(document))
  serve(app, AGENT_OPERATIONS.metrics, async (c) => {
    if (backend.metrics == null) throw new NotFoundError('this process exports no metrics')
    return c.text(await backend.metrics(), 200, {
      'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
    })
  })
  serve(app, AGENT_OPERATIONS.health, (c) => c.json({ ok: true }))
  serve(app, AGENT_OPERATIONS.status, (c) => c.json(backend.status()))
  serve(app, AGENT_OPERATIONS.members, (c) => c.json(backend.members()))
}
