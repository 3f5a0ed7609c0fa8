import { z } from 'zod'
import { isoTime } from './common.js'

/**
 * Nodes through the infrastructure provider (docs/providers.md). The providers
 * folder sits above the API (it imports it), so these schemas are the contract:
 * `NodesApi` returns their types, and the agent's wiring of the providers'
 * NodeOperations into it (src/bootstrap) does not compile if they drift.
 */

export const NodeState = z
  .enum(['launching', 'joining', 'fetching', 'ready', 'draining', 'removing', 'gone', 'failed'])
  .meta({ id: 'NodeState' })

export const NodeRow = z
  .object({
    id: z.string().nullable().describe('Peer id (null while a launch has not told it)'),
    state: NodeState,
    member: z.string().nullable().describe('Its membership state, null while it has not joined'),
    provider: z.string().nullable(),
    handle: z.string().nullable().describe("The provider's handle (process, host, instance id)"),
    distribution: z.string().nullable(),
  })
  .meta({ id: 'NodeRow' })
export type NodeRow = z.output<typeof NodeRow>

export const AddNodesRequest = z
  .strictObject({
    count: z.number().int().min(1).max(100).default(1),
    like: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe('A member whose provider, roles and tags the new nodes take'),
    provider: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe("Default: the model's provider, else the agent's default (local)"),
  })
  .meta({ id: 'AddNodesRequest' })

export const RemoveNodeRequest = z
  .strictObject({
    force: z.boolean().default(false).describe('Terminate even if it cannot be retired in time'),
  })
  .meta({ id: 'RemoveNodeRequest' })

export const NodeOperation = z
  .object({
    id: z.string().meta({ examples: ['op-1a2b3c'] }),
    kind: z.enum(['add', 'copy', 'remove']),
    state: z.enum(['running', 'done', 'failed']),
    nodes: z.array(
      z.object({
        handle: z.string().nullable(),
        id: z.string().nullable(),
        state: NodeState,
        error: z.string().nullable(),
      }),
    ),
    steps: z
      .array(z.object({ at: isoTime(), text: z.string() }))
      .describe('What happened so far, oldest first'),
    error: z.string().nullable(),
    startedAt: isoTime(),
    finishedAt: isoTime().nullable(),
  })
  .meta({ id: 'NodeOperation' })
export type NodeOperation = z.output<typeof NodeOperation>
