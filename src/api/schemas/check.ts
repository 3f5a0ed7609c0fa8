import type { z } from 'zod'

/** Why a schema does not describe `V` (never when it does). */
type Mismatch<S, V> = [S] extends [V]
  ? [Exclude<keyof V, keyof S>] extends [never]
    ? [Exclude<keyof S, keyof V>] extends [never]
      ? never
      : { 'the schema documents fields the view lacks': Exclude<keyof S, keyof V> }
    : { 'the schema leaves out fields of the view': Exclude<keyof V, keyof S> }
  : { 'a value the schema admits is not a valid view': V }

/**
 * `satisfies` for a response schema and the TypeScript type of what its handler
 * answers, checked at compile time: every value the schema admits is a `V` (all
 * the way down), and both name the same fields. Where `V` is looser (`unknown`,
 * `string`), the schema says what the value is; test/integration/openapi.test.ts
 * holds real answers against it.
 *
 *     export const MemberView = describes<MemberViewType>()(z.object({ ... }))
 */
export function describes<V>() {
  return <S extends z.ZodType>(
    schema: S & ([Mismatch<z.output<S>, V>] extends [never] ? unknown : Mismatch<z.output<S>, V>),
  ): S => schema
}

/**
 * The values of a string union a domain module exports only as a type, checked
 * complete and exact at compile time: it is the enum of its schema until the
 * module exports the values themselves.
 */
export function everyOf<T extends string>() {
  return <const A extends readonly T[]>(
    values: A & ([T] extends [A[number]] ? unknown : { missing: Exclude<T, A[number]> }),
  ): A => values
}
