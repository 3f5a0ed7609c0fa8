import fc from 'fast-check'
import { afterAll } from 'vitest'
import { ShoalError } from '../../src/shared/errors.js'

/**
 * Shared machinery of the fuzz targets (docs/reliability.md, "Fuzzing").
 *
 * `FUZZ_RUNS` sets the cases of every property (200 in the normal test run,
 * 10,000 with `npm run fuzz`), `FUZZ_SEED` the seed (42). A failure prints its seed
 * and path: `FUZZ_SEED=S FUZZ_PATH=P npx vitest run FILE -t NAME` replays exactly
 * that counterexample.
 */
export const FUZZ_RUNS = envInteger('FUZZ_RUNS', 200)
export const FUZZ_SEED = envInteger('FUZZ_SEED', 42)
const FUZZ_PATH = process.env.FUZZ_PATH || undefined
/** Per-test timeout: the suite's default (vitest.config.ts) for the default slice, more in proportion for a fuzz run. */
export const FUZZ_TIMEOUT_MS = Math.max(180_000, FUZZ_RUNS * 100)

function envInteger(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw == null || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, not "${raw}"`)
  return value
}

/**
 * One fuzz target (one file): runs its properties with the fixed seed and prints
 * `[fuzz] NAME: N cases …` once the file is done, so a fuzz run shows every count.
 */
export class FuzzTarget {
  private cases = 0
  private properties = 0
  private elapsedMs = 0
  private readonly outcomes = new Map<string, number>()

  constructor(readonly name: string) {
    afterAll(() => {
      const outcomes = [...this.outcomes].sort(([a], [b]) => a.localeCompare(b))
      console.log(
        `[fuzz] ${this.name}: ${this.cases} cases in ${this.properties} properties, ` +
          `${(this.elapsedMs / 1000).toFixed(1)} s (FUZZ_RUNS=${FUZZ_RUNS}, seed ${FUZZ_SEED})` +
          (outcomes.length === 0 ? '' : `; ${outcomes.map(([k, n]) => `${k} ${n}`).join(', ')}`),
      )
    })
  }

  /** Counts one case's outcome (`accepted`, an error code, a status), for the summary line. */
  tally(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1)
  }

  /** Checks `property` FUZZ_RUNS × `share` times (at least once); a failure throws fast-check's report. */
  async check<Ts>(property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>, share = 1): Promise<void> {
    const started = performance.now()
    const details = await fc.check(property as fc.IRawProperty<Ts>, {
      numRuns: Math.max(1, Math.ceil(FUZZ_RUNS * share)),
      seed: FUZZ_SEED,
      ...(FUZZ_PATH == null ? {} : { path: FUZZ_PATH }),
    })
    this.elapsedMs += performance.now() - started
    this.cases += details.numRuns
    this.properties++
    if (details.failed) throw new Error(report(details), { cause: details.errorInstance })
  }
}

/**
 * fast-check's own report stringifies the counterexample recursively, which overflows
 * on the thousands-deep values these fuzzers make; this one does not.
 */
function report<Ts>(details: fc.RunDetails<Ts>): string {
  const values = (details.counterexample ?? []) as unknown[]
  return [
    `Property failed after ${details.numRuns} tests (seed ${details.seed}, path "${details.counterexamplePath}"),`,
    `shrunk ${details.numShrinks} time(s). Counterexample:`,
    ...values.map((value) => `  ${preview(value)}`),
    `Error: ${describe(details.errorInstance)}`,
  ].join('\n')
}

function preview(value: unknown): string {
  let text: string
  if (value instanceof Uint8Array)
    text = `bytes(${value.length}) ${Buffer.from(value.subarray(0, 600)).toString('hex')}`
  else if (typeof value === 'object' && value != null && fc.hasToStringMethod(value))
    text = value[fc.toStringMethod]()
  else {
    try {
      text = JSON.stringify(value, (_key, v: unknown) =>
        v instanceof Uint8Array ? `bytes(${v.length}) ${Buffer.from(v.subarray(0, 200)).toString('hex')}` : v,
      )
    } catch {
      // Too deep for JSON.stringify: the fuzzers' own deep values are plain JSON.
      try {
        text = jsonText(value as Json)
      } catch {
        text = String(value)
      }
    }
  }
  return text.length > 1000 ? `${text.slice(0, 1000)}… (${text.length} chars)` : text
}

// --- rejections -----------------------------------------------------------------------------

/** Throws unless `err` is a ShoalError with an `ERR_…` code (one of `codes` when given). */
export function assertCoded(err: unknown, codes?: readonly string[]): asserts err is ShoalError {
  if (!(err instanceof ShoalError)) {
    const kind = err instanceof Error ? err.constructor.name : typeof err
    throw new Error(`rejected with a ${kind}, not a coded ShoalError: ${describe(err)}`, { cause: err })
  }
  if (!/^ERR_[A-Z0-9_]+$/.test(err.code)) throw new Error(`rejected with a malformed code "${err.code}"`)
  if (codes != null && !codes.includes(err.code))
    throw new Error(`rejected with ${err.code} (${err.message}); expected one of ${codes.join(', ')}`, {
      cause: err,
    })
}

/** Runs `parse`: its value when it accepts, `undefined` when it rejects with a coded error. */
export function outcome<T>(parse: () => T, codes?: readonly string[]): { value: T } | undefined {
  try {
    return { value: parse() }
  } catch (err) {
    assertCoded(err, codes)
    return undefined
  }
}

/** `outcome` for an async parser. */
export async function outcomeAsync<T>(
  parse: () => Promise<T>,
  codes?: readonly string[],
): Promise<{ value: T } | undefined> {
  try {
    return { value: await parse() }
  } catch (err) {
    assertCoded(err, codes)
    return undefined
  }
}

/** The error thrown by `run`, or a failure when it does not throw. */
export function thrown(run: () => unknown): unknown {
  try {
    run()
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection, but the input was accepted')
}

function describe(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

// --- JSON values ----------------------------------------------------------------------------

/** What JSON.parse can produce (Infinity too: `1e400` parses to it). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Container = Json[] | { [key: string]: Json }
type Path = Array<string | number>

/** Sets `key` as an own property, as JSON.parse does (even for "__proto__"). */
function put(target: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

/** A deep copy that keeps own "__proto__" keys, without recursion (values may be thousands deep). */
export function cloneJson(value: Json): Json {
  const root: { v: Json } = { v: null }
  const work: Array<{ from: Json; into: Container | { v: Json }; key: string | number }> = [
    { from: value, into: root, key: 'v' },
  ]
  while (work.length > 0) {
    const { from, into, key } = work.pop()!
    let copy: Json = from
    if (Array.isArray(from)) {
      const list: Json[] = new Array(from.length)
      for (const [i, v] of from.entries()) work.push({ from: v, into: list, key: i })
      copy = list
    } else if (from != null && typeof from === 'object') {
      const object: { [key: string]: Json } = {}
      const keys = Object.keys(from)
      // Keys in their order (children are filled in later, from the end of the list).
      for (const k of keys) put(object, k, null)
      for (const k of keys.reverse()) work.push({ from: from[k]!, into: object, key: k })
      copy = object
    }
    if (Array.isArray(into)) into[key as number] = copy
    else put(into as { [key: string]: Json }, key as string, copy)
  }
  return root.v
}

/** `depth` levels of arrays and objects around `leaf`, built without recursion. */
export function nested(depth: number, leaf: Json = 1): Json {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { d: value }
  return value
}

/**
 * JSON text of `value` without recursion (JSON.stringify overflows the stack on the
 * deep values the fuzzers make). Non-finite numbers become `1e400`/`-1e400`, which
 * JSON.parse reads back as ±Infinity.
 */
export function jsonText(value: Json): string {
  const out: string[] = []
  // Raw text to emit, or a value still to serialise; popped from the end.
  const stack: Array<{ raw: string } | { value: Json }> = [{ value }]
  while (stack.length > 0) {
    const item = stack.pop()!
    if ('raw' in item) {
      out.push(item.raw)
      continue
    }
    const v = item.value
    if (v === null || typeof v === 'boolean') out.push(String(v))
    else if (typeof v === 'number') out.push(numberText(v))
    else if (typeof v === 'string') out.push(JSON.stringify(v))
    else if (Array.isArray(v)) {
      stack.push({ raw: ']' })
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i]! }, { raw: i > 0 ? ',' : '' })
      out.push('[')
    } else {
      const keys = Object.keys(v)
      stack.push({ raw: '}' })
      for (let i = keys.length - 1; i >= 0; i--)
        stack.push({ value: v[keys[i]!]! }, { raw: `${i > 0 ? ',' : ''}${JSON.stringify(keys[i])}:` })
      out.push('{')
    }
  }
  return out.join('')
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '1e400' : '-1e400'
  return Object.is(n, -0) ? '-0' : String(n)
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

// --- arbitraries ----------------------------------------------------------------------------

/** Keys that trip naive code: prototype names, empty, blank. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', ' ', 'x'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
)

/** Strings that trip paths, encodings and limits. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '.',
    '..',
    '../..',
    '../../etc/passwd',
    'a/../../b',
    '/etc/passwd',
    'C:\\Windows',
    'a\\b',
    'a//b',
    './a',
    'a/',
    '\u0000',
    'a\u0000b',
    '\ud800',
    '💥',
    '٣',
    'ﬀ',
    'A\u030a',
    '\u202eevil',
    'null',
    'true',
    '-1',
    '1e400',
    '0x10',
    'educa@1.0',
    '@',
    'a@',
    '12D3KooW',
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.integer({ min: 60, max: 70_000 }).map((n) => 'x'.repeat(n)),
)

/** Numbers that trip ranges and integer checks. */
export const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    1,
    -1,
    0.5,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
    -1e308,
    5e-324,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
  ),
  fc.integer(),
  fc.double({ noNaN: true }),
)

/** Depths around the limits (64, 100) and beyond what recursive code survives (~3,000). */
export const hostileDepth: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 1, max: 130 }),
  fc.integer({ min: 2_000, max: 6_000 }),
)

/** Any JSON value, biased to the hostile ones (deep nesting comes from the `nest` mutation). */
export const hostileValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, {}, []),
  hostileString,
  hostileNumber,
  fc.array(fc.oneof(hostileString, hostileNumber), { maxLength: 4 }),
  fc.integer({ min: 0, max: 1100 }).map((n) => new Array<Json>(n).fill(0)),
  fc.dictionary(hostileKey, hostileString, { maxKeys: 3 }).map((d) => {
    const out: { [key: string]: Json } = {}
    for (const key of Object.keys(d)) put(out, key, d[key]!)
    return out
  }),
)

type Step =
  | { kind: 'replace'; value: Json }
  | { kind: 'delete' }
  | { kind: 'add'; key: string; value: Json }
  | { kind: 'wrap' }
  | { kind: 'nest'; depth: number }
  | { kind: 'duplicate' }
  | { kind: 'empty' }

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace' as const), value: hostileValue }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'delete' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('add' as const), key: hostileKey, value: hostileValue }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'wrap' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nest' as const), depth: hostileDepth }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'duplicate' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
)

/** Paths to every value in `root` (the root itself is []), at most 12 deep and 400 in all. */
function pathsOf(root: Json): Path[] {
  const paths: Path[] = []
  const queue: Array<{ value: Json; path: Path }> = [{ value: root, path: [] }]
  while (queue.length > 0 && paths.length < 400) {
    const { value, path } = queue.shift()!
    paths.push(path)
    if (value == null || typeof value !== 'object' || path.length >= 12) continue
    if (Array.isArray(value))
      for (const [i, v] of value.slice(0, 20).entries()) queue.push({ value: v, path: [...path, i] })
    else for (const key of Object.keys(value)) queue.push({ value: value[key]!, path: [...path, key] })
  }
  return paths
}

function at(root: Json, path: Path): Json {
  let value = root
  for (const key of path) value = (value as Record<string | number, Json>)[key]!
  return value
}

/** Applies one step at `path`, in place; returns the new root. */
function apply(root: Json, path: Path, s: Step): Json {
  const target = at(root, path)
  let replacement: Json | undefined
  switch (s.kind) {
    case 'replace':
      replacement = cloneJson(s.value)
      break
    case 'delete':
      replacement = undefined
      break
    case 'add':
      // Copies: fast-check maps the same generated steps again while it shrinks.
      if (target != null && typeof target === 'object' && !Array.isArray(target))
        put(target, s.key, cloneJson(s.value))
      else if (Array.isArray(target)) target.push(cloneJson(s.value))
      return root
    case 'wrap':
      replacement = [target]
      break
    case 'nest':
      replacement = nested(s.depth, target)
      break
    case 'duplicate':
      if (Array.isArray(target) && target.length > 0) target.push(cloneJson(target[0]!))
      return root
    case 'empty':
      replacement = Array.isArray(target) ? [] : target != null && typeof target === 'object' ? {} : ''
      break
  }
  if (path.length === 0) return replacement ?? null
  const parent = at(root, path.slice(0, -1)) as Container
  const key = path[path.length - 1]!
  if (Array.isArray(parent)) {
    if (replacement === undefined) parent.splice(key as number, 1)
    else parent[key as number] = replacement
  } else if (replacement === undefined) delete parent[key as string]
  else put(parent, key as string, replacement)
  return root
}

/**
 * A valid document with 1 to `maxSteps` mutations: a value replaced by a hostile
 * one (wrong type, out of range, huge, unicode, deeply nested), a field dropped,
 * an unknown field added, a value wrapped, an array grown or emptied. Pure random
 * input rarely gets past a parser's first check; a mutated valid one reaches the rest.
 */
export function mutated(valid: Json, { maxSteps = 3 } = {}): fc.Arbitrary<Json> {
  return fc.array(fc.tuple(fc.nat(), step), { minLength: 1, maxLength: maxSteps }).map((steps) => {
    let root = cloneJson(valid)
    for (const [pick, s] of steps) {
      const paths = pathsOf(root)
      root = apply(root, paths[pick % paths.length]!, s)
    }
    return root
  })
}

/** Bytes of a valid document with mutations, or with a few bytes flipped, cut or spliced. */
export function mutatedBytes(valid: Json): fc.Arbitrary<Uint8Array> {
  const text = jsonText(valid)
  return fc.oneof(
    mutated(valid).map((value) => utf8(jsonText(value))),
    fc
      .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((flips) => {
        const bytes = utf8(text)
        for (const [i, b] of flips) bytes[i % bytes.length] = b
        return bytes
      }),
    fc.nat().map((cut) => utf8(text).subarray(0, cut % (text.length + 1))),
    fc.uint8Array({ maxLength: 64 }).map((junk) => {
      const bytes = utf8(text)
      const out = new Uint8Array(bytes.length + junk.length)
      out.set(bytes)
      out.set(junk, bytes.length)
      return out
    }),
  )
}

/** Random bytes, random JSON text and random JSON values' bytes. */
export const randomBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.jsonValue().map((v) => utf8(JSON.stringify(v) ?? 'null')),
  fc.string({ unit: 'binary', maxLength: 200 }).map(utf8),
  hostileValue.map((v) => utf8(jsonText(v))),
  hostileDepth.map((n) => utf8(`${'['.repeat(n)}${']'.repeat(n)}`)),
)
