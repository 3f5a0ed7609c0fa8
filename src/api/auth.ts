import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import type { MiddlewareHandler } from 'hono'
import { z } from 'zod'
import { ConfigError } from '../shared/index.js'
import { ForbiddenError, UnauthorizedError } from './errors.js'

/** Who may do what through the admin API (docs/operations.md, "Roles and tokens"). */
export const ROLES = ['viewer', 'developer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

/** The holder of a token, as a request carries it to the agent. */
export interface Caller {
  name: string
  role: Role
}

/** Shortest token accepted: 16 characters keep a guessed token out of reach of online guessing. */
export const MIN_TOKEN_LENGTH = 16

const tokensFile = z.strictObject({
  tokens: z
    .array(
      z.strictObject({
        token: z.string().min(MIN_TOKEN_LENGTH, `a token needs at least ${MIN_TOKEN_LENGTH} characters`),
        role: z.enum(ROLES, { error: `a role is one of ${ROLES.join(', ')}` }),
        name: z.string().min(1, 'give each token a name (who holds it)'),
      }),
    )
    .min(1, 'list at least one token'),
})

/**
 * The one table of mutating endpoints and the roles allowed to call them; every
 * GET and HEAD is open to every role. A mutating route missing here is admin-only.
 */
export const MUTATING_ROUTES: ReadonlyArray<{ method: string; path: RegExp; roles: readonly Role[] }> = [
  { method: 'POST', path: /^\/api\/artifacts$/, roles: ['developer', 'admin'] },
  { method: 'POST', path: /^\/api\/distributions$/, roles: ['developer', 'admin'] },
  { method: 'DELETE', path: /^\/api\/distributions\/[^/]+\/[^/]+$/, roles: ['developer', 'admin'] },
  { method: 'POST', path: /^\/api\/publish$/, roles: ['developer', 'admin'] },
  { method: 'POST', path: /^\/api\/nodes$/, roles: ['operator', 'admin'] },
  { method: 'POST', path: /^\/api\/nodes\/[^/]+\/(copy|remove)$/, roles: ['operator', 'admin'] },
  { method: 'POST', path: /^\/api\/verify$/, roles: ['admin'] },
  { method: 'POST', path: /^\/api\/components\/[^/]+\/(start|stop|weight)$/, roles: ['admin'] },
  { method: 'POST', path: /^\/api\/rollouts$/, roles: ['admin'] },
  { method: 'POST', path: /^\/api\/rollouts\/[^/]+\/(approve|pause|resume|abort)$/, roles: ['admin'] },
  { method: 'POST', path: /^\/api\/rollbacks$/, roles: ['admin'] },
  { method: 'POST', path: /^\/api\/voters\/reset$/, roles: ['admin'] },
]

/** The roles that may send `method path`. */
export function rolesFor(method: string, path: string): readonly Role[] {
  if (method === 'GET' || method === 'HEAD') return ROLES
  return MUTATING_ROUTES.find((r) => r.method === method && r.path.test(path))?.roles ?? ['admin']
}

/** Configured tokens, kept only as sha256 digests and compared in constant time. */
export class TokenTable {
  private readonly entries: Array<{ digest: Buffer; caller: Caller }>

  constructor(tokens: ReadonlyArray<Caller & { token: string }>) {
    this.entries = tokens.map(({ token, name, role }) => ({ digest: digest(token), caller: { name, role } }))
  }

  /** Adds a token (the agent's own, for its components: they read the API as viewers). */
  add(token: string, caller: Caller): void {
    this.entries.push({ digest: digest(token), caller })
  }

  /** The caller holding `token`, or null. Looks at every entry, so timing says nothing of which matched. */
  lookup(token: string): Caller | null {
    const presented = digest(token)
    let found: Caller | null = null
    for (const entry of this.entries) if (timingSafeEqual(entry.digest, presented)) found ??= entry.caller
    return found
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** What `loadTokens` needs besides the file: where to say that the file is open to others. */
export interface LoadTokensInit {
  /** Called with one line when the file's mode lets group or others in (the agent logs it as a warning). */
  warn?: (message: string) => void
}

/**
 * Reads and validates a tokens file (`shoal agent --tokens FILE`). A bad file is one
 * ERR_CONFIG listing every problem, each with its field (`tokens.2.role`), so one
 * edit fixes them all. A file that group or others may read still loads, with a
 * warning, as ssh warns of a key file: it holds secrets and should be mode 0600.
 */
export async function loadTokens(file: string, init: LoadTokensInit = {}): Promise<TokenTable> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`tokens file ${file} cannot be read: ${(err as Error).message}`)
  }
  const warning = await modeWarning(file)
  if (warning != null) init.warn?.(warning)
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`tokens file ${file} cannot be read as JSON: ${(err as Error).message}`)
  }
  const problems = tokensFileProblems(raw)
  if (problems.length === 1) throw new ConfigError(`tokens file ${file}: ${problems[0]}`)
  if (problems.length > 1)
    throw new ConfigError(`tokens file ${file} has ${problems.length} problems: ${problems.join('; ')}`)
  return new TokenTable(tokensFile.parse(raw).tokens)
}

