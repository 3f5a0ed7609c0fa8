import { ForbiddenHostError } from '../api/index.js'
import { type ErrorCode, NotFoundError } from '../shared/index.js'
import { AgentError, AgentUnreachableError, HTTP_ERROR, NotAnAgentError } from './errors.js'

export interface RequestOptions {
  json?: unknown
  body?: ReadableStream<Uint8Array>
  headers?: Record<string, string>
  timeoutMs?: number
}

/**
 * Where the CLI asks, without credentials, what answers at an address. An agent
 * answers it with its own JSON 404; a Shoal load balancer's admin listener with its
 * status; its public listener forwards it to the application and adds `Via: … shoal-lb`.
 */
export const PROBE_PATH = '/_shoal/lb'

/** Probe verdicts of this process, by base URL: one small request per address per CLI invocation. */
const verdicts = new Map<string, Promise<void>>()

/**
 * Resolves when `baseUrl` is a Shoal agent's API; rejects with NotAnAgentError
 * (it names what answered instead) or AgentUnreachableError. Sends no token.
 */
export function checkAgent(baseUrl: string, timeoutMs = 30_000): Promise<void> {
  const known = verdicts.get(baseUrl)
  if (known != null) return known
  const verdict = probe(baseUrl, timeoutMs)
  verdicts.set(baseUrl, verdict)
  // An unreachable agent may be up on the next try (rollout --wait retries nothing, but a caller may).
  verdict.catch(() => {
    if (verdicts.get(baseUrl) === verdict) verdicts.delete(baseUrl)
  })
  return verdict
}

async function probe(baseUrl: string, timeoutMs: number): Promise<void> {
  let response: Response
  let text: string
  try {
    response = await fetch(new URL(PROBE_PATH, baseUrl), {
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    // Only a short JSON or plain-text answer tells anything; an application's page is left unread.
    const type = response.headers.get('content-type') ?? ''
    const length = Number(response.headers.get('content-length') ?? 0)
    if (/json|text\/plain/.test(type) && length <= 64 * 1024) text = await response.text()
    else {
      text = ''
      await response.body?.cancel()
    }
  } catch (err) {
    throw new AgentUnreachableError(baseUrl, err)
  }
  const what = identify(response, text)
  if (what != null) throw new NotAnAgentError(baseUrl, what)
}

/** What answered the probe, in words, or null for a Shoal agent. */
export function identify(response: Response, text: string): string | null {
  const type = response.headers.get('content-type') ?? ''
  let body: unknown = null
  if (type.includes('json'))
    try {
      body = JSON.parse(text)
    } catch {}
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error
  // The agent: its 404 for a path it does not serve, or (no tokens, a non-loopback
  // host name) its browser guard, whose message the real request will show.
  if (
    (response.status === 404 &&
      error?.code === NotFoundError.code &&
      typeof error.message === 'string' &&
      error.message.startsWith('no such endpoint')) ||
    (response.status === 403 && error?.code === ForbiddenHostError.code)
  )
    return null
  // Its public listener forwards every path to the application and names itself in `Via`.
  if (/\bshoal-lb\b/.test(response.headers.get('via') ?? ''))
    return "is a Shoal load balancer (the application's address), not an agent's API"
  const lb = body as { service?: unknown; backends?: unknown } | null
  if (response.status === 200 && typeof lb?.service === 'string' && Array.isArray(lb.backends))
    return `is a Shoal load balancer's admin listener (service ${lb.service}), not an agent's API`
  if (
    response.status === 401 &&
    typeof error?.message === 'string' &&
    error.message.startsWith("this load balancer's admin listener")
  )
    return "is a Shoal load balancer's admin listener, not an agent's API"
  if (response.status === 404 && text.startsWith('only GET /metrics is served here'))
    return "is a Shoal metrics port (it serves only GET /metrics), not an agent's API"
  const server = response.headers.get('server')
  return `is not a Shoal agent (GET ${PROBE_PATH} answered HTTP ${response.status}${
    type === '' ? '' : ` ${type.split(';')[0]}`
  }${server == null ? '' : ` from ${server}`})`
}

/** Turns an error answer (`{"error":{"code","message"}}`, or anything else) into an AgentError. */
export async function agentErrorOf(response: Response): Promise<AgentError> {
  const payload = (await response.json().catch(() => null)) as {
    error?: { code?: string; message?: string }
  } | null
  return new AgentError(
    wireCode(payload?.error?.code) ?? HTTP_ERROR,
    payload?.error?.message ?? `HTTP ${response.status}`,
    response.status,
  )
}

/** A code as an agent sent it, when it looks like one. */
function wireCode(code: unknown): ErrorCode | undefined {
  return typeof code === 'string' && /^ERR_[A-Z0-9_]+$/.test(code) ? (code as ErrorCode) : undefined
}

export interface ApiClientInit {
  /**
   * Before the first request, make sure a Shoal agent answers at `baseUrl`
   * (`checkAgent`), so that a token never goes to a load balancer, a metrics port or
   * an application. The CLI sets it (`apiClient`); callers that made the agent
   * themselves (the demo, an agent calling its own API) leave it off.
   */
  checkAgent?: boolean
}

/** Talks to an agent's admin API; errors come back as AgentError with the API's code. */
export class ApiClient {
  /** `token`: sent as `Authorization: Bearer TOKEN` to agents started with --tokens. */
  constructor(
    readonly baseUrl: string,
    readonly token: string | undefined = undefined,
    readonly init: ApiClientInit = {},
  ) {}

  /**
   * The Authorization header, when there is a token, without checking the address:
   * callers that fetch themselves should use `verifiedAuthHeaders()`.
   */
  authHeaders(): Record<string, string> {
    return this.token == null || this.token === '' ? {} : { authorization: `Bearer ${this.token}` }
  }

  /** `authHeaders()`, once the address is known to be an agent's API (when `checkAgent` is set). */
  async verifiedAuthHeaders(): Promise<Record<string, string>> {
    if (this.init.checkAgent) await checkAgent(this.baseUrl)
    return this.authHeaders()
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }

  post<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, options)
  }

  /** GET that answers null on 404 instead of throwing. */
  async find<T>(path: string): Promise<T | null> {
    try {
      return await this.get<T>(path)
    } catch (err) {
      if (err instanceof AgentError && err.status === 404) return null
      throw err
    }
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { ...(await this.verifiedAuthHeaders()), ...options.headers }
    let body: string | ReadableStream<Uint8Array> | undefined
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.json)
    } else if (options.body != null) {
      headers['content-type'] = 'application/octet-stream'
      body = options.body
    }
    let response: Response
    try {
      response = await fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        ...(options.body != null ? { duplex: 'half' } : {}),
      } as RequestInit)
    } catch (err) {
      throw new AgentUnreachableError(this.baseUrl, err)
    }
    if (!response.ok) throw await agentErrorOf(response)
    return (await response.json().catch(() => null)) as T
  }
}

/** --api, then SHOAL_API, then the default address; accepts HOST:PORT as well as a URL. */
export function apiBaseUrl(option: string | undefined): string {
  const value = option ?? process.env.SHOAL_API ?? 'http://127.0.0.1:7070'
  return /^https?:\/\//.test(value) ? value : `http://${value}`
}

/** A client for `--api` and `--token` (or SHOAL_API and SHOAL_TOKEN). */
export function apiClient(opts: { api?: string; token?: string }): ApiClient {
  return new ApiClient(apiBaseUrl(opts.api), opts.token ?? process.env.SHOAL_TOKEN, { checkAgent: true })
}
