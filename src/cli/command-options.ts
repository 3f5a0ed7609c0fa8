import { type Command, InvalidArgumentError, Option } from 'commander'
import { UsageError } from './errors.js'

/** Options every client command shares: which agent, which token, and JSON output. */
export interface ClientOptions {
  api?: string
  token?: string
  json?: boolean
}

/** The options of commands that start long work and can wait for it. */
export interface WaitOptions {
  wait?: boolean
  /** Seconds. */
  timeout: number
}

/** The help heading of --api, --token, --json and --help. */
export const COMMON_OPTIONS = 'Common options:'

/**
 * Adds `--api`, `--token` and (unless `json: false`) `--json` to a command that
 * talks to an agent, after its own options and under their own help heading.
 * SHOAL_API and SHOAL_TOKEN fill in when the flags are absent; apiClient applies
 * the default address.
 */
export function clientOptions(command: Command, { json = true }: { json?: boolean } = {}): Command {
  command
    .addOption(
      new Option('--api <url>', 'agent API, URL or HOST:PORT (default http://127.0.0.1:7070)')
        .env('SHOAL_API')
        .helpGroup(COMMON_OPTIONS),
    )
    .addOption(
      new Option('--token <token>', 'API token, for agents started with --tokens')
        .env('SHOAL_TOKEN')
        .helpGroup(COMMON_OPTIONS),
    )
  if (json)
    command.addOption(
      new Option(
        '--json',
        'print JSON on stdout; errors as {"error":{"code","message"}} on stderr',
      ).helpGroup(COMMON_OPTIONS),
    )
  return command
}

/** `--wait` (described by `what`) and `--timeout SECONDS`, for commands that start long work. */
export function waitOptions(command: Command, what: string): Command {
  return command
    .option('--wait', what)
    .option('--timeout <seconds>', 'with --wait: give up after this long, exit code 6', timeoutSeconds, 600)
}

/** `--timeout SECONDS` of --wait and --watch: whole seconds, at least 1. */
export const timeoutSeconds = flagValue(
  wholeUpTo(Number.MAX_SAFE_INTEGER / 1000),
  '--timeout is whole seconds (≥ 1)',
)

/** The `Examples:` block of a command's help: each line a command, or a `# comment`. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => (line.startsWith('#') ? `  ${line}` : `  $ ${line}`)).join('\n')}`
}

/** Prints a result on stdout: indented JSON with --json, else the human form. */
export function print(json: boolean | undefined, data: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(data, null, 2) : human())
}

/** A repeatable option: `--bootstrap a --bootstrap b` → ['a', 'b']. */
export const collect = (value: string, previous: string[] = []) => [...previous, value]

export function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number >= 1')
  return n
}

/**
 * A commander parser for a flag whose value `parse` reads, or answers null for;
 * the message then says what the flag takes, in the CLI's words ("--canary is P (1–100)…").
 */
export function flagValue<T>(parse: (value: string) => T | null, takes: string): (value: string) => T {
  return (value) => {
    const parsed = parse(value.trim())
    if (parsed == null) throw new InvalidArgumentError(takes)
    return parsed
  }
}

/** `N` or `P%`: a count of nodes, at least 1, or a share of them, 1–100%. */
export type NodeCount = { maxUnavailable: number } | { maxUnavailablePercent: number }

/** `2` or `25%` (the rollout body's `maxUnavailable` or `maxUnavailablePercent`), else null. */
export function nodeCount(value: string): NodeCount | null {
  const match = /^(\d+)(%?)$/.exec(value)
  if (match == null) return null
  const n = Number(match[1])
  if (match[2] === '%') return n >= 1 && n <= 100 ? { maxUnavailablePercent: n } : null
  return n >= 1 && Number.isSafeInteger(n) ? { maxUnavailable: n } : null
}

/** A whole percent, 1–100, with or without the `%`; else null. */
export function percent(value: string): number | null {
  const match = /^(\d+)%?$/.exec(value)
  const n = Number(match?.[1])
  return match != null && n >= 1 && n <= 100 ? n : null
}

/** Seconds from 0 to `max`, fractions allowed (`0.5`), as milliseconds; else null. */
export function secondsUpTo(max: number): (value: string) => number | null {
  return (value) => {
    if (!/^\d+(\.\d+)?$/.test(value)) return null
    const n = Number(value)
    return n <= max ? Math.round(n * 1000) : null
  }
}

/** `30s`, `1m`, `500ms` or `30` (seconds), from 1 s to `maxSeconds`, as milliseconds; else null. */
export function durationUpTo(maxSeconds: number): (value: string) => number | null {
  return (value) => {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value)
    if (match == null) return null
    const n = Number(match[1])
    const ms = Math.round(match[2] === 'ms' ? n : match[2] === 'm' ? n * 60_000 : n * 1000)
    return ms >= 1000 && ms <= maxSeconds * 1000 ? ms : null
  }
}

/** `10,50,100`: canary steps, percent, rising, each 1–100; else null. */
export function stepList(value: string): number[] | null {
  const steps = value.split(',').map((p) => percent(p.trim()))
  if (steps.length === 0 || steps.some((p) => p == null)) return null
  const list = steps as number[]
  return list.every((p, i) => i === 0 || p > list[i - 1]!) ? list : null
}

/** A whole number from 1 to `max`; else null. */
export function wholeUpTo(max: number): (value: string) => number | null {
  return (value) => {
    if (!/^\d+$/.test(value)) return null
    const n = Number(value)
    return n >= 1 && n <= max ? n : null
  }
}

/** `--tag zone=a --tag tier=web` → {zone: 'a', tier: 'web'}. */
export function parseTags(values: string[]): Record<string, string> {
  const tags: Record<string, string> = {}
  for (const value of values) {
    const at = value.indexOf('=')
    if (at < 1) throw new UsageError(`--tag wants KEY=VALUE (got "${value}")`)
    tags[value.slice(0, at)] = value.slice(at + 1)
  }
  return tags
}

/**
 * Options given before the subcommand (`shoal rollout --api X status r3`) are
 * parsed by `rollout`; they count for the subcommand unless it was given its own.
 */
export function withParentOptions<T extends object>(command: Command, own: T): T {
  const parent = command.parent
  if (parent == null || parent.parent == null) return own
  const merged = { ...own } as Record<string, unknown>
  for (const option of command.options) {
    const key = option.attributeName()
    if (command.getOptionValueSource(key) !== 'cli' && parent.getOptionValueSource(key) === 'cli')
      merged[key] = parent.getOptionValue(key)
  }
  return merged as T
}
