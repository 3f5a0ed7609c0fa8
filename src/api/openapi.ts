import { z } from 'zod'
import { AGENT_OPERATIONS } from './agent-routes.js'
import { ARTIFACT_OPERATIONS } from './artifact-routes.js'
import { type Role, rolesFor } from './auth.js'
import { DASHBOARD_OPERATIONS } from './dashboard-routes.js'
import { HTTP_STATUS, type KnownErrorCode } from './http-status.js'
import { NODE_OPERATIONS } from './node-routes.js'
import { RELEASE_OPERATIONS } from './release-routes.js'
import { RUNTIME_OPERATIONS } from './runtime-routes.js'
import { errorBodyWith } from './schemas/common.js'
import type { Answer, Errors, Operation, Tag } from './schemas/operation.js'
import { TRAFFIC_OPERATIONS } from './traffic-routes.js'
import { VOTER_OPERATIONS } from './voter-routes.js'

/**
 * The OpenAPI 3.1 document of the admin API, served at `/api/openapi.json`,
 * rendered from the route table (each `*-routes.ts` file's operations, the same
 * objects `serve` registers and checks requests against) and its zod schemas
 * (src/api/schemas/, each checked against the TypeScript type of what it
 * describes). Each error code is listed under the status src/api/http-status.ts
 * gives it, the table the error handler answers with. Roles come from src/api/auth.ts. test/integration/openapi.test.ts
 * holds every route of `createApiApp` and a real agent's answers against it.
 */

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }
type Schema = { readonly [key: string]: Json }

export type OpenApiMethod = 'get' | 'head' | 'post' | 'delete'

export interface OpenApiOperation {
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

export type OpenApiPathItem = Partial<Record<OpenApiMethod, OpenApiOperation>>

export interface OpenApiDocument {
  openapi: '3.1.0'
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } }
  tags: ReadonlyArray<{ name: Tag; description: string }>
  security: readonly Json[]
  paths: { readonly [path: string]: OpenApiPathItem }
  components: {
    securitySchemes: { readonly [name: string]: Json }
    responses: { readonly [name: string]: Json }
    schemas: { readonly [name: string]: Schema }
  }
}

/** Every operation of the API, in the document's order. */
export const OPERATIONS: readonly Operation[] = [
  ...Object.values(AGENT_OPERATIONS),
  ...Object.values(RELEASE_OPERATIONS),
  ...Object.values(DASHBOARD_OPERATIONS),
  ...Object.values(ARTIFACT_OPERATIONS),
  ...Object.values(RUNTIME_OPERATIONS),
  ...Object.values(VOTER_OPERATIONS),
  ...Object.values(TRAFFIC_OPERATIONS),
  ...Object.values(NODE_OPERATIONS),
]

const TAGS: OpenApiDocument['tags'] = [
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
]

const BEARER =
  "A token from the agent's tokens file (`shoal agent --tokens FILE`; CLI: `--token` or `SHOAL_TOKEN`). " +
  'Without a tokens file the API has no authentication and listens on loopback only. With one, every ' +
  '`/api` request but `/api/health` needs `Authorization: Bearer TOKEN`: none or an unknown token is ' +
  '401 `ERR_UNAUTHORIZED`; a role the operation does not allow is 403 `ERR_FORBIDDEN`. Roles: ' +
  '`viewer` every GET and HEAD; `developer` viewer + publish; `operator` viewer + nodes; `admin` ' +
  'everything. Each mutating operation lists its roles in `x-shoal-roles`.'

/** The OpenAPI 3.1 document of `operations`: schemas with an `id` become `#/components/schemas/ID`. */
export function openApiDocument(operations: readonly Operation[]): OpenApiDocument {
  const components = new Components()
  const paths: Record<string, OpenApiPathItem> = {}
  for (const operation of operations) {
    paths[operation.path] ??= {}
    const item = paths[operation.path]!
    if (item[operation.method] != null)
      throw new Error(`${operation.method} ${operation.path} is listed twice`)
    item[operation.method] = renderOperation(operation, components)
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Shoal admin API',
      version: '0.1.0',
      description:
        'Served by every agent on its API address (`--api`, default 127.0.0.1:7070). JSON in and out ' +
        'except where noted; errors are `{"error":{"code","message"}}` with a stable code, and each ' +
        'operation lists the codes of each error status it answers. The `shoal` CLI is a client of this ' +
        'API. See docs/api.md.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    tags: TAGS,
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: BEARER } },
      responses: components.responses,
      schemas: components.schemas,
    },
  }
}

