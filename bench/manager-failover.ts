/**
 * Leader failover with a rollout in flight (issue 18). N agent processes (preset
 * lan, closed by a secret) run the `gate` distribution; a rolling rollout
 * (max-unavailable 1, min-ready 0) moves them one at a time between gate 1.0 and
 * 2.0. A node switched to the new version stays not ready until the bench opens
 * its gate, so the rollout waits on it. For each kill:
 *
 * 1. the rollout has node K `updating`, its new component launched and held not
 *    ready; every agent lists every other alive and follows one acting leader;
 *    3 s more so probes have connected every agent to every other;
 * 2. SIGKILL of the Raft leader's agent (never K itself: when the leader is K the
 *    bench opens K's gate and waits for the next node), then K's gate opens: the
 *    step "K done, next node updating" becomes due just after the leader died;
 * 3. the surviving voters' GET /api/manager and GET /api/rollouts/ID are polled
 *    (every 20 ms; the new leader is one of them, and its record changes first)
 *    until a voter reports `self, acting` at a higher term (acting) and a voter's
 *    rollout record shows K moved on from `updating` (resumed): the step
 *    committed by the new leader, applied and published (only the leader
 *    publishes; a voter's API shows the state it holds);
 * 4. the killed agent's components are SIGKILLed too (a host crash), and the agent
 *    is restarted on its data folder (same identity, log and flags).
 */
import { loadavg } from 'node:os'
import { voterTarget } from '../src/manager/voter-policy.js'
import type { RuntimeStatus } from '../src/runtime/index.js'
import {
  type Agent,
  ApiClient,
  type CpuUse,
  clusterKeys,
  cpuWindow,
  Gates,
  getJson,
  leaderOf,
  type ManagerView,
  othersQuiet,
  post,
  quantiles,
  type RoleEvent,
  type RolloutView,
  reapComponents,
  restartAgent,
  roleEvents,
  sleep,
  startCluster,
  steady,
  tcpAddrs,
  until,
  waitQuiet,
} from './manager-cluster.js'
import { terminate } from './processes.js'
import { round, type TempDirs } from './util.js'

const POLL_MS = 20
/** Idle time before each kill, so probes have connected every agent to every other. */
const SETTLE_MS = 3000
/** Longest wait for the acting leader and the resumed step after a kill. */
const CAP_MS = 20_000
/** Before each kill: wait up to OTHERS_MAX_WAIT_S for processes outside the bench to use < OTHERS_LIMIT_CORES. */
const OTHERS_LIMIT_CORES = 0.5
const OTHERS_MAX_WAIT_S = 30

export interface FailoverKill {
  run: number
  /** Wall-clock time of the SIGKILL. */
  at: string
  killed: string
  oldTerm: number
  /** The node whose step was due: `updating`, its gate opened just after the kill. */
  node: string
  newLeader: string | null
  newTerm: number | null
  /** SIGKILL → a survivor reports itself leader and acting (lease, applied its term) at a higher term. */
  actingMs: number | null
  /** SIGKILL → a surviving voter's rollout record shows the node moved on (the new leader's step, published). */
  resumedMs: number | null
  /** Where the step was first seen, and its status there. */
  resumedOn: string | null
  resumedStatus: string | null
  /** The state term of that survivor's view once the step was seen. */
  resumedStateTerm: number | null
  /** SIGKILL → the gate file written (the step due). */
  gateOpenedMs: number
  /** SIGKILL → the node's new component ready (its own readyAt) and settled (phase done). */
  nodeReadyMs: number | null
  nodeSettledMs: number | null
  pollPeriodMs: number
  cpu: CpuUse | null
  /** Other processes' CPU in the 2 s before the kill, after waiting up to 30 s for < 0.5 core. */
  othersBefore: { waitedS: number; otherCores: number; quiet: boolean } | null
  /** From the agents' logs (SHOAL_BENCH_AGENT_LOGS only): how the election went. */
  election: Election | null
}

/** ms from the SIGKILL, from the agents' `raft role` log lines (their clocks; one host). */
export interface Election {
  /** The first survivor whose election timeout fired (pre-vote). */
  firstPreCandidateMs: number | null
  /** The first that won its pre-vote and asked for votes (a new term). */
  firstCandidateMs: number | null
  /** Voters that asked for votes in the first new term: more than one can split the vote. */
  candidatesFirstTerm: number
  /** A survivor became leader (then acting once its term-start entry is committed and its lease holds). */
  leaderMs: number | null
}

