import { ShoalError } from '../shared/errors.js'

/** Talks to an agent's admin API; errors come back as ShoalError with the API's code. */
export class ApiClient {
  constructor(readonly baseUrl: string) {}

  async get<T>(path: string): Promise<T> {
    let response: Response
    try {
      response = await fetch(new URL(path, this.baseUrl), { signal: AbortSignal.timeout(10_000) })
    } catch (err) {
      throw new ShoalError(
        'ERR_AGENT_UNREACHABLE',
        `cannot reach an agent at ${this.baseUrl} (${(err as Error).cause ?? (err as Error).message}); is "shoal agent" running? Point to it with --api or SHOAL_API`,
        503,
      )
    }
    const body = (await response.json().catch(() => null)) as unknown
    if (!response.ok) {
      const error = (body as { error?: { code?: string; message?: string } } | null)?.error
      throw new ShoalError(
        error?.code ?? 'ERR_HTTP',
        error?.message ?? `HTTP ${response.status}`,
        response.status,
      )
    }
    return body as T
  }
}

/** --api, then SHOAL_API, then the default address; accepts HOST:PORT as well as a URL. */
export function apiBaseUrl(option: string | undefined): string {
  const value = option ?? process.env.SHOAL_API ?? 'http://127.0.0.1:7070'
  return /^https?:\/\//.test(value) ? value : `http://${value}`
}
