import { setTimeout as sleep } from 'node:timers/promises'
import type { Operation } from '../providers/index.js'
import type { ApiClient } from './client.js'
import { NodeOperationFailedError, WaitTimeoutError } from './errors.js'
import { table } from './table.js'

interface WaitOptions {
  wait?: boolean
  timeout: number
  json?: boolean
}

/**
 * Starts a node operation and, with --wait, follows it: each step is printed as
 * it happens (to stderr, so --json output stays one document), and the command
 * exits 1 if a node failed (the JSON error carries the operation), 6 if time ran out.
 */
export async function startOperation(
  client: ApiClient,
  path: string,
  body: Record<string, unknown>,
  options: WaitOptions,
): Promise<void> {
  let op = await client.post<Operation>(path, { json: body })
  if (!options.wait) {
    print(
      options,
      op,
      `${op.kind} started as ${op.id}; follow it with: curl ${client.baseUrl}/api/operations/${op.id}`,
    )
    return
  }
  const deadline = Date.now() + options.timeout * 1000
  let shown = 0
  for (;;) {
    for (const step of op.steps.slice(shown)) process.stderr.write(`${step.at.slice(11, 23)}  ${step.text}\n`)
    shown = op.steps.length
    if (op.state !== 'running') break
    if (Date.now() > deadline)
      throw new WaitTimeoutError(
        `${op.kind} ${op.id} not done after ${options.timeout} s; follow it with: curl ${client.baseUrl}/api/operations/${op.id}`,
      )
    await sleep(250)
    op = await client.get<Operation>(`/api/operations/${op.id}`)
  }
  if (op.state === 'failed')
    throw new NodeOperationFailedError(`${op.kind} failed: ${op.error}`, { operation: op })
  const ids = op.nodes.map((n) => n.id ?? n.handle).join(', ')
  print(options, op, `${op.kind} done: ${ids}`)
}

function print(options: WaitOptions, op: Operation, text: string): void {
  console.log(options.json ? JSON.stringify(op, null, 2) : text)
}

interface NodeRow {
  id: string | null
  state: string
  member: string | null
  provider: string | null
  handle: string | null
  distribution: string | null
}

export function formatNodes(list: NodeRow[]): string {
  if (list.length === 0) return 'no nodes'
  return table(
    ['ID', 'STATE', 'MEMBER', 'DISTRIBUTION', 'PROVIDER', 'HANDLE'],
    list.map((n) => [
      n.id ?? '-',
      n.state,
      n.member ?? '-',
      n.distribution ?? '-',
      n.provider ?? '(by hand)',
      n.handle ?? '-',
    ]),
  )
}