export interface FailoverSeries {
  n: number
  kills: FailoverKill[]
  actingMs: ReturnType<typeof quantiles>
  resumedMs: ReturnType<typeof quantiles>
  /** The same over the kills whose window saw other processes use < 0.5 core (cpu.otherCores). */
  quiet: { kills: number; actingMs: ReturnType<typeof quantiles>; resumedMs: ReturnType<typeof quantiles> }
  /** Resumed − the node's own settledAt: the new leader seeing the node done and committing the step. */
  resumedAfterNodeSettledMs: ReturnType<typeof quantiles>
  /** Steps the bench let pass without a kill (the leader was the node updating). */
  skippedLeaderSteps: number
  /** Polls that saw two nodes `updating` at once in a max-unavailable 1 rollout (the bench opened both gates). */
  pollsWithTwoUpdating: number
  /** Kills after which more than one election was needed (the new term is above the old one + 1). */
  killsWithMoreThanOneElection: number
  /** New terms between two kills that no kill explains (the leader deposed while the bench waited). */
  termsBetweenKills: number
  staleSteps: number
  /** Steps of one more rollout without kills, timed finely (only at the largest size). */
  handOver: HandOverStep[]
  handOverMs: ReturnType<typeof summarize>
  rollouts: number
  loadAverageAtStart: number
  hostQuietBefore: { waitedS: number; quiet: boolean }
  voters: number
}

