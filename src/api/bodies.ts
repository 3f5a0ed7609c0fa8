import type { z } from 'zod'
import { BadRequestError } from '../shared/index.js'

/** The request's JSON body; `fallback` when it has none (if given); ERR_BAD_REQUEST when it is not JSON. */
export async function jsonBody(request: Request, fallback?: unknown): Promise<unknown> {
  const text = await request.text()
  if (text.trim() === '' && fallback !== undefined) return fallback
  try {
    return JSON.parse(text)
  } catch {
    throw new BadRequestError('the body is not JSON')
  }
}

/** Checks `value` (the body, or the parameter `what`) against `schema`; ERR_BAD_REQUEST names the first problem. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown, what = 'the body'): z.output<S> {
  const parsed = schema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const field = issue.path.length === 0 ? what : issue.path.join('.')
  throw new BadRequestError(`${field}: ${issue.message}`)
}
