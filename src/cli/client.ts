import { ShoalError } from '../shared/errors.js'

export interface RequestOptions {
  json?: unknown
  body?: ReadableStream<Uint8Array>
  headers?: Record<string, string>
  timeoutMs?: number
}

/** The agent answered with an error: its code and message, and the HTTP status (exit code 4 or 5). */
export class AgentError extends ShoalError {
  constructor(code: string, message: string, status: number) {
    super(code, message, status)
    this.name = 'AgentError'
  }
}

/** No answer from the agent: refused, unresolvable or timed out (exit code 3). */
export class AgentUnreachableError extends ShoalError {
  constructor(baseUrl: string, cause: unknown) {
    const detail = (cause as Error).cause ?? (cause as Error).message ?? String(cause)
    super(
      'ERR_AGENT_UNREACHABLE',
      `cannot reach an agent at ${baseUrl} (${String(detail)}); is "shoal agent" running? Point to it with --api or SHOAL_API`,
      503,
    )
    this.name = 'AgentUnreachableError'
  }
}

/** Turns an error answer (`{"error":{"code","message"}}`, or anything else) into an AgentError. */
export async function agentErrorOf(response: Response): Promise<AgentError> {
  const payload = (await response.json().catch(() => null)) as {
    error?: { code?: string; message?: string }
  } | null
  return new AgentError(
    payload?.error?.code ?? 'ERR_HTTP',
    payload?.error?.message ?? `HTTP ${response.status}`,
    response.status,
  )
}

/** Talks to an agent's admin API; errors come back as AgentError with the API's code. */
export class ApiClient {
  /** `token`: sent as `Authorization: Bearer TOKEN` to agents started with --tokens. */
  constructor(
    readonly baseUrl: string,
    readonly token: string | undefined = undefined,
  ) {}

  /** The Authorization header, when there is a token. */
  authHeaders(): Record<string, string> {
    return this.token == null || this.token === '' ? {} : { authorization: `Bearer ${this.token}` }
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
    const headers: Record<string, string> = { ...this.authHeaders(), ...options.headers }
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
  return new ApiClient(apiBaseUrl(opts.api), opts.token ?? process.env.SHOAL_TOKEN)
}