export async function measureFailover(
  n: number,
  killsWanted: number,
  dirs: TempDirs,
  notes: string[],
  options: { handOver: boolean } = { handOver: false },
): Promise<FailoverSeries> {
  const agents: Agent[] = []
  const hostQuietBefore = await waitQuiet(`failover N=${n}`, notes)
  const loadAverageAtStart = round(loadavg()[0] ?? 0, 2)
  const kills: FailoverKill[] = []
  let skippedLeaderSteps = 0
  /** Steps found no longer due after the settle wait (not measured). */
  let staleSteps = 0
  let handOver: HandOverStep[] = []
  /** Polls that saw two nodes `updating` at once (max-unavailable 1). */
  let doubles = 0
  let rollouts = 0
  let voters = 0
  try {
    const { key, flags } = await clusterKeys(dirs)
    await startCluster(n, dirs, flags, agents)
    await until(`${n} agents with one manager`, () => steady(agents), 60_000)
    const gates = await Gates.build(dirs)
    await gates.publish(new ApiClient(agents[0]!.info.api), key, agents)
    // Everyone on gate 1.0 (gates open), all at once.
    for (const a of agents) await gates.open(a.info.id, '1.0')
    const first = await post<RolloutView>(agents[0]!.info.api, '/api/rollouts', { distribution: 'gate@1.0' })
    await until(
      'gate@1.0 everywhere',
      async () =>
        (await getJson<RolloutView>(agents[0]!.info.api, `/api/rollouts/${first.id}`)).state === 'done',
      120_000,
    )
    await until('the voter set complete', async () => {
      const view = await getJson<ManagerView>(agents[0]!.info.api, '/api/manager')
      voters = view.voters.length
      return view.voters.length === voterTarget(n, 5) && view.learners.length === 0
    })

    let version: '1.0' | '2.0' = '2.0'
    while (kills.length < killsWanted) {
      await gates.closeAll(version)
      const rollout = await post<RolloutView>(agents[0]!.info.api, '/api/rollouts', {
        distribution: `gate@${version}`,
        strategy: 'rolling',
        maxUnavailable: 1,
        minReadyMs: 0,
      })
      rollouts++
      const target = `gate@${version}`
      for (;;) {
        // The node whose turn it is, once its new component runs (held not ready by its gate).
        let node: string | null = null
        let finished = false
        await until(
          `a node of ${rollout.id} updating and launched`,
          async () => {
            const view = await getJson<RolloutView>(agents[0]!.info.api, `/api/rollouts/${rollout.id}`)
            if (view.state !== 'running') {
              finished = true
              return true
            }
            const updating = view.members.filter((m) => m.status === 'updating')
            if (updating.length > 1) {
              // A node sent `updating` while suspected (the killed leader) frees its slot once dead
              // and holds a second one when it comes back: let those finish, measure the next step.
              doubles++
              if (doubles === 1)
                notes.push(
                  `N=${n}: two nodes updating at once in ${rollout.id} (max-unavailable 1): ${updating.map((m) => m.id).join(', ')}; last killed ${kills.at(-1)?.killed ?? 'none'} (kill ${kills.length})`,
                )
              for (const m of updating) await gates.open(m.id, version)
              return false
            }
            if (updating.length !== 1) return false
            const agent = agents.find((a) => a.info.id === updating[0]!.id)
            if (agent == null) return false
            const status = await getJson<RuntimeStatus>(agent.info.api, '/api/components')
            const s = status.lastSwitch
            if (s?.to !== target || s.spawnedAt == null) return false
            node = agent.info.id
            return true
          },
          120_000,
        )
        if (finished) break
        const k = node as unknown as string
        if (kills.length >= killsWanted) {
          await gates.open(k, version)
          continue
        }
        await until(`${n} agents steady before kill ${kills.length + 1}`, () => steady(agents), 60_000)
        await sleep(SETTLE_MS)
        // Neighbours on a shared host starve the agents' event loops: wait (a while) for them to calm down.
        const quiet = await othersQuiet(OTHERS_LIMIT_CORES, OTHERS_MAX_WAIT_S)
        await until(`${n} agents steady before kill ${kills.length + 1}`, () => steady(agents), 30_000)
        // Still due? (K may have moved on meanwhile: a gate opened for a double `updating`.)
        const now = await getJson<RolloutView>(agents[0]!.info.api, `/api/rollouts/${rollout.id}`)
        const kAgent = agents.find((a) => a.info.id === k)
        const kSwitch =
          kAgent == null
            ? null
            : (await getJson<RuntimeStatus>(kAgent.info.api, '/api/components')).lastSwitch
        if (
          now.members.find((m) => m.id === k)?.status !== 'updating' ||
          kSwitch?.to !== target ||
          kSwitch.readyAt != null
        ) {
          staleSteps++
          continue
        }
        const { agent: leader, view: before } = await leaderOf(agents)
        if (leader.info.id === k) {
          // Killing the node that is switching would time SWIM's dead verdict, not the election.
          skippedLeaderSteps++
          await gates.open(k, version)
          await until(`${k} done`, async () => {
            const view = await getJson<RolloutView>(agents[0]!.info.api, `/api/rollouts/${rollout.id}`)
            return view.members.find((m) => m.id === k)?.status !== 'updating'
          })
          continue
        }
        const run = await killLeader(agents, leader, before, k, rollout.id, version, gates)
        run.run = kills.length + 1
        run.othersBefore = quiet
        kills.push(run)
        // The killed agent's components die with it (a host crash), then it comes back.
        await reapComponents([leader.dataDir])
        await restartAgent(leader, tcpAddrs(agents[0]!), agents)
        await until(`the killed agent back (N=${n}, kill ${run.run})`, () => steady(agents), 60_000)
        if (run.resumedMs == null) {
          notes.push(`N=${n} kill ${run.run}: the step did not resume within ${CAP_MS / 1000} s`)
          break
        }
      }
      version = version === '2.0' ? '1.0' : '2.0'
      if (kills.at(-1)?.resumedMs == null && kills.length > 0) break
    }
    if (options.handOver) handOver = await measureHandOver(agents, gates, version, notes)
  } catch (err) {
    notes.push(`failover N=${n}: stopped after ${kills.length} kills: ${String(err)}`)
    notes.push(`failover N=${n}: state then: ${JSON.stringify(await snapshot(agents))}`)
    console.error(err)
  } finally {
    await Promise.all(agents.map((a) => terminate(a.child)))
    await reapComponents(agents.map((a) => a.dataDir))
  }
  const events = await roleEvents()
  if (events != null) for (const k of kills) k.election = electionOf(k, events)
  return {
    n,
    voters,
    kills,
    actingMs: quantiles(kills.map((k) => k.actingMs)),
    resumedMs: quantiles(kills.map((k) => k.resumedMs)),
    quiet: (() => {
      const calm = kills.filter((k) => k.cpu != null && k.cpu.otherCores < OTHERS_LIMIT_CORES)
      return {
        kills: calm.length,
        actingMs: quantiles(calm.map((k) => k.actingMs)),
        resumedMs: quantiles(calm.map((k) => k.resumedMs)),
      }
    })(),
    resumedAfterNodeSettledMs: quantiles(
      kills.map((k) =>
        k.resumedMs == null || k.nodeSettledMs == null ? null : k.resumedMs - k.nodeSettledMs,
      ),
    ),
    skippedLeaderSteps,
    pollsWithTwoUpdating: doubles,
    killsWithMoreThanOneElection: kills.filter((k) => k.newTerm != null && k.newTerm > k.oldTerm + 1).length,
    termsBetweenKills: kills
      .slice(1)
      .reduce((sum, k, i) => sum + Math.max(0, k.oldTerm - (kills[i]!.newTerm ?? k.oldTerm)), 0),
    staleSteps,
    handOver,
    handOverMs: summarize(handOver),
    rollouts,
    loadAverageAtStart,
    hostQuietBefore,
  }
}

