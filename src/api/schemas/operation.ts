import type { Context, Hono, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { z } from 'zod'
import { jsonBody, parseBody } from '../bodies.js'
import type { KnownErrorCode } from '../http-status.js'

/**
 * One operation of the admin API, as data: the route table. Its handler is
 * registered with `serve` (which checks the path parameters and the JSON body
 * against the schemas here), and src/api/openapi.ts renders the OpenAPI document
 * from the same table, so the two cannot drift.
 */
export interface Operation {
  method: 'get' | 'head' | 'post' | 'delete'
  /** As the document spells it: `/api/rollouts/{id}`. */
  path: string
  operationId: string
  summary: string
  description?: string
  tag: Tag
  /**
   * Who may call it: `token` (default) behind the tokens file; `open` without a
   * token (still behind the browser guard); `signed-url` the path's own token is
   * the credential (registered before the guard).
   */
  access?: 'token' | 'open' | 'signed-url'
  /** Path parameters, in path order; each checked before the handler runs (ERR_BAD_REQUEST). */
  params?: Readonly<Record<string, z.ZodType<string, string>>>
  /** Query parameters; documented, read by the handler. */
  query?: Readonly<Record<string, z.ZodType>>
  body?: RequestBody
  /** Status → answer: what it answers when it succeeds. */
  responses: Readonly<Record<number, Answer>>
  /**
   * Each error code it may answer with, and when. The document lists each under the
   * status src/api/http-status.ts gives the code; 401, 403 and 500 are added from
   * `access` (src/api/openapi.ts).
   */
  errors?: Errors
  /** The largest body `serve` reads: a larger one is refused with 413 and `code` before the handler runs. */
  bodyLimit?: BodyLimit
}

/** Error code → when it is answered. */
export type Errors = Readonly<Partial<Record<KnownErrorCode, string>>>

export interface BodyLimit {
  maxBytes: number
  code: KnownErrorCode
  /** When it is answered (the document's reason). */
  why: string
  /** The error's message. */
  message: string
}

export type Tag = 'cluster' | 'distributions' | 'components' | 'rollouts' | 'nodes' | 'meta'

export interface RequestBody<S extends z.ZodType = z.ZodType> {
  media: 'application/json' | 'multipart/form-data' | 'application/octet-stream'
  schema: S
  /**
   * `serve` parses and checks a JSON body against `schema` and hands it to the
   * handler; false: the handler (or the subsystem it calls) reads and checks it.
   */
  parsed: boolean
  /** What an empty body reads as; absent: a body is required. */
  whenEmpty?: z.input<S>
}

export interface Answer {
  description?: string
  /** Media type → its schema; `events`: the data schema of each named server-sent event. */
  content?: Readonly<Record<string, { schema: z.ZodType; events?: Readonly<Record<string, z.ZodType>> }>>
}

// --- building operations ---------------------------------------------------------------------

/** A JSON body that `serve` checks against `schema` (`whenEmpty`: what no body at all means). */
export function jsonRequest<S extends z.ZodType>(
  schema: S,
  whenEmpty?: z.input<S>,
): RequestBody<S> & { parsed: true } {
  return {
    media: 'application/json',
    schema,
    parsed: true,
    ...(whenEmpty === undefined ? {} : { whenEmpty }),
  }
}

/** A body the handler reads itself; `schema` documents it. */
export function documentedRequest<S extends z.ZodType>(
  media: RequestBody['media'],
  schema: S,
): RequestBody<S> & { parsed: false } {
  return { media, schema, parsed: false }
}

export const json = (description: string, schema: z.ZodType): Answer => ({
  description,
  content: { 'application/json': { schema } },
})

export const text = (description: string, media: string, schema: z.ZodType): Answer => ({
  description,
  content: { [media]: { schema } },
})

/** A stream of server-sent events; `events`: each event's name and the schema of its JSON data. */
export const eventStream = (
  description: string,
  stringSchema: z.ZodType,
  events: Record<string, z.ZodType>,
): Answer => ({ description, content: { 'text/event-stream': { schema: stringSchema, events } } })

// --- serving operations ----------------------------------------------------------------------

/** Body of a handler's input: the checked JSON body when `serve` parses it, else nothing. */
type BodyOf<O extends Operation> =
  O['body'] extends RequestBody<infer S>
    ? O['body'] extends { parsed: true }
      ? z.output<S>
      : undefined
    : undefined

export interface Input<O extends Operation> {
  params: { [K in keyof O['params']]: string }
  body: BodyOf<O>
}

/**
 * Registers `operation` on `app`: its body limit first, then the path parameters
 * and a parsed JSON body are checked against the operation's schemas
 * (ERR_BAD_REQUEST naming the field) and given to `handler`.
 */
export function serve<O extends Operation>(
  app: Hono,
  operation: O,
  handler: (c: Context, input: Input<O>) => Response | Promise<Response>,
): void {
  const path = operation.path.replace(/\{(\w+)\}/g, ':$1')
  const checked: MiddlewareHandler = async (c) => {
    const params: Record<string, string> = {}
    for (const [name, schema] of Object.entries(operation.params ?? {}))
      params[name] = parseBody(schema, c.req.param(name) ?? '', name)
    const body = operation.body
    const parsed =
      body?.parsed === true ? parseBody(body.schema, await jsonBody(c.req.raw, body.whenEmpty)) : undefined
    return handler(c, { params, body: parsed } as Input<O>)
  }
  const limit = operation.bodyLimit
  const middleware: MiddlewareHandler[] =
    limit == null
      ? []
      : [
          bodyLimit({
            maxSize: limit.maxBytes,
            onError: (c) => c.json({ error: { code: limit.code, message: limit.message } }, 413),
          }),
        ]
  const [first, ...rest] = [...middleware, checked]
  app.on(operation.method.toUpperCase(), path, first!, ...rest)
}