function renderOperation(operation: Operation, components: Components): OpenApiOperation {
  const method = operation.method.toUpperCase()
  const mutating = method !== 'GET' && method !== 'HEAD'
  const parameters = [
    ...Object.entries(operation.params ?? {}).map(([name, schema]) =>
      parameter(name, 'path', true, components.render(schema, 'input')),
    ),
    ...Object.entries(operation.query ?? {}).map(([name, schema]) =>
      parameter(name, 'query', !schema.safeParse(undefined).success, components.render(schema, 'input')),
    ),
  ]
  const body = operation.body
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    ...(operation.description == null ? {} : { description: operation.description }),
    tags: [operation.tag],
    ...((operation.access ?? 'token') === 'token' ? {} : { security: [] }),
    ...(mutating ? { 'x-shoal-roles': rolesFor(method, operation.path.replace(/\{\w+\}/g, 'x')) } : {}),
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(body == null
      ? {}
      : {
          requestBody: {
            required: body.whenEmpty === undefined,
            content: { [body.media]: { schema: components.render(body.schema, 'input') } },
          },
        }),
    responses: renderResponses(operation, mutating, components),
  }
}

function parameter(name: string, where: 'path' | 'query', required: boolean, rendered: Schema): Json {
  const { description, ...schema } = rendered
  return { name, in: where, required, ...(description == null ? {} : { description }), schema }
}

/** The refusals every operation may answer besides its own: the token check, the browser guard, a bug. */
const SHARED_ERRORS: Record<string, Errors> = {
  Unauthorized: { ERR_UNAUTHORIZED: 'No token, or one this agent does not know' },
  Forbidden: {
    ERR_FORBIDDEN: "The token's role may not call this operation",
    ERR_FORBIDDEN_HOST: 'Without tokens, a Host header that is not a loopback name',
    ERR_FORBIDDEN_ORIGIN: 'Sent by a page of another site (its Origin)',
  },
  ForbiddenHost: { ERR_FORBIDDEN_HOST: 'Without tokens, a Host header that is not a loopback name' },
  Internal: { ERR_INTERNAL: 'A failure the agent did not expect (it logs it)' },
}

/** Errors by the status the table gives their codes, each group in the order listed. */
function byStatus(errors: Errors): Map<number, Errors> {
  const grouped = new Map<number, Record<string, string>>()
  for (const [code, why] of Object.entries(errors) as Array<[KnownErrorCode, string]>) {
    const status = HTTP_STATUS[code]
    if (!grouped.has(status)) grouped.set(status, {})
    grouped.get(status)![code] = why
  }
  return grouped
}

/** The shared answers, each with its one status. */
const SHARED = Object.fromEntries(
  Object.entries(SHARED_ERRORS).map(([name, errors]) => {
    const statuses = [...byStatus(errors).keys()]
    if (statuses.length !== 1)
      throw new Error(`the shared answer ${name} spans statuses ${statuses.join(', ')}`)
    return [name, { status: statuses[0]!, errors }]
  }),
)

/** The shared answers that apply to `operation`, by name. */
function sharedAnswers(operation: Operation, mutating: boolean): string[] {
  const access = operation.access ?? 'token'
  return [
    ...(access === 'token' ? ['Unauthorized'] : []),
    ...(access === 'signed-url' ? [] : mutating && access === 'token' ? ['Forbidden'] : ['ForbiddenHost']),
    'Internal',
  ]
}

