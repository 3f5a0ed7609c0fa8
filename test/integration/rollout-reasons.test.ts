import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { formatAuditTrail, type HistoryEntry } from '../../src/cli/views.js'
import type { RolloutView } from '../../src/manager/index.js'
import { checkHealth } from '../../src/runtime/health.js'
import { TestCluster } from '../helpers/cluster.js'
import { oneAgent } from '../helpers/one-agent.js'
import { waitFor } from '../helpers/wait.js'

/** A web server that, with CRASH set, says why on stderr and exits 1 at start. */
const SERVER = `
import { createServer } from 'node:http'
if (process.env.CRASH) {
  console.error('cannot reach the database: db down')
  process.exit(1)
}
createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => process.exit(0))
`

describe('a rollout keeps why it failed, and who acted on it', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  it('a release that exits 1 at start: rolled back, and the record says which node failed and why; approvals are in the audit trail', async () => {
    cluster = new TestCluster()
    const { agent, client, publishWeb } = await oneAgent(cluster)
    await publishWeb('1', SERVER)
    await publishWeb('2', SERVER, { env: { CRASH: '1' } })
    const finished = (id: string, state: string) =>
      waitFor(`${id} ${state}`, async () => {
        const view = await client.get<RolloutView>(`/api/rollouts/${id}`)
        return view.state === state ? view : null
      })

    // A gated rollout: the approval is recorded with who and when.
    const first = await client.post<RolloutView>('/api/rollouts', {
      json: { distribution: 'app@1', approve: 'manual' },
    })
    expect(first.state).toBe('waiting-approval')
    await client.post(`/api/rollouts/${first.id}/approve`)
    const done = await finished(first.id, 'done')
    expect(done.actions).toEqual([{ op: 'approve', by: agent.id, at: expect.any(String) }])

    const bad = await client.post<RolloutView>('/api/rollouts', { json: { distribution: 'app@2' } })
    const back = await finished(bad.id, 'rolled-back')
    expect(back.nodes).toMatchObject({ total: 1, failed: 1, reverted: 1 })
    const node = back.members[0]!
    expect(node.status).toBe('reverted')
    expect(node.error).toMatch(/web failed: crash loop: \d+ failed runs in a row; last run: exit code 1/)
    expect(node.error).toContain('db down')

    // Rolling back to where every node already is: said, not turned into a rollout FROM 1 TO 1.
    const again = await fetch(`${agent.apiUrl}/api/rollbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'app', to: '1' }),
    })
    expect(again.status).toBe(409)
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('ERR_ALREADY_RUNNING')

    // The history keeps it too, and the table names who asked, whole.
    const history = await client.get<HistoryEntry[]>('/api/distributions/app')
    const text = formatAuditTrail(history)
    expect(text).toContain('approve')
    expect(text).toMatch(/failures:\n {2}r2 .*db down/)
  })

  it('a failing health check says what it answered', async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 503
      res.end('db down')
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    try {
      const { port } = server.address() as AddressInfo
      const result = await checkHealth(
        { http: '/healthz', status: 200, intervalMs: 1000, timeoutMs: 2000 },
        { host: '127.0.0.1', port, cwd: '/', env: {} },
      )
      expect(result).toEqual({ healthy: false, detail: '/healthz answered HTTP 503: db down' })
    } finally {
      server.close()
    }
  })
})