async function killLeader(
  agents: Agent[],
  victim: Agent,
  before: ManagerView,
  node: string,
  rolloutId: string,
  version: string,
  gates: Gates,
): Promise<FailoverKill> {
  const survivors = agents.filter((a) => a !== victim)
  // The new leader is a surviving voter, and its published record changes first: poll only those.
  const voters = survivors.filter((a) => before.voters.includes(a.info.id))
  const nodeAgent = survivors.find((a) => a.info.id === node)!
  const exited = new Promise<void>((resolve) => victim.child.once('exit', () => resolve()))
  let actingMs: number | null = null
  let resumedMs: number | null = null
  let resumedOn: string | null = null
  let resumedStatus: string | null = null
  let newLeader: string | null = null
  let newTerm: number | null = null
  let polls = 0
  const cpu = await cpuWindow()
  const wallAtKill = Date.now()
  const since = performance.now()
  victim.child.kill('SIGKILL')
  await gates.open(node, version)
  const gateOpenedMs = round(performance.now() - since)
  while ((actingMs == null || resumedMs == null) && performance.now() - since < CAP_MS) {
    polls++
    const [views, records] = await Promise.all([
      actingMs != null
        ? []
        : Promise.all(
            voters.map((a) => getJson<ManagerView>(a.info.api, '/api/manager', 1000).catch(() => null)),
          ),
      resumedMs != null
        ? []
        : Promise.all(
            voters.map((a) =>
              getJson<RolloutView>(a.info.api, `/api/rollouts/${rolloutId}`, 1000).then(
                (r) => ({ id: a.info.id, r }),
                () => null,
              ),
            ),
          ),
    ])
    // Stamped on receipt: an answer from a late event loop counts late, never early.
    const at = Math.round(performance.now() - since)
    const acting = views.find(
      (v) => v?.self && v.acting && v.manager !== victim.info.id && v.term > before.term,
    )
    if (acting != null && actingMs == null) {
      actingMs = at
      newLeader = acting.manager
      newTerm = acting.term
    }
    for (const got of records) {
      const status = got?.r.members.find((m) => m.id === node)?.status
      if (got != null && status != null && status !== 'updating' && resumedMs == null) {
        resumedMs = at
        resumedOn = got.id
        resumedStatus = status
      }
    }
    if (actingMs == null || resumedMs == null) await sleep(POLL_MS)
  }
  const elapsed = performance.now() - since
  await exited
  const used = await cpu()
  agents.splice(agents.indexOf(victim), 1)
  let resumedStateTerm: number | null = null
  if (resumedOn != null) {
    const where = survivors.find((a) => a.info.id === resumedOn)!
    resumedStateTerm =
      (await getJson<ManagerView>(where.info.api, '/api/manager').catch(() => null))?.stateTerm ?? null
  }
  const s = (await getJson<RuntimeStatus>(nodeAgent.info.api, '/api/components').catch(() => null))
    ?.lastSwitch
  const fromKill = (iso: string | null | undefined) => (iso == null ? null : Date.parse(iso) - wallAtKill)
  return {
    run: 0,
    at: new Date(wallAtKill).toISOString(),
    killed: victim.info.id,
    oldTerm: before.term,
    node,
    newLeader,
    newTerm,
    actingMs,
    resumedMs,
    resumedOn,
    resumedStatus,
    resumedStateTerm,
    gateOpenedMs,
    nodeReadyMs: fromKill(s?.readyAt),
    nodeSettledMs: fromKill(s?.settledAt),
    pollPeriodMs: round(elapsed / Math.max(1, polls)),
    cpu: used,
    othersBefore: null,
    election: null,
  }
}

