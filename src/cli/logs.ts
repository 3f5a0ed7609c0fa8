import { ShoalError } from '../shared/errors.js'
import type { ApiClient } from './client.js'

/** Prints a component's log tail; with `follow`, keeps printing new output until interrupted. */
export async function printLogs(
  client: ApiClient,
  name: string,
  lines: number,
  follow: boolean,
): Promise<void> {
  const url = new URL(
    `/api/components/${encodeURIComponent(name)}/logs?lines=${lines}${follow ? '&follow=true' : ''}`,
    client.baseUrl,
  )
  let response: Response
  try {
    response = await fetch(url, {
      headers: client.authHeaders(),
      ...(follow ? {} : { signal: AbortSignal.timeout(30_000) }),
    })
  } catch (err) {
    throw new ShoalError(
      'ERR_AGENT_UNREACHABLE',
      `cannot reach an agent at ${client.baseUrl}: ${String(err)}`,
      503,
    )
  }
  if (!response.ok) {
    const error = (
      (await response.json().catch(() => null)) as { error?: { code: string; message: string } } | null
    )?.error
    throw new ShoalError(
      error?.code ?? 'ERR_HTTP',
      error?.message ?? `HTTP ${response.status}`,
      response.status,
    )
  }
  const decoder = new TextDecoder()
  for await (const chunk of response.body ?? []) process.stdout.write(decoder.decode(chunk, { stream: true }))
}
