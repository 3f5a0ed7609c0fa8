import { type ApiClient, agentErrorOf } from './client.js'
import { AgentUnreachableError } from './errors.js'

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
      headers: await client.verifiedAuthHeaders(),
      ...(follow ? {} : { signal: AbortSignal.timeout(30_000) }),
    })
  } catch (err) {
    throw new AgentUnreachableError(client.baseUrl, err)
  }
  if (!response.ok) throw await agentErrorOf(response)
  const decoder = new TextDecoder()
  for await (const chunk of response.body ?? []) process.stdout.write(decoder.decode(chunk, { stream: true }))
}
