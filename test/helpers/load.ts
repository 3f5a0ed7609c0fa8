import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'

export interface LoadResult {
  sent: number
  ok: number
  failed: number
  /** Status codes and error codes of the failures, with how many of each. */
  failures: Record<string, number>
  /** Which node answered, from the JSON body's `node`, with how many answers each. */
  nodes: Record<string, number>
}

/**
 * A bounded, fixed-rate load: `rate` requests per second for `durationMs`,
 * cycling through `paths` (`/x` for a GET, `POST /x` for a POST), on a keep-alive pool. A
 * request fails on a non-2xx status or a transport error.
 */
export async function runLoad(
  base: string,
  { rate, durationMs, paths = ['/'] }: { rate: number; durationMs: number; paths?: string[] },
): Promise<LoadResult> {
  const dispatcher = new Agent({ connections: 64, keepAliveTimeout: 10_000 })
  const result: LoadResult = { sent: 0, ok: 0, failed: 0, failures: {}, nodes: {} }
  const inflight = new Set<Promise<void>>()
  const started = Date.now()
  const fail = (why: string) => {
    result.failed++
    result.failures[why] = (result.failures[why] ?? 0) + 1
  }
  for (let i = 0; Date.now() - started < durationMs; i++) {
    const due = started + (i * 1000) / rate
    if (due > Date.now()) await sleep(due - Date.now())
    // "POST /x" sends a POST (which a proxy may not retry); a bare path is a GET.
    const [method, path] = paths[i % paths.length]!.includes(' ')
      ? (paths[i % paths.length]!.split(' ') as ['POST', string])
      : (['GET', paths[i % paths.length]!] as const)
    result.sent++
    const one = request(`${base}${path}`, { method, dispatcher, headersTimeout: 15_000, bodyTimeout: 15_000 })
      .then(async (res) => {
        const text = await res.body.text()
        if (res.statusCode >= 200 && res.statusCode < 300) {
          result.ok++
          const node = (JSON.parse(text) as { node?: string }).node ?? '?'
          result.nodes[node] = (result.nodes[node] ?? 0) + 1
        } else fail(`HTTP ${res.statusCode}`)
      })
      .catch((err: { code?: string; message?: string }) => fail(err.code ?? err.message ?? 'error'))
      .finally(() => inflight.delete(one))
    inflight.add(one)
  }
  await Promise.all(inflight)
  await dispatcher.close()
  return result
}