/** The election after a kill, from the role changes the survivors logged between the SIGKILL and the resumed step. */
export function electionOf(kill: FailoverKill, events: RoleEvent[]): Election {
  const from = Date.parse(kill.at)
  const window = events.filter(
    (e) => e.node !== kill.killed && e.at >= from && e.at <= from + (kill.resumedMs ?? CAP_MS),
  )
  const first = (role: string) => {
    const e = window.find((x) => x.role === role)
    return e == null ? null : e.at - from
  }
  return {
    firstPreCandidateMs: first('pre-candidate'),
    firstCandidateMs: first('candidate'),
    candidatesFirstTerm: new Set(
      window.filter((e) => e.role === 'candidate' && e.term === kill.oldTerm + 1).map((e) => e.node),
    ).size,
    leaderMs: first('leader'),
  }
}

/** What every agent says of the newest rollout and of its own switch (for a note when a wait times out). */
async function snapshot(agents: Agent[]) {
  return Promise.all(
    agents.map(async (a) => {
      const [rollouts, runtime, manager] = await Promise.all([
        getJson<RolloutView[]>(a.info.api, '/api/rollouts').catch(() => null),
        getJson<RuntimeStatus>(a.info.api, '/api/components').catch(() => null),
        getJson<ManagerView>(a.info.api, '/api/manager').catch(() => null),
      ])
      const r = rollouts?.[0]
      return {
        id: a.info.id.slice(-8),
        manager:
          manager == null
            ? null
            : { leader: manager.manager?.slice(-8), term: manager.term, stateSeq: manager.stateSeq },
        rollout:
          r == null
            ? null
            : { id: r.id, state: r.state, members: r.members.map((m) => `${m.id.slice(-8)}:${m.status}`) },
        runtime:
          runtime == null
            ? null
            : {
                active: runtime.active,
                target: runtime.target,
                phase: runtime.phase,
                error: runtime.error,
                components: runtime.components.map((c) => `${c.name}:${c.state}`),
                lastSwitch: runtime.lastSwitch,
              },
      }
    }),
  )
}

// --- the hand-over between two nodes, timed finely -------------------------------------------

export interface HandOverStep {
  node: string
  next: string | null
  /**
   * ms from the gate opening (wall clock): the node's component ready and its
   * switch settled (its clock); the leader's step deciding the next node's turn
   * (updatingSince, the leader's clock); the step in the leader's published record
   * and the next node holding that state (polls every 10 ms); the next node's
   * switch started (its clock). One host, one clock.
   */
  readyMs: number | null
  settledMs: number | null
  decidedMs: number | null
  publishedMs: number | null
  adoptedMs: number | null
  startedMs: number | null
}

/**
 * One more rolling rollout (min-ready 0) without kills: for each node, its gate
 * opens while the bench polls the leader and the next node every 10 ms, to see
 * where the time between one node settling and the next starting goes.
 */
