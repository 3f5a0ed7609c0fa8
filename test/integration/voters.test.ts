import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import type { ManagerStatus, VotersView } from '../../src/manager/index.js'
import { TestCluster } from '../helpers/cluster.js'
import { CLI, runCli } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

const noCli = skipReason(
  import.meta.url,
  'shoal voters through the CLI',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

/** The status and JSON body of a request to `agent`'s API. */
async function call<T = unknown>(
  agent: Agent,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(new URL(path, agent.apiUrl), {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  })
  return { status: response.status, body: (await response.json()) as T }
}

const votersOf = async (agent: Agent) => (await call<VotersView>(agent, 'GET', '/api/voters')).body
const idsOf = (view: VotersView, role: 'voter' | 'learner' = 'voter') =>
  view.members
    .filter((m) => m.role === role)
    .map((m) => m.id)
    .sort()
const sorted = (agents: Agent[]) => agents.map((a) => a.id).sort()
type ErrorBody = { error?: { code: string; message: string } }

describe('GET /api/voters and shoal voters: the Raft configuration as an agent sees it', () => {
  const cluster = new TestCluster()
  let agents: Agent[]
  let leader: Agent

  beforeAll(async () => {
    agents = await cluster.startMany(3)
    await cluster.waitForConvergence(agents)
    leader = await waitFor('a leader that acts with 3 voters', () =>
      agents.find((a) => a.manager.status().acting && a.manager.status().voters.length === 3),
    )
  })

  afterAll(() => cluster.cleanup())

  it('lists the 3 voters and the leader; the leader adds how far each one holds the log', async () => {
    const view = await waitFor('the leader to know every follower’s match', async () => {
      const v = await votersOf(leader)
      return v.members.every((m) => m.leader || (m.match != null && m.match > 0)) ? v : null
    })
    expect(idsOf(view)).toEqual(sorted(agents))
    expect(idsOf(view, 'learner')).toEqual([])
    expect(view).toMatchObject({ leader: leader.id, maxVoters: 5 })
    expect(view.term).toBeGreaterThan(0)
    expect(view.commitIndex).toBeGreaterThan(0)
    expect(view.members.every((m) => m.state === 'alive')).toBe(true)
    expect(view.members.filter((m) => m.leader).map((m) => m.id)).toEqual([leader.id])

    // A follower knows the same voters and leader, but not how far the others are.
    const follower = agents.find((a) => a !== leader)!
    const seen = await votersOf(follower)
    expect(seen).toMatchObject({ leader: leader.id, generation: view.generation })
    expect(idsOf(seen)).toEqual(sorted(agents))
    expect(seen.members.every((m) => m.match == null)).toBe(true)
  })

  it.skipIf(noCli != null)(
    'shoal voters prints the table, --json the view; reset without --force is a usage error',
    async () => {
      const follower = agents.find((a) => a !== leader)!
      const json = await runCli(['voters', '--json', '--api', follower.apiUrl])
      expect(json, json.stderr).toMatchObject({ code: 0, stderr: '' })
      const view = JSON.parse(json.stdout) as VotersView
      expect(view.leader).toBe(leader.id)
      expect(idsOf(view)).toEqual(sorted(agents))

      const human = await runCli(['voters', '--api', leader.apiUrl])
      expect(human, human.stderr).toMatchObject({ code: 0 })
      const [head, header, ...rows] = human.stdout.trimEnd().split('\n')
      expect(head).toMatch(/^leader \S+, term \d+, generation \d+, commit index \d+ \(up to 5 voters\)$/)
      expect(header!.split(/\s+/)).toEqual(['ID', 'ROLE', 'STATE', 'LEADER', 'MATCH'])
      expect(rows).toHaveLength(3)
      expect(rows.filter((r) => / \* /.test(r))).toHaveLength(1)
      for (const row of rows) expect(row).toMatch(/ voter +alive /)
      expect(rows.filter((r) => !/ \* /.test(r)).every((r) => /\d+$/.test(r))).toBe(true)

      // Without --force: exit 2, one line, nothing sent.
      const refused = await runCli(['voters', 'reset', '--api', leader.apiUrl])
      expect(refused.code).toBe(2)
      expect(refused.stdout).toBe('')
      expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(refused.stderr).toMatch(/add --force.*\(ERR_USAGE\)/)
    },
  )

  it('refuses a reset on an agent that never held the log: 409 ERR_NO_RAFT_LOG', async () => {
    // A 4th agent: 3 voters are the target for 4 eligible agents, so it only follows the published state.
    const fresh = await cluster.start()
    await waitFor(
      'the new agent to follow the leader',
      async () => (await votersOf(fresh)).leader === leader.id,
    )
    expect(fresh.manager.status().role).toBe('observer')
    const refused = await call<ErrorBody>(fresh, 'POST', '/api/voters/reset', { force: true })
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'ERR_NO_RAFT_LOG' } } })
    expect(idsOf(await votersOf(leader))).toEqual(sorted(agents))
    if (noCli != null) return
    // Through the CLI: the warning, then the agent's refusal (exit code 4).
    const cli = await runCli(['voters', 'reset', '--force', '--api', fresh.apiUrl])
    expect(cli.code).toBe(4)
    expect(cli.stdout).toBe('')
    expect(cli.stderr).toMatch(/^WARNING: .*new generation/)
    expect(cli.stderr).toMatch(/LOST/)
    expect(cli.stderr).toMatch(/\(ERR_NO_RAFT_LOG\)\n$/)
  })
})