/** Every answer of `operation`: its own, with the shared ones merged in (a `$ref` where it adds nothing). */
function renderResponses(
  operation: Operation,
  mutating: boolean,
  components: Components,
): Record<string, Json> {
  const rendered: Record<string, Json> = {}
  for (const [status, answer] of Object.entries(operation.responses))
    rendered[status] = renderAnswer(answer, components)
  const own = byStatus(operation.errors ?? {})
  const limit = operation.bodyLimit
  // A body over the limit is 413 whatever its code's row says (POST /api/distributions keeps ERR_MANIFEST_INVALID).
  if (limit != null) own.set(413, { [limit.code]: limit.why, ...own.get(413) })
  for (const status of own.keys())
    if (operation.responses[status] != null)
      throw new Error(
        `${operation.operationId}: ${status} is both an answer and the status of its error codes`,
      )
  const shared = new Map(sharedAnswers(operation, mutating).map((name) => [SHARED[name]!.status, name]))
  for (const status of new Set([...own.keys(), ...shared.keys()])) {
    const name = shared.get(status)
    const errors = own.get(status)
    if (name != null && errors == null) {
      components.responses[name] ??= renderErrors(SHARED[name]!.errors, components)
      rendered[status] = { $ref: `#/components/responses/${name}` }
    } else
      rendered[status] = renderErrors(
        { ...(name == null ? {} : SHARED[name]!.errors), ...errors },
        components,
      )
  }
  return Object.fromEntries(Object.entries(rendered).sort(([a], [b]) => Number(a) - Number(b)))
}

/** An error answer: each code with when it is given, and the error body those codes may carry. */
function renderErrors(errors: Errors, components: Components): Json {
  const codes = Object.keys(errors) as KnownErrorCode[]
  const description = Object.entries(errors)
    .map(([code, why]) => `${why} (\`${code}\`)`)
    .join('; ')
  return {
    description,
    content: { 'application/json': { schema: components.render(errorBodyWith(codes), 'output') } },
  }
}

function renderAnswer(answer: Answer, components: Components): Json {
  const description = answer.description ?? ''
  const content = Object.fromEntries(
    Object.entries(answer.content ?? {}).map(([media, { schema, events }]) => [
      media,
      {
        schema: components.render(schema, 'output'),
        ...(events == null
          ? {}
          : {
              'x-shoal-events': Object.fromEntries(
                Object.entries(events).map(([name, data]) => [name, components.render(data, 'output')]),
              ),
            }),
      },
    ]),
  )
  return Object.keys(content).length === 0 ? { description } : { description, content }
}

/** The document's named schemas, filled as operations are rendered. */
class Components {
  readonly schemas: Record<string, Schema> = {}
  readonly responses: Record<string, Json> = {}

  /** A zod schema as the document's JSON Schema; schemas with an id become references. */
  render(schema: z.ZodType, io: 'input' | 'output'): Schema {
    const {
      $schema: _,
      $defs,
      ...rendered
    } = z.toJSONSchema(schema, {
      io,
      unrepresentable: 'any',
      override: tidy,
    }) as Record<string, Json>
    for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, Schema>)) {
      const named = pointToComponents(def) as Schema
      const known = this.schemas[id]
      if (known != null && JSON.stringify(known) !== JSON.stringify(named))
        throw new Error(`two different schemas are named ${id} (or it differs as a request and an answer)`)
      this.schemas[id] = named
    }
    return pointToComponents(rendered) as Schema
  }
}

const pointToComponents = (node: Json): Json =>
  JSON.parse(JSON.stringify(node).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json

/**
 * What zod's JSON Schema says that the document should not: an answer's object is
 * open to fields added later (only strict request objects forbid others), integers
 * need no ±2^53 bounds, a date-time its format but not zod's regular expression.
 */
function tidy(ctx: { zodSchema: { _zod: { def: unknown } }; jsonSchema: Record<string, unknown> }): void {
  const def = ctx.zodSchema._zod.def as { type: string; catchall?: unknown }
  const json = ctx.jsonSchema
  if (def.type === 'object' && def.catchall == null) delete json.additionalProperties
  if (json.minimum === Number.MIN_SAFE_INTEGER) delete json.minimum
  if (json.maximum === Number.MAX_SAFE_INTEGER) delete json.maximum
  if (json.format === 'date-time') delete json.pattern
  const names = json.propertyNames as { type?: unknown } | undefined
  if (names != null && Object.keys(names).length === 1 && names.type === 'string') delete json.propertyNames
}

export const OPENAPI_DOCUMENT: OpenApiDocument = openApiDocument(OPERATIONS)
