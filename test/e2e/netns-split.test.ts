/**
 * End to end: network faults between real agent processes, each in its own
 * network namespace on one bridge (test/helpers/netns-cluster.ts), driven and
 * observed through every agent's HTTP API as a user would.
 *
 * Splits: two nodes' links are cut (their bridge ports move to another bridge:
 * packets across vanish, no connection is closed or refused), then restored.
 * - the minority (2 of 5) shows no quorum, refuses a rollout with ERR_NO_QUORUM,
 *   and its cluster state head (term, seq) does not move;
 * - the majority (3) agrees on exactly one manager, which takes a decision;
 * - after the heal, every agent lists the same 5 members alive and the same
 *   manager and state head within 5 s (measured from the heal, and printed).
 * Cases: the manager on the minority side (the majority rolls out), on the
 * majority side (it rolls back), and a split in the middle of a rolling rollout
 * (the majority carries it on and waits for the cut-off node; it finishes after the heal).
 *
 * Partial faults: `tc netem` on one direction of one node's link (what it sends):
 * 200 ms ± 50 ms of delay, then 30 % loss, each for a while, counting `dead`
 * verdicts (every process stays alive, so each one is false) and suspicions.
 *
 * The agents run the `lan` timer preset, the one a real LAN runs: the `test`
 * preset's 150 ms probe deadline, made for agents sharing one process, suspects
 * members all the time when five agent processes share two busy cores.
 * Needs root (network namespaces, tc); skipped with the reason printed otherwise.
 * Results and how to run: docs/reliability-splits.md.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MemberView } from '../../src/api/index.js'
import type { ManagerStatus, RolloutView } from '../../src/manager/index.js'
import { makeComponentDistribution } from '../helpers/components.js'
import { netnsUnavailableReason, randomSuffix } from '../helpers/netns.js'
import {
  type LinkShape,
  type NetnsAgent,
  NetnsCluster,
  type ShapeReport,
  shapingUnavailableReason,
} from '../helpers/netns-cluster.js'
import { skipReason } from '../helpers/skip.js'

const unavailable = skipReason(
  import.meta.url,
  'network faults in namespaces',
  await netnsUnavailableReason(),
)
const noShaping =
  unavailable ??
  skipReason(import.meta.url, 'partial network faults (delay, loss)', await shapingUnavailableReason())

/** The issue's target: one view and one manager this soon after the heal. */
const HEAL_TARGET_MS = 5_000
/** How long each partial fault is held. */
const FAULT_MS = 20_000

type ManagerView = ManagerStatus & { stateTerm: number; stateSeq: number }
interface Snapshot {
  agent: NetnsAgent
  members: MemberView[]
  manager: ManagerView
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))
const head = (m: ManagerView) => `${m.stateTerm}/${m.stateSeq}`
const names = (agents: NetnsAgent[]) => agents.map((a) => a.name).join('')

/** A one-component app that answers its version (health checked every 100 ms). */
function helloApp(dir: string, version: string): Promise<string> {
  const server = `
    import { createServer } from 'node:http'
    createServer((req, res) => {
      if (req.url === '/health') return res.end('ok')
      res.end(JSON.stringify({ version: '${version}', node: process.env.SHOAL_NODE_ID }))
    }).listen(Number(process.env.PORT), process.env.HOST)
  `
  return makeComponentDistribution(join(dir, `hello-${version}`), {
    hello: {
      files: { 'main.mjs': server },
      descriptor: { start: { node: 'main.mjs' }, http: true, health: { http: '/health', intervalMs: 100 } },
    },
  })
}

