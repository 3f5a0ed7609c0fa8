import { z } from 'zod'
import { ROLES } from '../auth.js'
import type { KnownErrorCode } from '../http-status.js'
import type { Errors } from './operation.js'

/**
 * Schemas every part of the API uses. A schema with an `id` in its metadata is a
 * component of the document (`#/components/schemas/ID`); the rest are inlined.
 */

/** `{"error":{"code","message"}}`: every refusal and failure. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z
        .string()
        .regex(/^ERR_[A-Z0-9_]+$/)
        .meta({ examples: ['ERR_FORBIDDEN'] }),
      message: z.string().describe('What happened and what to do'),
    }),
  })
  .meta({ id: 'Error' })

/** The error body of an answer that carries one of `codes`. */
export function errorBodyWith(codes: readonly KnownErrorCode[]): z.ZodType {
  const code = z.enum(codes as [KnownErrorCode, ...KnownErrorCode[]])
  return z.intersection(ErrorBody, z.object({ error: z.object({ code }) }))
}

export const Sha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/)
  .meta({ id: 'Sha256' })

export const Role = z.enum(ROLES).meta({ id: 'Role' })

/** A time as the agent writes it: ISO 8601 in UTC. */
export const isoTime = () => z.iso.datetime()

export const count = () => z.number().int().min(0)

/** A path segment as given: anything; the handler says when it names nothing. */
export const segment = (description?: string) =>
  description == null ? z.string() : z.string().describe(description)

export const Health = z.object({ ok: z.literal(true) }).meta({ id: 'Health' })

/** A command the manager carries out, when there is none to carry it out. */
export const NO_MANAGER = {
  ERR_NO_QUORUM: 'No manager that sees a majority of the voters',
  ERR_NO_MANAGER: 'The manager cannot be reached, or is catching up',
} as const satisfies Errors
