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

/**
 * A steady load for as long as it takes: back-to-back 1 s bounded runs of
 * `runLoad` (each started on time, not after the previous one drained), summed
 * when the returned function is called.
 */
export function steadyLoad(url: string, rate: number, paths: string[] = ['/']): () => Promise<LoadResult> {
  const runs: Array<Promise<LoadResult>> = []
  let stopped = false
  const loop = (async () => {
    const started = Date.now()
    for (let i = 0; !stopped; i++) {
      runs.push(runLoad(url, { rate, durationMs: 1000, paths }))
      const next = started + (i + 1) * 1000
      while (!stopped && Date.now() < next) await sleep(Math.min(50, next - Date.now()))
    }
  })()
  return async () => {
    stopped = true
    await loop
    const total: LoadResult = { sent: 0, ok: 0, failed: 0, failures: {}, nodes: {} }
    for (const r of await Promise.all(runs)) {
      total.sent += r.sent
      total.ok += r.ok
      total.failed += r.failed
      for (const [k, v] of Object.entries(r.failures)) total.failures[k] = (total.failures[k] ?? 0) + v
      for (const [k, v] of Object.entries(r.nodes)) total.nodes[k] = (total.nodes[k] ?? 0) + v
    }
    return total
  }
}
