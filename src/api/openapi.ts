import type { Role } from './auth.js'

/**
 * The OpenAPI 3.1 document of the admin API, served at `/api/openapi.json`.
 * Written by hand (docs/api.md), kept true by test/integration/openapi.test.ts:
 * every route of `createApiApp` is here and everything here is a route, each
 * mutating operation's `x-shoal-roles` equals what `rolesFor` (src/api/auth.ts)
 * allows, and a real agent's answers fit the documented statuses and schemas.
 */

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }
type Schema = { readonly [key: string]: Json }

interface Operation {
  operationId: string
  summary: string
  description?: string
  tags: readonly string[]
  parameters?: readonly Json[]
  requestBody?: Json
  responses: { readonly [status: string]: Json }
  /** Only for operations open without a token (`[]`). */
  security?: readonly Json[]
  /** The roles that may call a mutating operation (GET and HEAD are open to every role). */
  'x-shoal-roles'?: readonly Role[]
}

export type OpenApiMethod = 'get' | 'head' | 'post' | 'delete'
export type OpenApiPathItem = Partial<Record<OpenApiMethod, Operation>>

export interface OpenApiDocument {
  openapi: '3.1.0'
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } }
  tags: ReadonlyArray<{ name: string; description: string }>
  security: readonly Json[]
  paths: { readonly [path: string]: OpenApiPathItem }
  components: {
    securitySchemes: { readonly [name: string]: Json }
    parameters: { readonly [name: string]: Json }
    responses: { readonly [name: string]: Json }
    schemas: { readonly [name: string]: Schema }
  }
}

// --- helpers: references and the shapes every operation repeats ----------------------------

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const param = (name: string): Json => ({ $ref: `#/components/parameters/${name}` })
const response = (name: string): Json => ({ $ref: `#/components/responses/${name}` })
const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, 'null'], ...extra })
const arrayOf = (items: Schema): Schema => ({ type: 'array', items })
const json = (description: string, schema: Schema): Json => ({
  description,
  content: { 'application/json': { schema } },
})
const jsonBody = (schema: Schema, required = true): Json => ({
  required,
  content: { 'application/json': { schema } },
})

/** 401 and 403 on every operation behind a token. */
const denied = { '401': response('Unauthorized'), '403': response('Forbidden') } as const
/** A command the manager carries out: a bad body, an unknown id, a state that forbids it, no manager. */
const managerErrors = {
  '400': response('BadRequest'),
  '404': response('NotFound'),
  '409': response('Conflict'),
  '503': response('NoQuorum'),
}

/** How a rollout or rollback moves nodes (docs/manager.md): the fields both requests take. */
const ROLLOUT_OPTIONS: Record<string, Schema> = {
  strategy: { ...ref('RolloutStrategy'), default: 'all-at-once' },
  maxUnavailable: {
    type: 'integer',
    minimum: 1,
    description: 'rolling: nodes out of rotation at once (default 1)',
  },
  maxUnavailablePercent: {
    type: 'number',
    minimum: 1,
    maximum: 100,
    description: 'rolling: the same, as a share of the nodes',
  },
  canaryPercent: {
    type: 'number',
    minimum: 1,
    maximum: 100,
    description: 'canary: share of nodes first (default 20)',
  },
  approve: {
    type: 'string',
    enum: ['manual', 'auto'],
    description: 'canary: wait for approve (manual, default) or not',
  },
  minReadyMs: {
    type: 'integer',
    minimum: 0,
    maximum: 3_600_000,
    description: 'A switched node stays ready this long (default 1000)',
  },
  failureThreshold: {
    type: 'integer',
    minimum: 1,
    description: 'Failed nodes that stop it (default 1)',
  },
  progressDeadlineMs: {
    type: 'integer',
    minimum: 1000,
    maximum: 86_400_000,
    description: "A node's switch not done this long after its turn came fails (default 600000)",
  },
  autoRollback: { type: 'boolean', default: true },
  nodes: {
    ...arrayOf({ type: 'string' }),
    description: 'Limit it to these members; empty: every node',
  },
}

// --- the document ----------------------------------------------------------------------------