async function measureHandOver(
  agents: Agent[],
  gates: Gates,
  version: string,
  notes: string[],
): Promise<HandOverStep[]> {
  const steps: HandOverStep[] = []
  try {
    await gates.closeAll(version)
    await until('agents steady before the hand-over steps', () => steady(agents), 60_000)
    await sleep(SETTLE_MS)
    const { agent: leader } = await leaderOf(agents)
    const target = `gate@${version}`
    const rollout = await post<RolloutView>(leader.info.api, '/api/rollouts', {
      distribution: target,
      strategy: 'rolling',
      maxUnavailable: 1,
      minReadyMs: 0,
    })
    const record = () => getJson<RolloutView>(leader.info.api, `/api/rollouts/${rollout.id}`, 2000)
    const byId = (id: string) => agents.find((a) => a.info.id === id)
    for (;;) {
      let node: string | null = null
      let finished = false
      await until(
        'a node updating and launched',
        async () => {
          const view = await record()
          if (view.state !== 'running') {
            finished = true
            return true
          }
          const updating = view.members.filter((m) => m.status === 'updating')
          if (updating.length !== 1) return false
          const s = (await getJson<RuntimeStatus>(byId(updating[0]!.id)!.info.api, '/api/components'))
            .lastSwitch
          if (s?.to !== target || s.spawnedAt == null) return false
          node = updating[0]!.id
          return true
        },
        60_000,
      )
      if (finished) break
      const k = node as unknown as string
      // Every agent holds the state that made K `updating` before the clock starts.
      await sleep(500)
      const view = await record()
      const next =
        view.members
          .filter((m) => m.status === 'pending')
          .map((m) => m.id)
          .sort()[0] ?? null
      const nextAgent = next == null ? null : byId(next)!
      let publishedMs: number | null = null
      let adoptedMs: number | null = null
      const moved = (v: RolloutView | null) =>
        v != null && v.members.find((x) => x.id === k)?.status !== 'updating'
      const wall0 = Date.now()
      const t0 = performance.now()
      await gates.open(k, version)
      while (
        performance.now() - t0 < 10_000 &&
        (publishedMs == null || (nextAgent != null && adoptedMs == null))
      ) {
        const [r, nr] = await Promise.all([
          publishedMs == null ? record().catch(() => null) : null,
          nextAgent == null || adoptedMs != null
            ? null
            : getJson<RolloutView>(nextAgent.info.api, `/api/rollouts/${rollout.id}`, 2000).catch(() => null),
        ])
        const at = Math.round(performance.now() - t0)
        if (publishedMs == null && moved(r)) publishedMs = at
        if (adoptedMs == null && moved(nr)) adoptedMs = at
        await sleep(10)
      }
      const after = await record()
      const kSwitch = (await getJson<RuntimeStatus>(byId(k)!.info.api, '/api/components')).lastSwitch
      const nSwitch =
        nextAgent == null
          ? null
          : await until('the next node to start', async () => {
              const s = (await getJson<RuntimeStatus>(nextAgent.info.api, '/api/components')).lastSwitch
              return s?.to === target
            }).then(
              async () => (await getJson<RuntimeStatus>(nextAgent.info.api, '/api/components')).lastSwitch,
            )
      const ms = (iso: string | null | undefined) => (iso == null ? null : Date.parse(iso) - wall0)
      steps.push({
        node: k,
        next,
        readyMs: ms(kSwitch?.readyAt),
        settledMs: ms(kSwitch?.settledAt),
        decidedMs: next == null ? ms(after.finishedAt) : ms(after.updatingSince?.[next]),
        publishedMs,
        adoptedMs,
        startedMs: ms(nSwitch?.startedAt),
      })
      if (next != null && after.updatingSince?.[next] == null)
        notes.push(`hand-over: ${next} was expected next after ${k} but is not updating`)
    }
  } catch (err) {
    notes.push(`hand-over steps: ${String(err)}`)
  }
  return steps
}

/**
 * Quantiles of each gap of the hand-over. The gaps between process clocks (the
 * node's, the leader's, the next node's: one host) are exact; `published` and
 * `adopted` are polls stamped on receipt, late by up to a poll (10 ms) plus the
 * answer, so they split decided → started only roughly.
 */
function summarize(steps: HandOverStep[]) {
  const gap = (list: HandOverStep[], f: (s: HandOverStep) => [number | null, number | null]) =>
    quantiles(
      list.map((s) => {
        const [a, b] = f(s)
        return a == null || b == null ? null : b - a
      }),
    )
  const withNext = steps.filter((s) => s.next != null)
  return {
    steps: steps.length,
    /** gate open → the component ready (the health check every 50 ms until first ready). */
    gateToReady: gap(steps, (s) => [0, s.readyMs]),
    /** ready → settled (the old component drained and stopped, the switch committed on the node). */
    readyToSettled: gap(steps, (s) => [s.readyMs, s.settledMs]),
    /** settled → the leader's step (the node's phase by metadata gossip, the leader's loop). */
    settledToDecided: gap(steps, (s) => [s.settledMs, s.decidedMs]),
    /** decided → the next node's switch started: commit, apply, publish, head by gossip, fetch, verify, runtime. */
    decidedToStarted: gap(withNext, (s) => [s.decidedMs, s.startedMs]),
    /** decided → in the leader's published record (commit by a majority, apply, sign and store; polled). */
    decidedToPublished: gap(steps, (s) => [s.decidedMs, s.publishedMs]),
    /** published → the next node holds it (head by gossip, fetch, signature and proof checks; both polled). */
    publishedToAdopted: gap(withNext, (s) => [s.publishedMs, s.adoptedMs]),
    /** settled → the next node's switch started: the whole hand-over. */
    settledToStarted: gap(withNext, (s) => [s.settledMs, s.startedMs]),
  }
}
