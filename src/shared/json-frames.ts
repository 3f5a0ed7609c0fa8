import type { z } from 'zod'

/** A peer sent a frame that is not the JSON its protocol expects. */
export class FrameError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'FrameError'
  }
}

export function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/**
 * Parses one frame with a schema: a peer's malformed message becomes a FrameError
 * with `code` (a log line for us), never a crash.
 */
export function decodeJson<T>(
  schema: z.ZodType<T>,
  bytes: Uint8Array,
  what: string,
  code = 'ERR_BAD_FRAME',
): T {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new FrameError(code, `${what}: not JSON`)
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) throw new FrameError(code, `${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
  return parsed.data
}