export const OPENAPI_DOCUMENT: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Shoal admin API',
    version: '0.1.0',
    description:
      'Served by every agent on its API address (`--api`, default 127.0.0.1:7070). JSON in and out ' +
      'except where noted; errors are `{"error":{"code","message"}}` with a stable code. The `shoal` ' +
      'CLI is a client of this API. See docs/api.md.',
    license: { name: 'MIT', identifier: 'MIT' },
  },
  tags: [
    { name: 'cluster', description: 'This agent, the members it sees, the dashboard feed' },
    {
      name: 'distributions',
      description: 'Artifacts and signed distribution versions (docs/distributions.md)',
    },
    {
      name: 'components',
      description: 'The components this node runs, and service discovery (docs/components.md)',
    },
    { name: 'rollouts', description: 'Rollouts, rollbacks and the manager (docs/manager.md)' },
    { name: 'nodes', description: 'Nodes through the infrastructure provider (docs/providers.md)' },
    { name: 'meta', description: 'Health, metrics and this document' },
  ],
  security: [{ bearer: [] }],
  paths: {
    // --- meta ---------------------------------------------------------------------------
    '/api/health': {
      get: {
        operationId: 'getHealth',
        summary: 'Liveness: the API answers',
        description: 'Open without a token, also when the agent runs with `--tokens`.',
        tags: ['meta'],
        security: [],
        responses: { '200': json('The agent is up', ref('Health')) },
      },
    },
    '/api/openapi.json': {
      get: {
        operationId: 'getOpenApi',
        summary: 'This document',
        tags: ['meta'],
        responses: {
          '200': json('The OpenAPI 3.1 document', { type: 'object' }),
          ...denied,
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        summary: "The agent's metrics in Prometheus' text format",
        description: 'Outside `/api`: not behind a token. 404 when the process exports no metrics.',
        tags: ['meta'],
        security: [],
        responses: {
          '200': {
            description: 'Prometheus exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          '404': response('NotFound'),
        },
      },
    },
    '/releases/{token}': {
      get: {
        operationId: 'getRelease',
        summary: "This agent's Shoal release tarball, for a node it launched",
        description:
          'Outside `/api`: no API token; the signed, expiring token in the path is the credential (docs/cloud-init.md).',
        tags: ['nodes'],
        security: [],
        parameters: [{ name: 'token', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': {
            description: 'The release in npm pack format; header X-Shoal-Sha256 has its hash',
            content: { 'application/gzip': { schema: { type: 'string' } } },
          },
          '403': json('Not signed by this agent, or altered (`ERR_RELEASE_URL_SIGNATURE`)', ref('Error')),
          '404': response('NotFound'),
          '410': json('Expired (`ERR_RELEASE_URL_EXPIRED`)', ref('Error')),
        },
      },
    },

    // --- cluster ------------------------------------------------------------------------
    '/api/status': {
      get: {
        operationId: 'getStatus',
        summary: 'This node, the manager, the active version, running rollouts (`shoal status --json`)',
        tags: ['cluster'],
        responses: { '200': json('This agent as it sees itself', ref('StatusView')), ...denied },
      },
    },
    '/api/members': {
      get: {
        operationId: 'listMembers',
        summary: 'The membership view of this agent (`shoal members --json`)',
        tags: ['cluster'],
        responses: {
          '200': json('Every member this agent knows, itself included', arrayOf(ref('MemberView'))),
          ...denied,
        },
      },
    },
    '/api/events': {
      get: {
        operationId: 'streamEvents',
        summary: 'The dashboard feed: a `snapshot` event on connect and at every change (server-sent events)',
        tags: ['cluster'],
        responses: {
          '200': {
            description:
              'A stream of `event: snapshot` whose `data` is a Snapshot (JSON), sent on connect and whenever ' +
              'anything in it changes (looked at on every membership, runtime or audit event, and every ' +
              'second); a `: keep-alive` comment after 15 s without one.',
            content: {
              'text/event-stream': {
                schema: { type: 'string' },
                'x-shoal-events': { snapshot: ref('Snapshot') },
              },
            },
          },
          ...denied,
        },
      },
    },
    '/api/lb': {
      get: {
        operationId: 'listLoadBalancers',
        summary: 'The load balancers in the membership and the backends each one reports',
        tags: ['cluster'],
        responses: {
          '200': json('One entry per load balancer member', arrayOf(ref('LoadBalancerView'))),
          ...denied,
        },
      },
    },
    '/api/audit': {
      get: {
        operationId: 'listAudit',
        summary: 'The mutating requests this agent served, refusals included (the last 500, in memory)',
        description:
          'Per agent and since its start. Who started each rollout is also kept, cluster-wide and durably, ' +
          'in the rollout records (`requestedBy`, GET /api/rollouts).',
        tags: ['cluster'],
        responses: { '200': json('Newest last', arrayOf(ref('AuditEntry'))), ...denied },
      },
    },

    // --- distributions -----------------------------------------------------------------
    '/api/artifacts': {
      post: {
        operationId: 'uploadArtifact',
        summary: 'Upload one artifact (streamed to disk, kept only if it hashes to `sha256`)',
        tags: ['distributions'],
        'x-shoal-roles': ['developer', 'admin'],
        parameters: [
          {
            name: 'sha256',
            in: 'query',
            required: true,
            description: 'The sha256 of the body, 64 lowercase hex digits',
            schema: ref('Sha256'),
          },
        ],
        requestBody: {
          required: true,
          content: {
            'application/octet-stream': {
              schema: { type: 'string', contentMediaType: 'application/octet-stream' },
            },
          },
        },
        responses: {
          '200': json('Already held', ref('ArtifactUploaded')),
          '201': json('Stored', ref('ArtifactUploaded')),
          '400': response('BadRequest'),
          ...denied,
          '413': json('Larger than the agent accepts (`ERR_ARTIFACT_TOO_LARGE`)', ref('Error')),
          '422': json(
            'The bytes do not hash to `sha256`, or it is no sha256 (`ERR_ARTIFACT_CORRUPT`)',
            ref('Error'),
          ),
        },
      },
    },
    '/api/artifacts/{sha256}': {
      get: {
        operationId: 'getArtifact',
        summary: 'Whether this agent holds an artifact (`shoal publish` skips what is there)',
        tags: ['distributions'],
        parameters: [param('Sha256')],
        responses: { '200': json('Held here', ref('ArtifactHeld')), ...denied, '404': response('NotFound') },
      },
      head: {
        operationId: 'headArtifact',
        summary: 'As GET, without a body',
        tags: ['distributions'],
        parameters: [param('Sha256')],
        responses: {
          '200': { description: 'Held here' },
          ...denied,
          '404': { description: 'Not held here' },
        },
      },
    },
    '/api/distributions': {
      get: {
        operationId: 'listDistributions',
        summary: 'Every version this agent knows (`shoal distributions --json`)',
        tags: ['distributions'],
        responses: { '200': json('Oldest first', arrayOf(ref('DistributionView'))), ...denied },
      },
      post: {
        operationId: 'publishDistribution',
        summary: 'Publish a signed manifest whose artifacts this agent holds (`shoal publish`)',
        tags: ['distributions'],
        'x-shoal-roles': ['developer', 'admin'],
        requestBody: jsonBody(ref('SignedManifest')),
        responses: {
          '200': json('The same content was already published under this version', ref('PublishResult')),
          '201': json('Added, and announced to the cluster', ref('PublishResult')),
          '400': json('Not JSON, or the manifest breaks the schema (`ERR_MANIFEST_INVALID`)', ref('Error')),
          '401': response('Unauthorized'),
          '403': json(
            'The role may not publish (`ERR_FORBIDDEN`), or the manifest is unsigned, signed by an untrusted ' +
              'key or altered (`ERR_MANIFEST_SIGNATURE`): tell them apart by the code',
            ref('Error'),
          ),
          '409': json(
            'An artifact is not on this agent (`ERR_ARTIFACT_MISSING`) or the version exists with other ' +
              'content (`ERR_VERSION_EXISTS`)',
            ref('Error'),
          ),
          '413': json('Manifest larger than 64 MiB (`ERR_MANIFEST_INVALID`)', ref('Error')),
        },
      },
    },
    '/api/publish': {
      post: {
        operationId: 'publishUpload',
        summary:
          "The dashboard's publish form: upload a release folder and a key; the agent runs `shoal publish`",
        description:
          'The agent signs with the uploaded key (read from the request only, never written or logged) and ' +
          'publishes as `shoal publish` does (the same rules, checked before anything is stored), straight ' +
          'into its own store: only the artifacts it lacks are kept. Up to 512 MiB; larger releases go ' +
          'through `shoal publish`.',
        tags: ['distributions'],
        'x-shoal-roles': ['developer', 'admin'],
        requestBody: {
          required: true,
          content: { 'multipart/form-data': { schema: ref('PublishForm') } },
        },
        responses: {
          '200': json(
            'The same content was already published under this version',
            ref('PublishUploadResult'),
          ),
          '201': json('Published', ref('PublishUploadResult')),
          '400': json(
            'A field is missing, a file path leaves the folder, or the release is invalid (`ERR_BAD_REQUEST`, ' +
              '`ERR_MANIFEST_INVALID`, `ERR_KEY_INVALID`)',
            ref('Error'),
          ),
          '401': response('Unauthorized'),
          '403': json(
            'The role may not publish (`ERR_FORBIDDEN`), or the key is not trusted (`ERR_MANIFEST_SIGNATURE`)',
            ref('Error'),
          ),
          '409': json('The version exists with other content (`ERR_VERSION_EXISTS`)', ref('Error')),
          '413': json('Larger than 512 MiB (`ERR_TOO_LARGE`)', ref('Error')),
        },
      },
    },
    '/api/distributions/{name}': {
      get: {
        operationId: 'getDistributionHistory',
        summary: 'The versions of one distribution, with the rollouts that moved the cluster to each',
        tags: ['distributions'],
        parameters: [param('DistributionName')],
        responses: {
          '200': json('Oldest first', arrayOf(ref('DistributionHistoryEntry'))),
          ...denied,
          '404': json('No version of it is known (`ERR_UNKNOWN_DISTRIBUTION`)', ref('Error')),
        },
      },
    },
    '/api/distributions/{name}/{version}': {
      get: {
        operationId: 'getDistribution',
        summary: 'One version with its signed manifest and where its bytes came from',
        tags: ['distributions'],
        parameters: [param('DistributionName'), param('DistributionVersion')],
        responses: {
          '200': json('The version', ref('DistributionDetail')),
          ...denied,
          '404': json('Unknown here (`ERR_UNKNOWN_DISTRIBUTION`)', ref('Error')),
        },
      },
      delete: {
        operationId: 'unpublishDistribution',
        summary: 'Unpublish a version never rolled out, from every agent (`shoal unpublish NAME@VERSION`)',
        description:
          'The manager records it in the cluster state (who and when); every agent drops it and the blobs ' +
          'no other version uses, frees its retention slot, and refuses to publish or fetch it again ' +
          '(`ERR_VERSION_UNPUBLISHED`). Refused for a version that runs or is being installed on a node, ' +
          'that the cluster wants, or that a rollout or rollback in the history moved to or from (kept for ' +
          'rollback). Repeating it answers `already-unpublished`.',
        tags: ['distributions'],
        'x-shoal-roles': ['developer', 'admin'],
        parameters: [param('DistributionName'), param('DistributionVersion')],
        responses: {
          '200': json('Unpublished: every agent drops it', ref('UnpublishResult')),
          '400': json('Not a distribution name and version (`ERR_BAD_REQUEST`)', ref('Error')),
          ...denied,
          '404': json('The manager does not know it (`ERR_UNKNOWN_DISTRIBUTION`)', ref('Error')),
          '409': json(
            'It runs, is wanted or is kept for rollback (`ERR_VERSION_IN_USE`); the message says where',
            ref('Error'),
          ),
          '503': response('NoQuorum'),
        },
      },
    },
    '/api/verify': {
      post: {
        operationId: 'verifyStore',
        summary: 'Re-hash every artifact this agent holds; corrupt ones are removed and fetched again',
        tags: ['distributions'],
        'x-shoal-roles': ['admin'],
        responses: { '200': json('What was checked', ref('VerifyResult')), ...denied },
      },
    },

    // --- components and services -------------------------------------------------------
    '/api/components': {
      get: {
        operationId: 'getRuntime',
        summary: "This node's runtime: active and target version, phase, components",
        tags: ['components'],
        responses: { '200': json('The runtime', ref('RuntimeStatus')), ...denied },
      },
    },
    '/api/components/{name}': {
      get: {
        operationId: 'getComponent',
        summary: 'One component on this node',
        tags: ['components'],
        parameters: [param('ComponentName')],
        responses: {
          '200': json('The component', ref('ComponentStatus')),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/components/{name}/logs': {
      get: {
        operationId: 'getComponentLogs',
        summary:
          "The tail of a component's log; with `follow=true` the connection stays open with new output",
        tags: ['components'],
        parameters: [
          param('ComponentName'),
          {
            name: 'lines',
            in: 'query',
            description: 'Lines from the end (0–10000)',
            schema: { type: 'integer', minimum: 0, maximum: 10_000, default: 100 },
          },
          {
            name: 'follow',
            in: 'query',
            description: '`true`: keep streaming what the component writes',
            schema: { type: 'string', enum: ['true', 'false'], default: 'false' },
          },
        ],
        responses: {
          '200': { description: 'Log text', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...denied,
          '404': json('No component of that name has run on this node', ref('Error')),
        },
      },
    },
    '/api/components/{name}/stop': {
      post: {
        operationId: 'stopComponent',
        summary: 'Drain and stop a component, held stopped until start or the next switch',
        tags: ['components'],
        'x-shoal-roles': ['admin'],
        parameters: [param('ComponentName')],
        responses: {
          '200': json('Its state now', ref('ComponentStatus')),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/components/{name}/start': {
      post: {
        operationId: 'startComponent',
        summary: 'Start a stopped (or failed) component afresh',
        tags: ['components'],
        'x-shoal-roles': ['admin'],
        parameters: [param('ComponentName')],
        responses: {
          '200': json('Its state now', ref('ComponentStatus')),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/components/{name}/weight': {
      post: {
        operationId: 'setComponentWeight',
        summary: 'Set the share of load-balanced traffic a component here gets',
        tags: ['components'],
        'x-shoal-roles': ['admin'],
        parameters: [param('ComponentName')],
        requestBody: jsonBody(ref('WeightRequest')),
        responses: {
          '200': json('The weight set', ref('Weight')),
          '400': response('BadRequest'),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/services/{name}': {
      get: {
        operationId: 'getService',
        summary: 'Ready endpoints of a service across the cluster, this node first',
        tags: ['components'],
        parameters: [param('ServiceName')],
        responses: { '200': json('Possibly none', ref('ServiceEndpoints')), ...denied },
      },
    },
    '/api/services/{name}/events': {
      get: {
        operationId: 'streamService',
        summary: 'The endpoints of a service as server-sent events, on connect and at every change',
        tags: ['components'],
        parameters: [param('ServiceName')],
        responses: {
          '200': {
            description:
              '`event: endpoints` whose `data` is ServiceEndpoints (JSON), at once and on change; a ' +
              '`: keep-alive` comment every 15 s.',
            content: {
              'text/event-stream': {
                schema: { type: 'string' },
                'x-shoal-events': { endpoints: ref('ServiceEndpoints') },
              },
            },
          },
          ...denied,
        },
      },
    },

    // --- rollouts -----------------------------------------------------------------------
    '/api/rollouts': {
      get: {
        operationId: 'listRollouts',
        summary: 'Rollouts and rollbacks, newest first, with per-node progress',
        tags: ['rollouts'],
        responses: {
          '200': json('The audit trail the cluster state keeps', arrayOf(ref('RolloutView'))),
          ...denied,
        },
      },
      post: {
        operationId: 'startRollout',
        summary: 'Move the cluster (or some nodes) to a version, through the manager',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        requestBody: jsonBody(ref('RolloutRequest')),
        responses: {
          '202': json('Started; follow it with GET /api/rollouts/{id}', ref('RolloutView')),
          ...denied,
          ...managerErrors,
          '404': json('The version is not known here (`ERR_UNKNOWN_DISTRIBUTION`)', ref('Error')),
        },
      },
    },
    '/api/rollouts/{id}': {
      get: {
        operationId: 'getRollout',
        summary: 'One rollout or rollback',
        tags: ['rollouts'],
        parameters: [param('RolloutId')],
        responses: { '200': json('The rollout', ref('RolloutView')), ...denied, '404': response('NotFound') },
      },
    },
    '/api/rollouts/{id}/approve': {
      post: {
        operationId: 'approveRollout',
        summary: 'Let a canary rollout waiting for approval go on',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        parameters: [param('RolloutId')],
        responses: { '200': json('The rollout now', ref('RolloutView')), ...denied, ...managerErrors },
      },
    },
    '/api/rollouts/{id}/pause': {
      post: {
        operationId: 'pauseRollout',
        summary: 'Hold a rollout where it is',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        parameters: [param('RolloutId')],
        responses: { '200': json('The rollout now', ref('RolloutView')), ...denied, ...managerErrors },
      },
    },
    '/api/rollouts/{id}/resume': {
      post: {
        operationId: 'resumeRollout',
        summary: 'Go on with a paused rollout',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        parameters: [param('RolloutId')],
        responses: { '200': json('The rollout now', ref('RolloutView')), ...denied, ...managerErrors },
      },
    },
    '/api/rollouts/{id}/abort': {
      post: {
        operationId: 'abortRollout',
        summary: 'Stop a rollout and send every node it moved back',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        parameters: [param('RolloutId')],
        responses: {
          '200': json('The rollout now (rolling-back)', ref('RolloutView')),
          ...denied,
          ...managerErrors,
        },
      },
    },
    '/api/rollbacks': {
      post: {
        operationId: 'rollback',
        summary: 'A rollout to an earlier version of a distribution (nothing is downloaded)',
        tags: ['rollouts'],
        'x-shoal-roles': ['admin'],
        requestBody: jsonBody(ref('RollbackRequest')),
        responses: {
          '202': json('Started', ref('RolloutView')),
          ...denied,
          ...managerErrors,
          '409': json('No earlier version to go back to (`ERR_NO_PREVIOUS`)', ref('Error')),
        },
      },
    },
    '/api/manager': {
      get: {
        operationId: 'getManager',
        summary: 'The election as this node sees it, and the cluster state it follows',
        tags: ['rollouts'],
        responses: {
          '200': json('Manager, term, quorum, voters, placement', ref('ManagerStatus')),
          ...denied,
        },
      },
    },

    // --- nodes --------------------------------------------------------------------------
    '/api/nodes': {
      get: {
        operationId: 'listNodes',
        summary: 'Members with their provider state, and nodes still launching',
        tags: ['nodes'],
        responses: {
          '200': json('Observers (load balancers) are left out', arrayOf(ref('NodeRow'))),
          ...denied,
        },
      },
      post: {
        operationId: 'addNodes',
        summary: 'Launch nodes through a provider',
        tags: ['nodes'],
        'x-shoal-roles': ['operator', 'admin'],
        requestBody: jsonBody(ref('AddNodesRequest'), false),
        responses: {
          '202': json('Launching; follow it with GET /api/operations/{id}', ref('NodeOperation')),
          '400': json('Bad count, or no such provider (`ERR_UNKNOWN_PROVIDER`)', ref('Error')),
          ...denied,
          '404': json('`like` names no member', ref('Error')),
        },
      },
    },
    '/api/nodes/{id}/copy': {
      post: {
        operationId: 'copyNode',
        summary: 'One more node like this member (its provider, roles and tags)',
        tags: ['nodes'],
        'x-shoal-roles': ['operator', 'admin'],
        parameters: [param('NodeId')],
        responses: {
          '202': json('Launching', ref('NodeOperation')),
          '400': response('BadRequest'),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/nodes/{id}/remove': {
      post: {
        operationId: 'removeNode',
        summary: 'Drain a member, have it leave, terminate it through its provider',
        tags: ['nodes'],
        'x-shoal-roles': ['operator', 'admin'],
        parameters: [param('NodeId')],
        requestBody: jsonBody(ref('RemoveNodeRequest'), false),
        responses: {
          '202': json('Removing', ref('NodeOperation')),
          '400': json('The agent asked is the one to remove, or its provider is missing here', ref('Error')),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
    '/api/operations/{id}': {
      get: {
        operationId: 'getOperation',
        summary: "A node operation's steps and state (kept for the last 50 on the agent that ran it)",
        tags: ['nodes'],
        parameters: [param('OperationId')],
        responses: {
          '200': json('The operation', ref('NodeOperation')),
          ...denied,
          '404': response('NotFound'),
        },
      },
    },
  },

  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description:
          "A token from the agent's tokens file (`shoal agent --tokens FILE`; CLI: `--token` or `SHOAL_TOKEN`). " +
          'Without a tokens file the API has no authentication and listens on loopback only. With one, every ' +
          '`/api` request but `/api/health` needs `Authorization: Bearer TOKEN`: none or an unknown token is ' +
          '401 `ERR_UNAUTHORIZED`; a role the operation does not allow is 403 `ERR_FORBIDDEN`. Roles: ' +
          '`viewer` every GET and HEAD; `developer` viewer + publish; `operator` viewer + nodes; `admin` ' +
          'everything. Each mutating operation lists its roles in `x-shoal-roles`.',
      },
    },

    parameters: {
      Sha256: { name: 'sha256', in: 'path', required: true, schema: ref('Sha256') },
      DistributionName: {
        name: 'name',
        in: 'path',
        required: true,
        description: 'Distribution name, e.g. `educa`',
        schema: { type: 'string' },
      },
      DistributionVersion: {
        name: 'version',
        in: 'path',
        required: true,
        description: 'Version, e.g. `1.1`',
        schema: { type: 'string' },
      },
      ComponentName: {
        name: 'name',
        in: 'path',
        required: true,
        description: 'Component name',
        schema: { type: 'string' },
      },
      ServiceName: {
        name: 'name',
        in: 'path',
        required: true,
        description: 'Service name (a component provides its own name and what its descriptor lists)',
        schema: { type: 'string' },
      },
      RolloutId: {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', minLength: 1, maxLength: 40 },
      },
      NodeId: {
        name: 'id',
        in: 'path',
        required: true,
        description: 'A member: its full peer id or a unique end of it',
        schema: { type: 'string' },
      },
      OperationId: {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', examples: ['op-1a2b3c'] },
      },
    },

    responses: {
      BadRequest: json('The request is malformed (`ERR_BAD_REQUEST`, or a more specific code)', ref('Error')),
      Unauthorized: json('No token, or one this agent does not know (`ERR_UNAUTHORIZED`)', ref('Error')),
      Forbidden: json("The token's role may not call this operation (`ERR_FORBIDDEN`)", ref('Error')),
      NotFound: json('Nothing of that id or name (`ERR_NOT_FOUND`)', ref('Error')),
      Conflict: json(
        'The state does not allow it now (e.g. `ERR_ROLLOUT_FINISHED`, `ERR_NOT_PAUSED`)',
        ref('Error'),
      ),
      NoQuorum: json(
        'No manager that sees a majority of the voters (`ERR_NO_QUORUM`), or it cannot be reached (`ERR_NO_MANAGER`)',
        ref('Error'),
      ),
    },

    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: {
              code: { type: 'string', pattern: '^ERR_[A-Z0-9_]+$', examples: ['ERR_FORBIDDEN'] },
              message: { type: 'string', description: 'What happened and what to do' },
            },
          },
        },
      },
      Health: { type: 'object', required: ['ok'], properties: { ok: { const: true } } },
      Sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      Role: { type: 'string', enum: ['viewer', 'developer', 'operator', 'admin'] },

      // cluster
      MemberState: { type: 'string', enum: ['alive', 'suspect', 'dead', 'left'] },
      MemberView: {
        type: 'object',
        required: [
          'id',
          'state',
          'addrs',
          'manager',
          'ready',
          'distribution',
          'components',
          'roles',
          'incarnation',
          'self',
          'since',
          'meta',
        ],
        properties: {
          id: { type: 'string', description: 'libp2p peer id' },
          state: ref('MemberState'),
          addrs: arrayOf({ type: 'string', description: 'multiaddr' }),
          manager: { type: 'boolean', description: 'It is the manager this agent follows' },
          ready: { type: 'boolean' },
          distribution: nullable('string', { description: 'The version it runs, `name@version`' }),
          components: arrayOf({
            type: 'object',
            required: ['name', 'version', 'state', 'endpoint'],
            properties: {
              name: { type: 'string' },
              version: { type: 'string' },
              state: ref('ComponentState'),
              endpoint: nullable('string'),
            },
          }),
          roles: {
            ...arrayOf({ type: 'string' }),
            description:
              'Roles it announces: `lb` for a load balancer (`shoal lb`, a member but not a node), what `--role` gave an agent',
          },
          incarnation: { type: 'integer', minimum: 0 },
          self: { type: 'boolean' },
          since: { type: 'string', format: 'date-time', description: 'When this view saw the state change' },
          meta: { type: 'object', description: 'Raw member metadata' },
        },
      },
      StatusView: {
        type: 'object',
        required: [
          'id',
          'cluster',
          'addrs',
          'state',
          'incarnation',
          'manager',
          'members',
          'distribution',
          'version',
        ],
        properties: {
          id: { type: 'string' },
          cluster: { type: 'string' },
          addrs: arrayOf({ type: 'string' }),
          state: ref('MemberState'),
          incarnation: { type: 'integer' },
          manager: nullable('string', { description: 'Id of the manager this node follows' }),
          managerStatus: ref('ManagerStatus'),
          open: {
            type: 'boolean',
            description: 'The cluster has no secret: anyone who can reach it may join',
          },
          members: {
            type: 'object',
            required: ['total', 'alive', 'suspect', 'dead', 'left'],
            properties: {
              total: { type: 'integer' },
              alive: { type: 'integer' },
              suspect: { type: 'integer' },
              dead: { type: 'integer' },
              left: { type: 'integer' },
            },
          },
          distribution: nullable('string', { description: 'The version this node runs' }),
          runtime: ref('RuntimeStatus'),
          rollouts: { ...arrayOf(ref('RolloutView')), description: 'Rollouts not finished yet' },
          health: { type: 'integer', description: 'Lifeguard score, 0 = healthy' },
          distributions: {
            type: 'object',
            properties: { known: { type: 'integer' }, complete: { type: 'integer' } },
          },
          transfer: ref('TransferStats'),
          traffic: {
            type: 'object',
            properties: { sentBytes: { type: 'integer' }, receivedBytes: { type: 'integer' } },
          },
          uptimeSeconds: { type: 'integer' },
          version: { type: 'string', description: 'Shoal version' },
          config: { type: 'object', description: 'The agent configuration in force (docs/configuration.md)' },
        },
      },
      TransferStats: {
        type: 'object',
        properties: {
          chunksFetched: { type: 'integer' },
          bytesFetched: { type: 'integer' },
          chunksServed: { type: 'integer' },
          bytesServed: { type: 'integer' },
          badChunks: { type: 'integer' },
          chunkRequestsFailed: { type: 'integer', description: 'Chunk requests that got no chunk' },
          penalised: arrayOf({
            type: 'object',
            properties: {
              peer: { type: 'string' },
              until: { type: 'string', format: 'date-time' },
              reason: { type: 'string' },
            },
          }),
          sources: {
            type: 'object',
            description: 'Version → peer → bytes fetched from it since start',
            additionalProperties: { type: 'object', additionalProperties: { type: 'integer' } },
          },
        },
      },
      ManagerStatus: {
        type: 'object',
        required: ['manager', 'term', 'quorum', 'voters', 'acting', 'self'],
        properties: {
          manager: nullable('string'),
          term: { type: 'integer' },
          quorum: { type: 'boolean', description: 'This node sees a majority of the voters alive' },
          voters: arrayOf({ type: 'string' }),
          aliveVoters: { type: 'integer' },
          claim: nullable('integer'),
          acting: { type: 'boolean', description: 'This node is the manager and sees a majority' },
          self: { type: 'boolean' },
          stateTerm: { type: 'integer' },
          stateSeq: { type: 'integer' },
          placement: {
            type: 'object',
            description: 'Component → nodes, for components not placed everywhere',
            additionalProperties: arrayOf({ type: 'string' }),
          },
          unplaced: arrayOf({ type: 'string' }),
          notReadyAnywhere: arrayOf({ type: 'string' }),
        },
      },
      LoadBalancerView: {
        type: 'object',
        required: ['id', 'state', 'url', 'status'],
        properties: {
          id: { type: 'string', description: "The load balancer's member id" },
          state: ref('MemberState'),
          url: nullable('string', {
            description: 'Where it listens, as it announces (null: it announces none)',
          }),
          status: nullable('object', {
            description:
              'Its `GET /_shoal/lb` (service, strategy, backends with state, weight, counters), or null',
          }),
          error: { type: 'string', description: 'Why there is no status (unreachable, dead, no URL)' },
        },
      },
      AuditEntry: {
        type: 'object',
        required: ['time', 'who', 'role', 'method', 'path', 'status'],
        properties: {
          time: { type: 'string', format: 'date-time', description: 'When it was answered' },
          who: {
            type: 'string',
            description:
              "The token holder's name; `local` without tokens; `unknown` for an unknown or missing token",
          },
          role: { anyOf: [ref('Role'), { type: 'null' }], description: 'null without a known token' },
          method: { type: 'string', examples: ['POST'] },
          path: { type: 'string', examples: ['/api/rollouts'] },
          status: { type: 'integer', description: 'HTTP status answered (401 and 403 refusals included)' },
        },
      },
      Snapshot: {
        type: 'object',
        description: 'What the dashboard shows, in one event',
        required: ['status', 'members', 'nodes', 'distributions', 'rollouts', 'lb', 'audit'],
        properties: {
          status: { ...ref('StatusView'), description: 'As GET /api/status, without `config`' },
          members: arrayOf(ref('MemberView')),
          nodes: arrayOf(ref('NodeRow')),
          distributions: arrayOf(ref('DistributionView')),
          rollouts: arrayOf(ref('RolloutView')),
          lb: arrayOf(ref('LoadBalancerView')),
          audit: { ...arrayOf(ref('AuditEntry')), description: 'The last 50, newest last' },
        },
      },

      // distributions
      ArtifactHeld: {
        type: 'object',
        required: ['sha256', 'size'],
        properties: { sha256: ref('Sha256'), size: { type: 'integer' } },
      },
      ArtifactUploaded: {
        type: 'object',
        required: ['sha256', 'created', 'size'],
        properties: { sha256: ref('Sha256'), created: { type: 'boolean' }, size: { type: 'integer' } },
      },
      Artifact: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind', 'sha256', 'size', 'chunkSize', 'chunks'],
        properties: {
          name: {
            type: 'string',
            description: 'Relative path inside the distribution folder',
            maxLength: 255,
          },
          kind: { type: 'string', enum: ['component', 'config', 'resource'] },
          sha256: ref('Sha256'),
          size: { type: 'integer', minimum: 0 },
          chunkSize: { type: 'integer', minimum: 16_384, maximum: 8_388_608 },
          chunks: { ...arrayOf(ref('Sha256')), description: 'ceil(size / chunkSize) hashes' },
          descriptor: { type: 'object', description: 'A component descriptor (docs/components.md)' },
        },
      },
      Manifest: {
        type: 'object',
        additionalProperties: false,
        required: [
          'schema',
          'name',
          'version',
          'artifacts',
          'config',
          'supersedes',
          'createdAt',
          'publisher',
        ],
        properties: {
          schema: { const: 1 },
          name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
          version: { type: 'string', pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$' },
          artifacts: { ...arrayOf(ref('Artifact')), minItems: 1, maxItems: 1000 },
          config: { type: 'object' },
          placement: { type: 'object', description: 'Placement rules (docs/manager.md)' },
          supersedes: nullable('string'),
          createdAt: { type: 'string', format: 'date-time' },
          publisher: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'Id of the signing key' },
        },
      },
      SignedManifest: {
        type: 'object',
        required: ['manifest', 'signature'],
        properties: {
          manifest: ref('Manifest'),
          signature: {
            type: 'string',
            description: 'ed25519 signature over the canonical JSON of `manifest`',
          },
        },
      },
      DistributionView: {
        type: 'object',
        required: ['id', 'name', 'version', 'complete', 'artifacts', 'bytes'],
        properties: {
          id: { type: 'string', description: '`name@version`' },
          name: { type: 'string' },
          version: { type: 'string' },
          complete: { type: 'boolean', description: 'This node holds every artifact, verified' },
          artifacts: { type: 'integer' },
          bytes: { type: 'integer' },
          publisher: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time' },
          supersedes: nullable('string'),
          digest: { type: 'string' },
          holders: { ...arrayOf({ type: 'string' }), description: 'Members holding every artifact' },
          progress: {
            type: 'object',
            properties: { chunks: { type: 'integer' }, total: { type: 'integer' } },
          },
        },
      },
      DistributionHistoryEntry: {
        allOf: [
          ref('DistributionView'),
          {
            type: 'object',
            properties: {
              rollouts: arrayOf({
                type: 'object',
                properties: {
                  id: { type: 'string' },
                  kind: { type: 'string', enum: ['rollout', 'rollback'] },
                  from: nullable('string'),
                  strategy: ref('RolloutStrategy'),
                  state: ref('RolloutState'),
                  reason: nullable('string'),
                  requestedBy: { type: 'string' },
                  requestedAt: { type: 'string', format: 'date-time' },
                  finishedAt: nullable('string', { format: 'date-time' }),
                },
              }),
            },
          },
        ],
      },
      DistributionDetail: {
        allOf: [
          ref('DistributionView'),
          {
            type: 'object',
            properties: {
              manifest: ref('SignedManifest'),
              sources: {
                type: 'object',
                additionalProperties: { type: 'integer' },
                description: 'Peer → bytes fetched',
              },
            },
          },
        ],
      },
      PublishResult: {
        type: 'object',
        required: ['result', 'distribution'],
        properties: {
          result: { type: 'string', enum: ['added', 'same'] },
          distribution: ref('DistributionView'),
        },
      },
      PublishForm: {
        type: 'object',
        required: ['name', 'version', 'key', 'file'],
        properties: {
          name: { type: 'string', description: 'Distribution name' },
          version: { type: 'string' },
          key: {
            type: 'string',
            contentMediaType: 'application/octet-stream',
            description: 'The private key file',
          },
          file: {
            type: 'array',
            description: 'The release files; each file name is its path in the release folder',
            items: { type: 'string', contentMediaType: 'application/octet-stream' },
          },
        },
      },
      PublishUploadResult: {
        allOf: [
          ref('PublishResult'),
          {
            type: 'object',
            properties: {
              uploaded: {
                type: 'object',
                description: 'Artifacts the agent did not hold yet',
                properties: { artifacts: { type: 'integer' }, bytes: { type: 'integer' } },
              },
            },
          },
        ],
      },
      UnpublishResult: {
        type: 'object',
        required: ['result', 'id', 'name', 'version', 'by', 'at'],
        properties: {
          result: {
            type: 'string',
            enum: ['unpublished', 'already-unpublished'],
            description: '`already-unpublished`: an earlier request did it; nothing changed',
          },
          id: { type: 'string', examples: ['educa@1.2'] },
          name: { type: 'string' },
          version: { type: 'string' },
          by: {
            type: 'string',
            description:
              'Who unpublished it: the token holder and role, or the agent asked when there are no tokens',
            examples: ['alice (developer)'],
          },
          at: { type: 'string', format: 'date-time' },
        },
      },
      VerifyResult: {
        type: 'object',
        required: ['checked', 'corrupt'],
        properties: { checked: { type: 'integer' }, corrupt: arrayOf(ref('Sha256')) },
      },

      // components
      ComponentState: {
        type: 'string',
        enum: ['installing', 'starting', 'ready', 'draining', 'stopped', 'failed'],
      },
      ComponentStatus: {
        type: 'object',
        required: ['name', 'version', 'distribution', 'state'],
        properties: {
          name: { type: 'string' },
          version: { type: 'string' },
          distribution: { type: 'string' },
          state: ref('ComponentState'),
          instance: {
            type: 'integer',
            enum: [0, 1],
            description: 'Which instance: 1 for a version started beside the running one during a switch',
          },
          pid: nullable('integer'),
          port: nullable('integer'),
          endpoint: nullable('string'),
          provides: arrayOf({ type: 'string' }),
          restarts: { type: 'integer' },
          lastExit: {
            type: ['object', 'null'],
            properties: {
              code: nullable('integer'),
              signal: nullable('string'),
              at: { type: 'string', format: 'date-time' },
            },
          },
          error: nullable('string'),
          since: { type: 'string', format: 'date-time' },
        },
      },
      RuntimeStatus: {
        type: 'object',
        required: ['active', 'target', 'phase', 'error', 'components'],
        properties: {
          active: nullable('string', { description: 'The version this node committed to' }),
          target: nullable('string', { description: 'The version it works towards' }),
          phase: {
            type: 'string',
            enum: ['idle', 'waiting', 'fetching', 'installing', 'switching', 'done', 'failed'],
          },
          error: nullable('string'),
          components: arrayOf(ref('ComponentStatus')),
          lastSwitch: {
            type: ['object', 'null'],
            description: 'When the steps of the last switch happened',
            properties: {
              from: nullable('string'),
              to: { type: 'string' },
              startedAt: { type: 'string', format: 'date-time' },
              installedAt: nullable('string', { format: 'date-time' }),
              spawnedAt: nullable('string', { format: 'date-time' }),
              readyAt: nullable('string', { format: 'date-time' }),
              settledAt: nullable('string', { format: 'date-time' }),
            },
          },
        },
      },
      WeightRequest: {
        type: 'object',
        required: ['weight'],
        properties: {
          weight: {
            type: 'integer',
            minimum: 0,
            maximum: 256,
            description: '100 is the default; 0 gets no new requests',
          },
        },
      },
      Weight: {
        type: 'object',
        required: ['name', 'weight'],
        properties: { name: { type: 'string' }, weight: { type: 'integer' } },
      },
      Endpoint: {
        type: 'object',
        required: ['node', 'component', 'version', 'endpoint', 'local'],
        properties: {
          node: { type: 'string' },
          component: { type: 'string' },
          version: { type: 'string' },
          endpoint: { type: 'string', description: 'http://HOST:PORT' },
          local: { type: 'boolean', description: 'On the node that answered' },
        },
      },
      ServiceEndpoints: {
        type: 'object',
        required: ['service', 'endpoints'],
        properties: { service: { type: 'string' }, endpoints: arrayOf(ref('Endpoint')) },
      },

      // rollouts
      RolloutStrategy: { type: 'string', enum: ['all-at-once', 'rolling', 'canary'] },
      RolloutState: {
        type: 'string',
        enum: [
          'running',
          'waiting-approval',
          'paused',
          'done',
          'failed',
          'rolling-back',
          'rolled-back',
          'aborted',
          'superseded',
        ],
      },
      NodeProgress: {
        type: 'string',
        enum: ['pending', 'updating', 'done', 'failed', 'reverting', 'reverted', 'lost', 'skipped'],
        description:
          '`skipped`: never moved, in a rollout that ended (aborted, rolled back, failed, superseded)',
      },
      RolloutRequest: {
        type: 'object',
        additionalProperties: false,
        required: ['distribution'],
        properties: {
          distribution: {
            type: 'string',
            minLength: 3,
            maxLength: 200,
            pattern: '@',
            description: '`NAME@VERSION`, known to the agent asked',
          },
          ...ROLLOUT_OPTIONS,
        },
      },
      RollbackRequest: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100, description: 'The distribution' },
          to: {
            type: 'string',
            description: 'A version (or `NAME@VERSION`); default: the one before the current',
          },
          ...ROLLOUT_OPTIONS,
        },
      },
      RolloutNode: {
        type: 'object',
        required: ['id', 'status', 'distribution', 'phase', 'error'],
        properties: {
          id: { type: 'string' },
          status: ref('NodeProgress'),
          distribution: nullable('string', { description: 'What it reports running' }),
          phase: nullable('string'),
          error: nullable('string'),
        },
      },
      RolloutView: {
        type: 'object',
        required: [
          'id',
          'kind',
          'distribution',
          'from',
          'strategy',
          'state',
          'requestedBy',
          'requestedAt',
          'startedAt',
          'nodes',
          'members',
        ],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', enum: ['rollout', 'rollback'] },
          distribution: { type: 'string', description: 'The version moved to' },
          from: nullable('string', { description: 'The version moved from' }),
          strategy: ref('RolloutStrategy'),
          maxUnavailable: { type: 'integer' },
          keepOneServing: {
            type: 'boolean',
            description:
              'All at once with a component that cannot run twice on a node: one node waits until another is ready',
          },
          canaryPercent: { type: 'number' },
          approve: { type: 'string', enum: ['manual', 'auto'] },
          minReadyMs: { type: 'integer' },
          failureThreshold: { type: 'integer' },
          progressDeadlineMs: { type: 'integer' },
          updatingSince: {
            type: 'object',
            additionalProperties: { type: 'string', format: 'date-time' },
            description: "When each node's turn came (for the progress deadline)",
          },
          autoRollback: { type: 'boolean' },
          scope: { ...arrayOf({ type: 'string' }), description: 'Nodes it is limited to; empty: every node' },
          state: ref('RolloutState'),
          baseDefault: nullable('string'),
          approved: { type: 'boolean' },
          requestedBy: { type: 'string', description: '`NAME (ROLE)` of the token, else the agent id' },
          requestedAt: { type: 'string', format: 'date-time' },
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: nullable('string', { format: 'date-time' }),
          reason: nullable('string'),
          actions: {
            ...arrayOf({
              type: 'object',
              required: ['op', 'by', 'at'],
              properties: {
                op: { type: 'string', enum: ['approve', 'pause', 'resume', 'abort'] },
                by: { type: 'string' },
                at: { type: 'string', format: 'date-time' },
              },
            }),
            description: 'Who approved, paused, resumed or aborted it, and when (the newest 20)',
          },
          nodes: {
            type: 'object',
            description: 'Counts by progress',
            properties: {
              total: { type: 'integer' },
              pending: { type: 'integer' },
              updating: { type: 'integer' },
              done: { type: 'integer' },
              failed: { type: 'integer' },
              reverted: { type: 'integer' },
              lost: { type: 'integer' },
              skipped: { type: 'integer' },
            },
          },
          members: arrayOf(ref('RolloutNode')),
        },
      },

      // nodes
      NodeState: {
        type: 'string',
        enum: ['launching', 'joining', 'fetching', 'ready', 'draining', 'removing', 'gone', 'failed'],
      },
      NodeRow: {
        type: 'object',
        required: ['id', 'state', 'member', 'provider', 'handle', 'distribution'],
        properties: {
          id: nullable('string', { description: 'Peer id (null while a launch has not told it)' }),
          state: ref('NodeState'),
          member: {
            ...nullable('string'),
            description: 'Its membership state, null while it has not joined',
          },
          provider: nullable('string'),
          handle: nullable('string', { description: "The provider's handle (process, host, instance id)" }),
          distribution: nullable('string'),
        },
      },
      AddNodesRequest: {
        type: 'object',
        properties: {
          count: { type: 'integer', minimum: 1, maximum: 100, default: 1 },
          like: { type: 'string', description: 'A member whose provider, roles and tags the new nodes take' },
          provider: {
            type: 'string',
            description: "Default: the model's provider, else the agent's default (local)",
          },
        },
      },
      RemoveNodeRequest: {
        type: 'object',
        properties: {
          force: {
            type: 'boolean',
            default: false,
            description: 'Terminate even if it cannot be retired in time',
          },
        },
      },
      NodeOperation: {
        type: 'object',
        required: ['id', 'kind', 'state', 'nodes', 'steps', 'error', 'startedAt', 'finishedAt'],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', enum: ['add', 'copy', 'remove'] },
          state: { type: 'string', enum: ['running', 'done', 'failed'] },
          nodes: arrayOf({
            type: 'object',
            required: ['handle', 'id', 'state', 'error'],
            properties: {
              handle: nullable('string'),
              id: nullable('string'),
              state: ref('NodeState'),
              error: nullable('string'),
            },
          }),
          steps: {
            ...arrayOf({
              type: 'object',
              required: ['at', 'text'],
              properties: { at: { type: 'string', format: 'date-time' }, text: { type: 'string' } },
            }),
            description: 'What happened so far, oldest first',
          },
          error: nullable('string'),
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: nullable('string', { format: 'date-time' }),
        },
      },
    },
  },
}
