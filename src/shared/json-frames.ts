import type { z } from 'zod'
import { ShoalError } from './errors.js'

/** A peer sent a frame its protocol cannot take; a log line for us, never a crash. */
export abstract class FrameError extends ShoalError {}

/** A frame that is not the JSON its protocol expects (not JSON, too deep, or refused by the schema). */
export class BadFrameError extends FrameError {
  static readonly code = 'ERR_BAD_FRAME'
  declare readonly code: typeof BadFrameError.code

  constructor(message: string, options?: ErrorOptions) {
    super(BadFrameError.code, message, options)
  }
}

/** A frame whose length prefix is over the protocol's limit. */
export class FrameTooLargeError extends FrameError {
  static readonly code = 'ERR_FRAME_TOO_LARGE'
  declare readonly code: typeof FrameTooLargeError.code

  constructor(message: string, options?: ErrorOptions) {
    super(FrameTooLargeError.code, message, options)
  }
}

/**
 * Deepest nesting of arrays and objects a frame may have. Every Shoal message is a
 * few levels deep; a manifest's config and placement may use up to 64 (manifest.ts).
 */
export const MAX_FRAME_DEPTH = 100

export function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/**
 * Whether `value` nests at most `maxDepth` arrays and objects deep (a scalar is 0 deep).
 * Checked without recursion, before anything recursive (JSON.stringify, canonical
 * JSON) meets a peer's value: JSON.parse reads far deeper documents than those can
 * write back without overflowing the stack.
 */
export function withinDepth(value: unknown, maxDepth: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }]
  while (stack.length > 0) {
    const { value: next, depth } = stack.pop()!
    if (next == null || typeof next !== 'object') continue
    if (depth + 1 > maxDepth) return false
    for (const child of Array.isArray(next) ? next : Object.values(next))
      if (child != null && typeof child === 'object') stack.push({ value: child, depth: depth + 1 })
  }
  return true
}

/**
 * Parses one frame with a schema: a peer's malformed message becomes an `Invalid`
 * (BadFrameError unless the protocol names its own FrameError), never a crash. Frames nested deeper than
 * MAX_FRAME_DEPTH are refused, so whatever is accepted can be written back out.
 */
export function decodeJson<T>(
  schema: z.ZodType<T>,
  bytes: Uint8Array,
  what: string,
  Invalid: new (message: string) => FrameError = BadFrameError,
): T {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new Invalid(`${what}: not JSON`)
  }
  if (!withinDepth(json, MAX_FRAME_DEPTH))
    throw new Invalid(`${what}: nested more than ${MAX_FRAME_DEPTH} levels deep`)
  const parsed = schema.safeParse(json)
  if (!parsed.success) throw new Invalid(`${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
  return parsed.data
}