describe.skipIf(unavailable != null)('network faults between 5 agents in network namespaces', () => {
  let c: NetnsCluster
  let keepLogs = false
  /** What each case measured, printed at the end (docs/reliability-splits.md quotes them). */
  const report: string[] = []

  const snapshot = (agents: NetnsAgent[]): Promise<Snapshot[]> =>
    Promise.all(
      agents.map(async (agent) => {
        const [members, manager] = await Promise.all([
          c.get<MemberView[]>(agent, '/api/members'),
          c.get<ManagerView>(agent, '/api/manager'),
        ])
        return { agent, members, manager }
      }),
    )
  const managerOf = (agent: NetnsAgent) => c.get<ManagerView>(agent, '/api/manager')
  const rolloutOn = (agent: NetnsAgent, id: string) => c.get<RolloutView>(agent, `/api/rollouts/${id}`)

  /**
   * The manager every agent of `agents` follows, when they all see exactly `agents`
   * alive, agree on one manager and term with quorum, exactly one of them is it,
   * and (unless `heads` is false) they hold one state head written in that term;
   * else throws why not.
   */
  function agreement(snaps: Snapshot[], agents: NetnsAgent[], { heads = true } = {}): ManagerView {
    const ids = agents.map((a) => a.id).sort()
    for (const s of snaps) {
      const alive = s.members
        .filter((m) => m.state === 'alive')
        .map((m) => m.id)
        .sort()
      if (alive.join() !== ids.join())
        throw new Error(
          `${s.agent.name} sees ${s.members.map((m) => `${c.byId(m.id)?.name}=${m.state}`).join(',')}, not ${names(agents)} alive`,
        )
    }
    const first = snaps[0]!.manager
    const summary = snaps
      .map(
        (s) =>
          `${s.agent.name}: ${c.byId(s.manager.manager)?.name ?? 'none'} t${s.manager.term} q=${s.manager.quorum} ${head(s.manager)}`,
      )
      .join(' | ')
    const same = snaps.every(
      (s) =>
        s.manager.manager === first.manager &&
        s.manager.term === first.term &&
        s.manager.quorum &&
        (!heads || head(s.manager) === head(first)),
    )
    if (first.manager == null || !same || (heads && first.stateTerm !== first.term))
      throw new Error(`no agreement: ${summary}`)
    if (snaps.filter((s) => s.manager.self).length !== 1)
      throw new Error(`not exactly one manager: ${summary}`)
    if (!agents.some((a) => a.id === first.manager)) throw new Error(`manager outside the side: ${summary}`)
    return first
  }

  const agreed = (agents: NetnsAgent[], what: string, timeout: number, interval = 100) =>
    c.waitFor(what, async () => agreement(await snapshot(agents), agents), timeout, interval)

  /** Every agent of `agents` runs `version` with its component ready (as `observer` sees them). */
  const running = (agents: NetnsAgent[], version: string, timeout = 30_000, observer = agents[0]!) =>
    c.waitFor(
      `${names(agents)} to run ${version}`,
      async () => {
        const views = await c.get<MemberView[]>(observer, '/api/members')
        const ok = agents.every((a) => {
          const m = views.find((v) => v.id === a.id)
          return m?.distribution === version && m.ready && m.components.every((x) => x.state === 'ready')
        })
        if (!ok)
          throw new Error(views.map((v) => `${c.byId(v.id)?.name}=${v.distribution}/${v.ready}`).join(' '))
        return true
      },
      timeout,
      200,
    )

  /** Asks `agent` for a rollout; resolves with the record (status 202) or throws the answer. */
  async function startRollout(agent: NetnsAgent, body: Record<string, unknown>): Promise<RolloutView> {
    const answer = await c.post<RolloutView>(agent, '/api/rollouts', body)
    if (answer.status !== 202)
      throw new Error(`rollout refused: ${answer.status} ${JSON.stringify(answer.body)}`)
    return answer.body
  }

  const rolloutState = (agent: NetnsAgent, id: string, states: string[], timeout = 30_000) =>
    c.waitFor(
      `rollout ${id} to be ${states.join(' or ')} on ${agent.name}`,
      async () => {
        const view = await rolloutOn(agent, id)
        if (!states.includes(view.state)) throw new Error(`${view.state} ${JSON.stringify(view.nodes)}`)
        return view
      },
      timeout,
      200,
    )

  /** Every agent shows rollout `id` in `state`, each node at the same step; resolves with that view. */
  const sameEverywhere = (id: string, state: string) =>
    c.waitFor(
      `rollout ${id} to be ${state} with the same steps on every agent`,
      async () => {
        const views = await Promise.all(c.agents.map((a) => rolloutOn(a, id)))
        const steps = (v: RolloutView) =>
          `${v.state} ${v.members.map((m) => `${c.byId(m.id)?.name}=${m.status}`).join(' ')}`
        if (!views.every((v) => v.state === state && steps(v) === steps(views[0]!)))
          throw new Error(views.map(steps).join(' | '))
        return views[0]!
      },
      20_000,
      200,
    )

  beforeAll(async () => {
    const startedAt = Date.now()
    c = await NetnsCluster.start({
      count: 5,
      subnet: '10.213.81',
      prefix: 'shoal-faults',
      cluster: `faults-${randomSuffix()}`,
      preset: 'lan',
      extraArgs: ['--log-level', 'debug'],
    })
    await agreed(c.agents, 'five agents with one manager', 60_000, 250)
    const formedAt = Date.now()
    for (const version of ['1.0', '1.1'])
      await c.cli(c.agents[0]!, [
        'publish',
        await helloApp(c.dir, version),
        '--name',
        'hello',
        '--version',
        version,
        '--key',
        c.keyFile,
        '--json',
      ])
    await c.waitFor(
      'every agent to hold hello 1.0 and 1.1',
      async () => {
        for (const agent of c.agents) {
          const list = await c.get<Array<{ id: string; complete: boolean }>>(agent, '/api/distributions')
          if (list.filter((d) => d.id.startsWith('hello@') && d.complete).length < 2) return undefined
        }
        return true
      },
      30_000,
      250,
    )
    const first = await startRollout(c.agents[1]!, { distribution: 'hello@1.0' })
    await rolloutState(c.agents[0]!, first.id, ['done'])
    await running(c.agents, 'hello@1.0')
    report.push(
      `set-up: 5 agents formed one cluster in ${formedAt - startedAt} ms; hello 1.0 and 1.1 published ` +
        `and 1.0 rolled out everywhere in ${Date.now() - formedAt} ms`,
    )
  }, 300_000)

  afterAll(async () => {
    if (report.length > 0) console.log(`[netns faults e2e]\n${report.join('\n')}`)
    await c?.destroy(keepLogs)
  })

  describe('a 3 + 2 split made by cutting links, healed later', () => {
    /**
     * Cuts `minority` off, checks both sides while cut (and lets `decide` make the
     * majority act), heals, and measures the time to one view and one manager.
     */
    async function split(
      label: string,
      minority: NetnsAgent[],
      decide: (majority: NetnsAgent[]) => Promise<void>,
      settled?: ManagerView,
    ): Promise<{ majorityManager: ManagerView; healMs: number; before: ManagerView }> {
      const before = settled ?? (await agreed(c.agents, 'a settled cluster before the cut', 20_000))
      const majority = c.agents.filter((a) => !minority.includes(a))
      const managerOnMinority = minority.some((a) => a.id === before.manager)

      const atCut = (await Promise.all(minority.map(managerOf))).map(head)
      const cutAt = Date.now()
      await c.split(minority)
      let healAt = 0
      try {
        await c.waitFor(
          'the minority to see no quorum',
          async () =>
            (await Promise.all(minority.map(managerOf))).every((m) => !m.quorum) ? true : undefined,
          20_000,
        )
        const noQuorumMs = Date.now() - cutAt
        // Until it sees the cut, an old manager on the 2-side may still write (its term is
        // fenced off by the new one); once the 2-side knows it has no quorum, nothing may change.
        const minorityHeads = (await Promise.all(minority.map(managerOf))).map(head)
        const majorityManager = await c.waitFor(
          'the majority to agree on one manager of its own',
          async () => {
            const view = agreement(await snapshot(majority), majority)
            if (managerOnMinority && view.term <= before.term) throw new Error(`still term ${view.term}`)
            return view
          },
          20_000,
        )
        const electedMs = Date.now() - cutAt
        if (managerOnMinority) expect(majorityManager.term).toBeGreaterThan(before.term)
        else expect(majorityManager).toMatchObject({ manager: before.manager, term: before.term })

        // A valid rollout asked on the minority is refused: no quorum there.
        const refusals = await Promise.all(
          minority.map(async (agent) => {
            const askedAt = Date.now()
            const answer = await c.post<{ error?: { code: string } }>(agent, '/api/rollouts', {
              distribution: 'hello@1.1',
            })
            return { status: answer.status, code: answer.body.error?.code, ms: Date.now() - askedAt }
          }),
        )
        for (const r of refusals) expect(r).toMatchObject({ status: 503, code: 'ERR_NO_QUORUM' })

        // The majority acts; meanwhile (and until the heal) the minority changes nothing.
        let minorityChecks = 0
        const watching = { on: true }
        const watchMinority = (async () => {
          while (watching.on) {
            for (const m of await Promise.all(minority.map(managerOf))) {
              expect(m.quorum).toBe(false)
              expect(m.acting).toBe(false)
              expect(m.claim ?? 0).toBeLessThanOrEqual(before.term)
            }
            minorityChecks++
            await sleep(200)
          }
        })()
        try {
          await decide(majority)
        } finally {
          watching.on = false
          await watchMinority
        }
        // The minority decided nothing: a state that reaches it now was committed before the cut
        // (the old leader applied it and publishing it goes on), so no new term was written there
        // and the majority holds at least as much of the log.
        const majorityHeads = (await Promise.all(majority.map(managerOf))).map(head)
        const majoritySeq = Math.max(...majorityHeads.map((h) => Number(h.split('/')[1])))
        for (const [i, now] of (await Promise.all(minority.map(managerOf))).map(head).entries()) {
          expect(now.split('/')[0]).toBe(minorityHeads[i]!.split('/')[0])
          expect(Number(now.split('/')[1])).toBeLessThanOrEqual(majoritySeq)
        }
        expect(minorityChecks).toBeGreaterThan(0)

        healAt = Date.now()
        await c.heal()
        // When each part of "one view, one manager" first held after the heal (ms), for the report.
        const firsts = new Map<string, number>()
        const first = (what: string, met: boolean) => {
          if (met && !firsts.has(what)) firsts.set(what, Date.now() - healAt)
        }
        // A poll round is 10 API calls; its length bounds how late a heal is seen.
        let round = 0
        const after = await c.waitFor(
          'one view and one manager after the heal',
          async () => {
            const roundAt = Date.now()
            const snaps = await snapshot(c.agents)
            round = Date.now() - roundAt
            for (const s of snaps)
              first(`${s.agent.name} sees 5 alive`, s.members.filter((m) => m.state === 'alive').length === 5)
            const [one] = snaps.map((s) => s.manager)
            first(
              'one manager',
              snaps.every(
                (s) => s.manager.manager === one!.manager && s.manager.term === one!.term && s.manager.quorum,
              ),
            )
            return agreement(snaps, c.agents, { heads: false })
          },
          60_000,
        )
        const healMs = Date.now() - healAt
        // The state the manager writes reaches everyone too (while a rollout runs it moves on, so this can lag).
        await agreed(c.agents, 'one state head after the heal', 30_000)
        firsts.set('one state head', Date.now() - healAt)
        report.push(
          `${label}: minority ${names(minority)} without quorum after ${noQuorumMs} ms; ` +
            `majority ${names(majority)} agreed on manager ${c.byId(majorityManager.manager)?.name} ` +
            `(term ${before.term} -> ${majorityManager.term}) after ${electedMs} ms; ` +
            `minority state head at the cut ${atCut.join(',')}, once it knew ${minorityHeads.join(',')}; ` +
            `rollout asked on the minority: ${refusals.map((r) => `${r.status} ${r.code} in ${r.ms} ms`).join(', ')}; ` +
            `cut for ${healAt - cutAt} ms; heal to one view + one manager: ${healMs} ms (target ${HEAL_TARGET_MS} ms, ` +
            `last poll round ${round} ms; ` +
            `${[...firsts].map(([what, ms]) => `${what} ${ms}`).join(', ')})`,
        )
        // The majority's manager and term win; its decisions are everyone's.
        expect(after).toMatchObject({ manager: majorityManager.manager, term: majorityManager.term })
        expect(healMs).toBeLessThanOrEqual(HEAL_TARGET_MS)
        return { majorityManager, healMs, before }
      } finally {
        // A failed check must not leave the next case a split cluster.
        if (healAt === 0) await c.heal()
      }
    }

    it('manager on the minority side: the 2-side refuses and changes nothing; the 3-side elects a new manager and rolls out; one view and one manager within 5 s of the heal', async ({
      onTestFailed,
    }) => {
      onTestFailed(() => {
        keepLogs = true
      })
      const before = await agreed(c.agents, 'a settled cluster', 20_000)
      const manager = c.byId(before.manager)!
      const minority = [manager, c.agents.find((a) => a !== manager)!]
      let rolloutId = ''
      await split('manager on the minority side', minority, async (majority) => {
        const rollout = await startRollout(majority[0]!, { distribution: 'hello@1.1' })
        rolloutId = rollout.id
        const done = await rolloutState(majority[0]!, rollout.id, ['done'])
        // Nodes already dead when it started are not in it: they follow the cluster's version once back.
        expect(done.nodes).toMatchObject({ total: 3, done: 3 })
        await running(majority, 'hello@1.1')
        // The minority never heard of it and still runs what it ran.
        for (const agent of minority) {
          const list = await c.get<RolloutView[]>(agent, '/api/rollouts')
          expect(list.map((r) => r.id)).not.toContain(rollout.id)
        }
        await running(minority, 'hello@1.0', 5_000)
      })
      // After the heal: one record of that rollout everywhere, and the cut-off nodes follow the cluster's version.
      await sameEverywhere(rolloutId, 'done')
      await running(c.agents, 'hello@1.1')
    })

    it('manager on the majority side: its term does not change, the 2-side refuses; the 3-side rolls back; one view and one manager within 5 s of the heal', async ({
      onTestFailed,
    }) => {
      onTestFailed(() => {
        keepLogs = true
      })
      const before = await agreed(c.agents, 'a settled cluster', 20_000)
      const minority = c.agents.filter((a) => a.id !== before.manager).slice(-2)
      let rollbackId = ''
      const { majorityManager } = await split('manager on the majority side', minority, async (majority) => {
        const answer = await c.post<RolloutView>(majority[1]!, '/api/rollbacks', { name: 'hello' })
        expect(answer.status).toBe(202)
        rollbackId = answer.body.id
        expect(answer.body).toMatchObject({ kind: 'rollback', distribution: 'hello@1.0' })
        await rolloutState(majority[0]!, rollbackId, ['done'])
        await running(majority, 'hello@1.0')
        await running(minority, 'hello@1.1', 5_000)
      })
      expect(majorityManager.manager).toBe(before.manager)
      await sameEverywhere(rollbackId, 'done')
      await running(c.agents, 'hello@1.0')
    })

    it('split during a rolling rollout, manager on the minority side: the 3-side carries it on and waits for the cut-off node, the 2-side does not move it; after the heal it finishes, one rollout state everywhere', async ({
      onTestFailed,
    }) => {
      onTestFailed(() => {
        keepLogs = true
      })
      const before = await agreed(c.agents, 'a settled cluster', 20_000)
      const manager = c.byId(before.manager)!
      const rollout = await startRollout(c.agents[0]!, {
        distribution: 'hello@1.1',
        strategy: 'rolling',
        maxUnavailable: 1,
        minReadyMs: 1000,
      })
      // Mid-way: at least one node done, at least two still pending, one of them not the manager.
      const progress = await c.waitFor(
        'the rolling rollout to be mid-way',
        async () => {
          const view = await rolloutOn(manager, rollout.id)
          const pending = view.members.filter((m) => m.status === 'pending' && m.id !== manager.id)
          return view.nodes.done >= 1 && view.nodes.pending >= 2 && pending.length > 0 ? view : undefined
        },
        30_000,
        50,
      )
      const pendingNode = c.byId(
        progress.members.find((m) => m.status === 'pending' && m.id !== manager.id)!.id,
      )!
      const minority = [manager, pendingNode]
      const statuses = (view: RolloutView) => view.members.map((m) => `${c.byId(m.id)?.name}=${m.status}`)
      let held: string[] = []
      let majorityDuring: string[] = []
      await split(
        'split during a rolling rollout (manager on the minority side)',
        minority,
        async (majority) => {
          // What the 2-side holds of the rollout once it knows it has no quorum (checked unchanged to the heal).
          const minorityView = await rolloutOn(pendingNode, rollout.id)
          held = statuses(minorityView)
          // The 3-side's new manager carries the rollout on: every node it can reach gets done...
          const carried = await c.waitFor(
            'the 3-side to update every node it reaches',
            async () => {
              const view = await rolloutOn(majority[0]!, rollout.id)
              const reachable = view.members.filter((m) => majority.some((a) => a.id === m.id))
              if (!reachable.every((m) => m.status === 'done')) throw new Error(statuses(view).join(' '))
              return view
            },
            40_000,
            200,
          )
          majorityDuring = statuses(carried)
          await running(majority, 'hello@1.1')
          // ...and, within the voter-removal delay (30 s in `lan`), waits for the cut-off nodes rather than drop them.
          expect(carried.state).toBe('running')
          expect(['pending', 'updating']).toContain(
            carried.members.find((m) => m.id === pendingNode.id)?.status,
          )
          // The 2-side's record did not move, and a node it holds pending did not switch.
          expect(statuses(await rolloutOn(pendingNode, rollout.id))).toEqual(held)
          if (minorityView.members.find((m) => m.id === pendingNode.id)?.status === 'pending') {
            const status = await c.get<{ distribution: string | null }>(pendingNode, '/api/status')
            expect(status.distribution).toBe('hello@1.0')
          }
        },
        before,
      )
      // After the heal the cut-off nodes take their turn and the rollout ends, the same everywhere.
      await rolloutState(c.agents[0]!, rollout.id, ['done'], 40_000)
      const done = await sameEverywhere(rollout.id, 'done')
      expect(done.nodes).toMatchObject({ total: 5, done: 5 })
      await running(c.agents, 'hello@1.1')
      report.push(
        `  rollout at the cut (as the 2-side holds it): ${held.join(' ')}; ` +
          `on the 3-side before the heal: ${majorityDuring.join(' ')}; after: ${statuses(done).join(' ')}`,
      )
    })
  })

  describe.skipIf(noShaping != null)(
    'partial faults on one direction of one link (tc netem, or the userspace shaper)',
    () => {
      interface FaultCount {
        /** Distinct (member, incarnation) dead verdicts seen in any agent's member list (polled every 200 ms). */
        dead: number
        /** From the logs: dead claims about itself an agent had to refute (distinct per agent and incarnation). */
        deadRefuted: number
        /** Distinct (member, incarnation) suspicions seen in any member list. */
        suspect: number
        /** `member suspected` lines logged in the window (suspicions raised by a prober). */
        suspicionsRaised: number
        /** Manager changes seen (term or manager id) on any agent. */
        managerChanges: number
        polls: number
      }

      /** Log lines of `agent` stamped at or after `since`. */
      async function logSince(agent: NetnsAgent, since: number): Promise<string[]> {
        const text = await readFile(agent.log, 'utf8')
        return text.split('\n').filter((line) => Date.parse(line.slice(0, 24)) >= since)
      }

      /**
       * Holds `shape` on what `target` sends for `ms`, polling every agent's member
       * list every 200 ms, then lifts it and waits for one view again.
       */
      async function underFault(
        label: string,
        target: NetnsAgent,
        shape: LinkShape,
        ms: number,
      ): Promise<FaultCount> {
        const before = await agreed(c.agents, 'a settled cluster', 30_000)
        const dead = new Set<string>()
        const suspect = new Set<string>()
        const managers = new Set<string>([`${before.manager}/${before.term}`])
        let polls = 0
        const startedAt = Date.now()
        let shaper = ''
        let shaped: ShapeReport | null = null
        try {
          shaper = await c.shape(target, 'out', shape)
          while (Date.now() - startedAt < ms) {
            const round = Date.now()
            const snaps = await snapshot(c.agents)
            for (const s of snaps) {
              for (const m of s.members) {
                if (m.state === 'dead') dead.add(`${m.id}/${m.incarnation}`)
                if (m.state === 'suspect') suspect.add(`${m.id}/${m.incarnation}`)
              }
              if (s.manager.manager != null) managers.add(`${s.manager.manager}/${s.manager.term}`)
            }
            polls++
            await sleep(Math.max(0, 200 - (Date.now() - round)))
          }
        } finally {
          shaped = await c.unshape()
        }
        const lines = (await Promise.all(c.agents.map((a) => logSince(a, startedAt)))).flat()
        const count: FaultCount = {
          dead: dead.size,
          deadRefuted: (
            await Promise.all(
              c.agents.map(async (a) => {
                const refuted = (await logSince(a, startedAt)).filter((l) =>
                  l.includes('refuting claim about self kind=dead'),
                )
                return new Set(refuted.map((l) => l.split('=').at(-1))).size
              }),
            )
          ).reduce((x, y) => x + y, 0),
          suspect: suspect.size,
          suspicionsRaised: lines.filter((l) => l.includes('member suspected')).length,
          managerChanges: managers.size - 1,
          polls,
        }
        const settledAt = Date.now()
        await agreed(c.agents, 'one view again once the fault is lifted', 30_000)
        report.push(
          `${label} on ${target.name}${target.id === before.manager ? ' (the manager)' : ''} for ${ms} ms: ` +
            `dead verdicts ${count.dead} (dead claims refuted, from the logs: ${count.deadRefuted}), suspicions seen ${count.suspect}, ` +
            `raised ${count.suspicionsRaised}, manager changes ${count.managerChanges}, polls ${polls}` +
            `; shaper ${shaper}: ${JSON.stringify(shaped)}; one view again ${Date.now() - settledAt} ms after lifting it`,
        )
        return count
      }

      it('200 ms ± 50 ms of delay on what one node (the manager) sends: no false dead verdict, the manager stays', async ({
        onTestFailed,
      }) => {
        onTestFailed(() => {
          keepLogs = true
        })
        const manager = c.byId((await agreed(c.agents, 'a settled cluster', 20_000)).manager)!
        const count = await underFault(
          'delay 200ms 50ms (one way)',
          manager,
          { delayMs: 200, jitterMs: 50 },
          FAULT_MS,
        )
        expect(count.dead).toBe(0)
        expect(count.deadRefuted).toBe(0)
        expect(count.managerChanges).toBe(0)
        // Polling slows down on a busy machine; the logs count every dead claim regardless.
        expect(count.polls).toBeGreaterThan(0)
      })

      it('30 % loss on what one node sends: suspicions may come and go, no member is declared dead', async ({
        onTestFailed,
      }) => {
        onTestFailed(() => {
          keepLogs = true
        })
        const before = await agreed(c.agents, 'a settled cluster', 20_000)
        const target = c.agents.find((a) => a.id !== before.manager)!
        const count = await underFault('loss 30% (one way)', target, { lossPercent: 30 }, FAULT_MS)
        expect(count.dead).toBe(0)
        expect(count.deadRefuted).toBe(0)
        // Polling slows down on a busy machine; the logs count every dead claim regardless.
        expect(count.polls).toBeGreaterThan(0)
      })
    },
  )
})
