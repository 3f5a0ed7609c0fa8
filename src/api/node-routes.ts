import type { Hono } from 'hono'
import { z } from 'zod'
import { segment } from './schemas/common.js'
import { AddNodesRequest, NodeOperation, NodeRow, RemoveNodeRequest } from './schemas/nodes.js'
import { json, jsonRequest, type Operation, serve } from './schemas/operation.js'

function pick<T extends object, K extends keyof T>(body: T, key: K): Partial<Pick<T, K>> {
  return body[key] == null ? {} : ({ [key]: body[key] } as Partial<Pick<T, K>>)
}

/** What the node endpoints need from the agent (its NodeOperations); typed by the schemas they answer with. */
export interface NodesApi {
  nodes(): NodeRow[]
  add(body: { count: number; like?: string; provider?: string }): NodeOperation
  copy(id: string): NodeOperation
  remove(id: string, force: boolean): NodeOperation
  operation(id: string): NodeOperation
}

const nodeId = segment('A member: its full peer id or a unique end of it')
const NO_SUCH_MEMBER = { ERR_NOT_FOUND: 'No such member' } as const
const AMBIGUOUS = { ERR_AMBIGUOUS: 'It matches several members' } as const

export const NODE_OPERATIONS = {
  list: {
    method: 'get',
    path: '/api/nodes',
    operationId: 'listNodes',
    summary: 'Members with their provider state, and nodes still launching',
    tag: 'nodes',
    responses: { 200: json('Observers (load balancers) are left out', z.array(NodeRow)) },
  },
  add: {
    method: 'post',
    path: '/api/nodes',
    operationId: 'addNodes',
    summary: 'Launch nodes through a provider',
    tag: 'nodes',
    body: jsonRequest(AddNodesRequest),
    responses: { 202: json('Launching; follow it with GET /api/operations/{id}', NodeOperation) },
    errors: {
      ERR_BAD_REQUEST: 'Not JSON, or a bad count',
      ERR_UNKNOWN_PROVIDER: 'No such provider on this agent',
      ...AMBIGUOUS,
      ERR_NOT_FOUND: '`like` names no member',
    },
  },
  copy: {
    method: 'post',
    path: '/api/nodes/{id}/copy',
    operationId: 'copyNode',
    summary: 'One more node like this member (its provider, roles and tags)',
    tag: 'nodes',
    params: { id: nodeId },
    responses: { 202: json('Launching', NodeOperation) },
    errors: {
      ERR_UNKNOWN_PROVIDER: 'Its provider is missing on this agent',
      ...AMBIGUOUS,
      ...NO_SUCH_MEMBER,
    },
  },
  remove: {
    method: 'post',
    path: '/api/nodes/{id}/remove',
    operationId: 'removeNode',
    summary: 'Drain a member, have it leave, terminate it through its provider',
    tag: 'nodes',
    params: { id: nodeId },
    body: jsonRequest(RemoveNodeRequest, {}),
    responses: { 202: json('Removing', NodeOperation) },
    errors: {
      ERR_BAD_REQUEST: 'Not JSON, or the agent asked is the one to remove',
      ERR_UNKNOWN_PROVIDER: 'Its provider is missing on this agent',
      ...AMBIGUOUS,
      ...NO_SUCH_MEMBER,
    },
  },
  operation: {
    method: 'get',
    path: '/api/operations/{id}',
    operationId: 'getOperation',
    summary: "A node operation's steps and state (kept for the last 50 on the agent that ran it)",
    tag: 'nodes',
    params: { id: segment().meta({ examples: ['op-1a2b3c'] }) },
    responses: { 200: json('The operation', NodeOperation) },
    errors: { ERR_NOT_FOUND: 'No such operation on this agent' },
  },
} satisfies Record<string, Operation>

/**
 * Nodes through the infrastructure provider (docs/providers.md):
 * - `GET /api/nodes`: members with their provider state, and nodes still launching;
 * - `POST /api/nodes {count, like?, provider?}`: launch nodes (202, an operation);
 * - `POST /api/nodes/:id/copy`: one more node like `id`;
 * - `POST /api/nodes/:id/remove {force?}`: drain, leave, terminate;
 * - `GET /api/operations/:id`: an operation's progress.
 */
export function nodeRoutes(app: Hono, api: () => NodesApi): void {
  serve(app, NODE_OPERATIONS.list, (c) => c.json(api().nodes()))
  serve(app, NODE_OPERATIONS.add, (c, { body }) =>
    c.json(api().add({ count: body.count, ...pick(body, 'like'), ...pick(body, 'provider') }), 202),
  )
  serve(app, NODE_OPERATIONS.copy, (c, { params }) => c.json(api().copy(params.id), 202))
  serve(app, NODE_OPERATIONS.remove, (c, { params, body }) =>
    c.json(api().remove(params.id, body.force), 202),
  )
  serve(app, NODE_OPERATIONS.operation, (c, { params }) => c.json(api().operation(params.id)))
}