describe('POST /api/voters/reset: a survivor after a majority of the voters is lost for good', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  it('the survivor alone starts a new generation, acts, and brings new agents in as voters', async () => {
    const agents = await cluster.startMany(3)
    await cluster.waitForConvergence(agents)
    const leader = await waitFor('a leader that acts with 3 voters', () =>
      agents.find((a) => a.manager.status().acting && a.manager.status().voters.length === 3),
    )
    const before = await votersOf(leader)
    // The survivor is a follower; the leader and the other follower crash (no leave).
    const survivor = agents.find((a) => a !== leader)!
    const lost = agents.filter((a) => a !== survivor)
    await Promise.all(lost.map((a) => a.stop({ leave: false })))

    // No majority: commands are refused with ERR_NO_QUORUM.
    let last: unknown = null
    const noQuorum = await waitFor(
      'the survivor to answer ERR_NO_QUORUM',
      async () => {
        const answer = await call<ErrorBody>(survivor, 'POST', '/api/rollouts/r1/pause')
        last = answer
        return answer.body.error?.code === 'ERR_NO_QUORUM' ? answer : null
      },
      { timeout: 90_000, interval: 200 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the last answer: ${JSON.stringify(last)}`)
    })
    expect(noQuorum.status).toBe(503)

    // Without force: 400, saying what a reset does.
    for (const body of [undefined, {}, { force: false }]) {
      const refused = await call<ErrorBody>(survivor, 'POST', '/api/voters/reset', body)
      expect(refused).toMatchObject({ status: 400, body: { error: { code: 'ERR_BAD_REQUEST' } } })
      expect(refused.body.error?.message).toMatch(/only voter of a new generation/)
      expect(refused.body.error?.message).toMatch(/"force": true/)
    }
    expect((await call(survivor, 'POST', '/api/voters/reset', { force: 'yes' })).status).toBe(400)
    expect(survivor.manager.status().acting).toBe(false)

    const reset = await call<VotersView>(survivor, 'POST', '/api/voters/reset', { force: true })
    expect(reset.status).toBe(200)
    expect(reset.body.generation).toBe(before.generation + 1)
    expect(reset.body.members.map((m) => [m.id, m.role])).toEqual([[survivor.id, 'voter']])

    await waitFor('the survivor to act alone', async () => {
      const status = (await call<ManagerStatus>(survivor, 'GET', '/api/manager')).body
      return status.acting && status.manager === survivor.id
    })
    expect((await call<ManagerStatus>(survivor, 'GET', '/api/manager')).body).toMatchObject({
      acting: true,
      quorum: true,
      voters: [survivor.id],
    })
    // It decides again: a command reaches the manager, which answers for itself.
    const unknown = await call<ErrorBody>(survivor, 'POST', '/api/rollouts/r1/pause')
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'ERR_NOT_FOUND' } } })

    // Two new agents join it: 3 eligible agents, so 3 voters (learners first, then promoted).
    const bootstrap = [survivor.membership.self.addrs[0]!]
    const joined = await Promise.all([cluster.start({ bootstrap }), cluster.start({ bootstrap })])
    const members = [survivor, ...joined]
    const grown = await waitFor(
      '3 voters of the new generation',
      async () => {
        const view = await votersOf(survivor)
        return JSON.stringify(idsOf(view)) === JSON.stringify(sorted(members)) &&
          idsOf(view, 'learner').length === 0 &&
          view.members.every((m) => m.state === 'alive')
          ? view
          : null
      },
      { timeout: 120_000 },
    )
    expect(grown.generation).toBe(before.generation + 1)
    // Each new agent follows the new generation's leader, as a voter in its log.
    for (const agent of joined) {
      const view = await waitFor(`${agent.id.slice(-6)} to follow the new generation`, async () => {
        const v = await votersOf(agent)
        return v.leader === grown.leader && idsOf(v).length === 3 ? v : null
      })
      expect(view.generation).toBe(before.generation + 1)
      expect(idsOf(view)).toEqual(sorted(members))
      expect(['leader', 'follower']).toContain(agent.manager.status().role)
    }
    const leaderNow = members.find((a) => a.id === grown.leader)!
    await waitFor('the new generation’s leader to act', () => leaderNow.manager.status().acting)
    expect(lost.some((a) => grown.members.some((m) => m.id === a.id))).toBe(false)
  })
})