/**
 * Every problem of a parsed tokens file as "FIELD: MESSAGE", in the order of the
 * entries; empty when the file is good. A token listed twice is named even when
 * other entries are bad.
 */
export function tokensFileProblems(raw: unknown): string[] {
  const problems: Array<{ entry: number; text: string }> = []
  const parsed = tokensFile.safeParse(raw)
  if (!parsed.success)
    for (const issue of parsed.error.issues) {
      const field = issue.path.length === 0 ? '(top level)' : issue.path.join('.')
      const entry = issue.path[0] === 'tokens' && typeof issue.path[1] === 'number' ? issue.path[1] : -1
      problems.push({ entry, text: `${field}: ${issue.message}` })
    }
  const listed = (raw as { tokens?: unknown } | null)?.tokens
  const first = new Map<string, number>()
  if (Array.isArray(listed))
    listed.forEach((item: unknown, i) => {
      const token = (item as { token?: unknown } | null)?.token
      if (typeof token !== 'string') return
      const earlier = first.get(token)
      if (earlier == null) first.set(token, i)
      else problems.push({ entry: i, text: `tokens.${i}.token: listed twice (also tokens.${earlier}.token)` })
    })
  // Stable: an entry's problems stay in the schema's order, a duplicate after them.
  return problems.sort((a, b) => a.entry - b.entry).map((p) => p.text)
}

/** "tokens file X is readable by others (mode 0644); chmod 600 X", or null when only the owner may use it. */
export async function modeWarning(file: string): Promise<string | null> {
  if (process.platform === 'win32') return null
  const mode = (await stat(file)).mode & 0o777
  if ((mode & 0o077) === 0) return null
  const how = (mode & 0o044) !== 0 ? 'readable' : (mode & 0o022) !== 0 ? 'writable' : 'accessible'
  return `tokens file ${file} is ${how} by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 ${file}`
}

const callers = new WeakMap<Request, Caller>()

/** Who sent this request (null when the agent runs without tokens). */
export function callerOf(request: Request): Caller | null {
  return callers.get(request) ?? null
}

/**
 * With tokens: every /api request but /api/health needs `Authorization: Bearer TOKEN`
 * (401 without a known one) of a role the route allows (403 otherwise).
 */
export function requireToken(tokens: TokenTable): MiddlewareHandler {
  return async (c, next) => {
    const path = c.req.path
    if (!path.startsWith('/api/') || path === '/api/health') return next()
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')
    const caller = match == null ? null : tokens.lookup(match[1]!)
    if (caller == null)
      throw new UnauthorizedError(
        match == null
          ? 'this agent needs an API token: pass --token TOKEN or set SHOAL_TOKEN (header "Authorization: Bearer TOKEN")'
          : 'the API token is not known to this agent',
      )
    callers.set(c.req.raw, caller)
    const allowed = rolesFor(c.req.method, path)
    if (!allowed.includes(caller.role))
      throw new ForbiddenError(
        `${c.req.method} ${path} needs the ${allowed.join(' or ')} role; the token of "${caller.name}" has ${caller.role}`,
      )
    return next()
  }
}
