/**
 * Manager campaign (issue 18): real agent processes, faults on the Raft leader
 * and on other agents, and clients sending manager commands through random
 * agents' APIs all along; every command is recorded (invoke, then ok / fail /
 * unknown) and history-checker.ts checks the history against the committed
 * state every agent holds once the faults healed. docs/reliability-chaos.md,
 * "Manager campaigns", explains it.
 *
 * The campaign runs in rounds: a round is a few faults with the clients busy
 * throughout, then the healing (every agent running, one leader that acts, the
 * same rollouts on every agent, twice in a row) and the check of the whole
 * history so far. A round starts few enough rollouts that the cluster state,
 * which keeps the newest HISTORY_LENGTH, still holds all of them at its check.
 *
 * Each command is sent with its own API token (the agents load one per command):
 * the token's name is the command's marker, and the agent records it as the
 * rollout's `requestedBy` or the action's `by` in the rollout's audit trail.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import { HISTORY_LENGTH, type ManagerStatus, type RolloutView } from '../../src/manager/index.js'
import { intBetween, mulberry32, pick, type Random } from '../random.js'
import { round } from '../util.js'
import { ChaosCluster, type ChaosNode, logProblems, sizeOf } from './cluster.js'
import {
  type CheckResult,
  type Command,
  checkHistory,
  classify,
  entry,
  type ObservedRollout,
  type Operation,
  type Outcome,
  rolloutNumber,
  type Violation,
} from './history-checker.js'

export const FAULT_KINDS = ['pause-leader', 'kill-leader', 'kill-agent', 'pause-follower'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

/**
 * Actions a rollout keeps (MAX_ACTIONS in src/manager/record.ts). The state keeps
 * every field of the newest HISTORY_LENGTH rollouts (older ones, slimmed, up to
 * AUDIT_LENGTH): the checker takes the smaller bound, so only a rollout really
 * gone counts as dropped.
 */
const MAX_ACTIONS = 20
/** The two versions the rollouts alternate between. */
const VERSIONS = ['app@1.0', 'app@2.0'] as const
/** The harness's own token (publishing, reads, the set-up rollout): its effects are not in the history. */
const HARNESS = 'harness'

export interface ManagerCampaignOptions {
  seed: number
  /** Agents in the cluster (5: five voters). */
  nodes: number
  preset: 'test' | 'lan'
  /** Faults in all; drawn from `kinds` (seeded) unless `schedule` lists them. */
  faults: number
  kinds: readonly FaultKind[]
  /** The faults, in order (the test's short campaign): overrides `faults` and `kinds`. */
  schedule?: readonly FaultKind[]
  faultsPerRound: number
  /** Clients sending commands at once, each one command at a time. */
  clients: number
  /** Commands in all (a token each). */
  maxOps: number
  /** Rollout commands per round (each round's rollouts must fit in the state's HISTORY_LENGTH). */
  rolloutsPerRound: number
  /** ms a paused agent stays stopped: [min, max]. */
  pauseMs: [number, number]
  /** ms a killed agent stays down before its restart: [min, max]. */
  downMs: [number, number]
  /** ms between two faults (the clients keep going): [min, max]. */
  gapMs: [number, number]
  /** ms a client waits between two commands: [min, max]. */
  thinkMs: [number, number]
  /** Longest wait for the cluster to heal after a round (s). */
  healTimeoutS: number
  /**
   * Not healed in time: restart (SIGKILL, same data folder) the agents that follow
   * no leader or another than the others, heal again and go on; the round records it.
   * Off: the campaign stops there.
   */
  restartStuck: boolean
  /** A client gives up on an answer after this long (then the outcome is unknown). */
  requestTimeoutMs: number
  maxMinutes: number
  /** The agents' `--log-level` (debug to find where a hang is). */
  logLevel: 'debug' | 'info' | 'warn'
  keep: boolean
  print?: (line: string) => void
}

export const MANAGER_DEFAULTS: Omit<ManagerCampaignOptions, 'seed'> = {
  nodes: 5,
  preset: 'test',
  faults: 40,
  kinds: FAULT_KINDS,
  faultsPerRound: 2,
  clients: 3,
  maxOps: 2000,
  rolloutsPerRound: 20,
  pauseMs: [1000, 6000],
  downMs: [200, 2000],
  gapMs: [1000, 4000],
  thinkMs: [300, 1500],
  healTimeoutS: 180,
  restartStuck: true,
  // Longer than an agent can take to answer (learn wait 5 s, command deadline 10 s and
  // a forward of up to 10 s, the visible wait 3 s) plus a pause: only a dead agent leaves it unknown.
  requestTimeoutMs: 45_000,
  maxMinutes: 45,
  logLevel: 'info',
  keep: false,
}

export interface FaultRecord {
  round: number
  kind: FaultKind
  victim: string
  /** The victim led (acting) when it was hit. */
  wasLeader: boolean
  /** When the fault began, ms from the campaign's start. */
  atMs: number
  /** Stopped or down for (ms); a kill's restart included. */
  durationMs: number
  /** The acting leader before, and the first one found after (agent names). */
  leaderBefore: string | null
  leaderAfter: string | null
  note: string | null
}

export interface RoundRecord {
  index: number
  faults: number
  ops: number
  outcomes: Record<Outcome, number>
  /** ms from the last fault until healed (every agent up, one acting leader, the same rollouts). */
  healMs: number | null
  check: { ok: boolean; violations: Violation[]; stats: CheckResult['stats'] } | null
  /** Not healed: what each agent said of the manager at the end (role, term, leader, indexes), or its error. */
  unhealed?: Record<string, unknown>
  /** Not healed, then healed once these agents were restarted (`restartStuck`). */
  restarted?: string[]
}

export interface ManagerReport {
  suite: 'chaos-manager'
  startedAt: string
  durationS: number
  options: Omit<ManagerCampaignOptions, 'print'>
  stoppedEarly: string | null
  rounds: RoundRecord[]
  faults: { total: number; byKind: Record<FaultKind, number>; onLeader: number; leaderChanged: number }
  /** Raft terms seen: the first and the last (each election raises it). */
  terms: { first: number | null; last: number | null }
  ops: {
    invoked: number
    ok: number
    fail: number
    unknown: number
    /** Unknown outcome, found applied at the round's check / found absent. */
    unknownApplied: number
    unknownAbsent: number
    byOp: Record<string, Record<Outcome, number>>
    /** Per outcome code: how many, and how many were found applied at the round's check. */
    byCode: Record<string, { count: number; applied: number }>
    /** ms from invoke to answer of the acknowledged commands (not asserted: a loaded machine). */
    okLatencyMs: { p50: number | null; p99: number | null; max: number | null }
  }
  violations: Violation[]
  /** WARN/ERROR lines of the agents around a violation or a failed heal. */
  log: string[]
  workDir: string | null
  history: Operation[]
  faultLog: FaultRecord[]
}

/** What the clients know of the newest rollout (from answers and a reader polling the agents). */
interface Knowledge {
  latest: { id: string; state: string; distribution: string } | null
  /** Control commands sent per rollout id (the state keeps MAX_ACTIONS actions per rollout). */
  controls: Map<string, number>
  /** Rollout ids seen (old ones get a command now and then: refused, definitely). */
  ids: string[]
}

const FINISHED = ['done', 'failed', 'rolled-back', 'aborted', 'superseded']

export async function runManagerCampaign(
  options: ManagerCampaignOptions,
): Promise<{ report: ManagerReport; text: string }> {
  return new ManagerCampaign(options).run()
}

class ManagerCampaign {
  private readonly print: (line: string) => void
  private readonly dir: string
  private readonly cluster: ChaosCluster
  private readonly tokens = new Map<string, string>()
  private readonly began = Date.now()
  private readonly random: Random
  private readonly history: Operation[] = []
  private readonly faultLog: FaultRecord[] = []
  private readonly rounds: RoundRecord[] = []
  private readonly violations: Violation[] = []
  private readonly log: string[] = []
  private readonly knowledge: Knowledge = { latest: null, controls: new Map(), ids: [] }
  private readonly paused = new Set<ChaosNode>()
  /** Markers an earlier check found without effect. */
  private absent: string[] = []
  /** Per op: applied at its round's check (for the per-code counts). */
  private readonly applied = new Map<string, boolean>()
  private terms: { first: number | null; last: number | null } = { first: null, last: null }
  private nextMarker = 1
  private rolloutsThisRound = 0
  private stopClients = false

  constructor(private readonly options: ManagerCampaignOptions) {
    this.print = options.print ?? ((line) => console.log(line))
    this.random = mulberry32(options.seed)
    this.dir = mkdtempSync(join(tmpdir(), 'shoal-chaos-manager-'))
    this.cluster = new ChaosCluster({
      dir: this.dir,
      size: options.nodes,
      cluster: 'chaos-mgr',
      preset: options.preset,
      downloadRate: '50M',
      logLevel: options.logLevel,
      extraArgs: ['--tokens', join(this.dir, 'tokens.json')],
    })
  }

  async run(): Promise<{ report: ManagerReport; text: string }> {
    const { options } = this
    let stoppedEarly: string | null = null
    const interrupted = (signal: NodeJS.Signals) => {
      this.print(`${signal}: stopping the agents; work folder ${this.dir} kept`)
      this.resumeAll()
      void this.cluster.stop().finally(() => process.exit(130))
    }
    process.once('SIGINT', interrupted)
    process.once('SIGTERM', interrupted)
    const plan = this.plan()
    this.print(
      `manager campaign: ${plan.length} fault(s), seed ${options.seed}, ${options.nodes} agents ` +
        `(${options.preset} preset), ${options.clients} clients, budget ${options.maxMinutes} min, work folder ${this.dir}`,
    )
    try {
      await this.setUp()
      for (let start = 0, index = 0; start < plan.length; start += options.faultsPerRound, index++) {
        const spentMin = (Date.now() - this.began) / 60_000
        if (spentMin >= options.maxMinutes) {
          stoppedEarly = `time budget of ${options.maxMinutes} min used up after ${start} of ${plan.length} faults`
          break
        }
        if (this.nextMarker > options.maxOps) {
          stoppedEarly = `command budget of ${options.maxOps} used up after ${start} of ${plan.length} faults`
          break
        }
        const record = await this.round(index, plan.slice(start, start + options.faultsPerRound))
        this.rounds.push(record)
        this.print(roundLine(record, this.faultLog))
        if (record.healMs == null && record.restarted == null) {
          stoppedEarly = `the cluster did not heal within ${options.healTimeoutS} s after round ${index}`
          break
        }
      }
    } catch (err) {
      stoppedEarly = `campaign aborted: ${(err as Error).stack ?? String(err)}`
    } finally {
      process.off('SIGINT', interrupted)
      process.off('SIGTERM', interrupted)
      this.resumeAll()
      this.stopClients = true
      await this.cluster.stop().catch(() => {})
    }
    if (stoppedEarly != null) this.print(`STOPPED: ${stoppedEarly}`)
    const failed =
      stoppedEarly != null || this.violations.length > 0 || this.rounds.some((r) => r.unhealed != null)
    const keep = options.keep || failed
    if (!keep) await rm(this.dir, { recursive: true, force: true })
    const report = this.report(stoppedEarly, keep ? this.dir : null)
    return { report, text: summaryText(report) }
  }

  /** The faults, in order: the schedule given, or drawn from the kinds. */
  private plan(): FaultKind[] {
    if (this.options.schedule != null) return [...this.options.schedule]
    const draw = mulberry32((this.options.seed ^ 0x9e3779b9) >>> 0)
    return Array.from({ length: this.options.faults }, () => pick(draw, this.options.kinds))
  }

  // --- set-up --------------------------------------------------------------------------------

  private async setUp(): Promise<void> {
    const entries = [{ token: this.token(HARNESS), role: 'admin', name: HARNESS }]
    for (let i = 1; i <= this.options.maxOps; i++) {
      const name = markerName(i)
      entries.push({ token: this.token(name), role: 'admin', name })
    }
    await writeFile(join(this.dir, 'tokens.json'), JSON.stringify({ tokens: entries }), { mode: 0o600 })
    await this.cluster.start()
    if (!(await this.heal(120_000)).healed) throw new Error('the cluster did not form within 120 s')
    const [first] = this.cluster.nodes
    for (const [i, id] of VERSIONS.entries()) {
      const [name, version] = id.split('@') as [string, string]
      const dir = join(this.dir, 'versions', version)
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, 'app.txt'), `${id} ${randomBytes(8).toString('hex')}\n`)
      await writeFile(join(dir, 'padding.bin'), randomBytes(1000 + i))
      await publish(new ApiClient(first!.api, this.tokens.get(HARNESS)), {
        dir,
        name,
        version,
        keyFile: this.cluster.keyFile,
        progress: false,
      })
    }
    await this.until('every agent to hold both versions', 60_000, async () => {
      for (const node of this.cluster.nodes) {
        const list = await this.get<Array<{ id: string; complete: boolean }>>(node, '/api/distributions')
        if (!VERSIONS.every((v) => list.some((d) => d.id === v && d.complete))) return false
      }
      return true
    })
    // The cluster runs the first version before the first round (the harness's rollout is no client's).
    const started = await this.post<RolloutView>(
      first!,
      '/api/rollouts',
      { distribution: VERSIONS[0] },
      HARNESS,
    )
    await this.until(`the set-up rollout ${started.id} to be done`, 120_000, async () => {
      const list = await this.get<RolloutView[]>(first!, '/api/rollouts')
      return list.find((r) => r.id === started.id)?.state === 'done'
    })
    this.learn([started])
    this.print(`set up in ${round((Date.now() - this.began) / 1000)} s`)
  }

  private token(name: string): string {
    const token = randomBytes(18).toString('base64url')
    this.tokens.set(name, token)
    return token
  }

  // --- a round -------------------------------------------------------------------------------

  private async round(index: number, faults: FaultKind[]): Promise<RoundRecord> {
    const { options } = this
    const firstOp = this.history.length
    this.rolloutsThisRound = 0
    this.stopClients = false
    this.cluster.noteAll(`round ${index}: ${faults.join(', ')}`)
    const clients = Array.from({ length: options.clients }, (_, i) =>
      this.client(`c${i + 1}`, mulberry32((options.seed + 7919 * (index + 1) + i) >>> 0)),
    )
    const reader = this.reader()
    for (const kind of faults) {
      await sleep(intBetween(this.random, ...options.gapMs))
      await this.fault(index, kind)
    }
    await sleep(intBetween(this.random, ...options.gapMs))
    this.stopClients = true
    await Promise.all([...clients, reader])
    const healStart = Date.now()
    let { healed, states } = await this.heal(options.healTimeoutS * 1000)
    const healMs = healed ? Date.now() - healStart : null
    let unhealed: Record<string, unknown> | undefined
    let restarted: string[] | undefined
    if (!healed) {
      await this.collectLog(`round ${index}: not healed within ${options.healTimeoutS} s`)
      unhealed = await this.managerViews()
      const stuck = notFollowing(unhealed)
      this.print(
        `round ${index}: NOT HEALED within ${options.healTimeoutS} s; not following the leader: ${stuck.join(', ') || 'none'}`,
      )
      if (options.restartStuck && stuck.length > 0) {
        for (const node of this.cluster.nodes.filter((n) => stuck.includes(n.name))) {
          this.cluster.note(node, 'restarted: it followed no leader (or another) when the others had healed')
          await this.cluster.kill(node, 'SIGKILL')
          await this.cluster.launch(node)
        }
        ;({ healed, states } = await this.heal(options.healTimeoutS * 1000))
        if (healed) restarted = stuck
      }
    }
    const ops = this.history.slice(firstOp)
    const outcomes = { ok: 0, fail: 0, unknown: 0 }
    for (const op of ops) outcomes[op.outcome]++
    let check: RoundRecord['check'] = null
    if (states != null) {
      const result = checkHistory(this.history, states, {
        ignore: [HARNESS],
        historyLength: HISTORY_LENGTH,
        maxActions: MAX_ACTIONS,
        previouslyAbsent: this.absent,
      })
      const absent = new Set(result.absent)
      for (const op of ops) this.applied.set(op.marker, !absent.has(op.marker))
      this.absent = result.absent
      check = { ok: result.ok, violations: result.violations, stats: result.stats }
      for (const v of result.violations)
        if (!this.violations.some((w) => w.kind === v.kind && w.detail === v.detail)) this.violations.push(v)
      if (!result.ok) await this.collectLog(`round ${index}: ${result.violations.length} violation(s)`)
    }
    const record: RoundRecord = { index, faults: faults.length, ops: ops.length, outcomes, healMs, check }
    if (unhealed != null) record.unhealed = unhealed
    if (restarted != null) record.restarted = restarted
    return record
  }

  // --- faults --------------------------------------------------------------------------------

  private async fault(roundIndex: number, kind: FaultKind): Promise<void> {
    const { options, cluster } = this
    const leader = await this.findLeader(20_000)
    const up = cluster.nodes.filter((n) => n.child != null && !this.paused.has(n))
    let victim: ChaosNode
    let note: string | null = null
    if (kind === 'pause-leader' || kind === 'kill-leader') {
      if (leader == null) note = 'no acting leader found within 20 s: a random agent instead'
      victim = leader ?? pick(this.random, up)
    } else {
      const others = up.filter((n) => n !== leader)
      victim = pick(this.random, others.length > 0 ? others : up)
    }
    const atMs = Date.now() - this.began
    const began = Date.now()
    if (kind === 'pause-leader' || kind === 'pause-follower') {
      const ms = intBetween(this.random, ...options.pauseMs)
      cluster.note(victim, `SIGSTOP for ${ms} ms (${kind})`)
      this.pause(victim)
      await sleep(ms)
      this.resume(victim)
      cluster.note(victim, 'SIGCONT')
    } else {
      await cluster.kill(victim, 'SIGKILL')
      await sleep(intBetween(this.random, ...options.downMs))
      await cluster.launch(victim)
    }
    const durationMs = Date.now() - began
    const after = await this.findLeader(20_000)
    this.faultLog.push({
      round: roundIndex,
      kind,
      victim: victim.name,
      wasLeader: victim === leader,
      atMs,
      durationMs,
      leaderBefore: leader?.name ?? null,
      leaderAfter: after?.name ?? null,
      note,
    })
  }

  private pause(node: ChaosNode): void {
    const pid = node.child?.pid
    if (pid == null) return
    process.kill(pid, 'SIGSTOP')
    this.paused.add(node)
  }

  private resume(node: ChaosNode): void {
    const pid = node.child?.pid
    this.paused.delete(node)
    if (pid == null) return
    try {
      process.kill(pid, 'SIGCONT')
    } catch {}
  }

  private resumeAll(): void {
    for (const node of [...this.paused]) this.resume(node)
  }

  /** The agent that leads and acts, by its own word, confirmed by no other claim; null after `timeoutMs`. */
  private async findLeader(timeoutMs: number): Promise<ChaosNode | null> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const up = this.cluster.nodes.filter((n) => n.child != null && !this.paused.has(n))
      const views = await Promise.all(
        up.map((n) =>
          this.get<ManagerStatus>(n, '/api/manager', 2000).then(
            (s) => ({ n, s }),
            () => null,
          ),
        ),
      )
      const acting = views.filter((v) => v?.s.self === true && v.s.acting)
      if (acting.length === 1) {
        const term = acting[0]!.s.term
        this.terms.first ??= term
        this.terms.last = Math.max(this.terms.last ?? term, term)
        return acting[0]!.n
      }
      if (Date.now() >= deadline) return null
      await sleep(100)
    }
  }

  // --- clients -------------------------------------------------------------------------------

  /** One client: a command at a time through a random running agent until the round stops it. */
  private async client(name: string, random: Random): Promise<void> {
    while (!this.stopClients && this.nextMarker <= this.options.maxOps) {
      const up = this.cluster.nodes.filter((n) => n.child != null)
      if (up.length === 0) {
        await sleep(100)
        continue
      }
      const agent = pick(random, up)
      const command = this.choose(random)
      const marker = markerName(this.nextMarker++)
      await this.send(name, agent, command, marker)
      await sleep(intBetween(random, ...this.options.thinkMs))
    }
  }

  /** A rollout (alternating the two versions) or a control command that fits the newest rollout's state. */
  private choose(random: Random): Command {
    const { latest, controls, ids } = this.knowledge
    const canRoll = this.rolloutsThisRound < this.options.rolloutsPerRound
    const finished = latest == null || FINISHED.includes(latest.state) || latest.state === 'rolling-back'
    const capped = latest != null && (controls.get(latest.id) ?? 0) >= MAX_ACTIONS - 5
    if ((canRoll || latest == null) && (latest == null || capped || random() < (finished ? 0.9 : 0.35))) {
      this.rolloutsThisRound++
      const distribution = latest?.distribution === VERSIONS[0] ? VERSIONS[1] : VERSIONS[0]
      const r = random()
      // Rolling, each node ready a while before the next: long enough to be paused and aborted.
      if (r < 0.7) return { op: 'rollout', distribution, strategy: 'rolling', ...rolling(random) }
      if (r < 0.85) return { op: 'rollout', distribution, strategy: 'all-at-once' }
      return { op: 'rollout', distribution, strategy: 'rolling', approve: 'manual', ...rolling(random) }
    }
    // Now and then an older rollout (finished: refused, a definite failure), else the newest.
    const old = ids.filter((id) => id !== latest?.id && (controls.get(id) ?? 0) < MAX_ACTIONS - 5)
    const target =
      latest == null || ((capped || random() < 0.1) && old.length > 0) ? pick(random, old) : latest.id
    const state = target === latest?.id ? latest.state : 'done'
    const r = random()
    // What fits the state (abort now and then: it ends the rollout); on a finished one, anything.
    const op: Exclude<Command['op'], 'rollout'> =
      state === 'waiting-approval'
        ? r < 0.85
          ? 'approve'
          : 'abort'
        : state === 'paused'
          ? r < 0.85
            ? 'resume'
            : 'abort'
          : state === 'running'
            ? r < 0.85
              ? 'pause'
              : 'abort'
            : pick(random, ['pause', 'resume', 'abort', 'approve'] as const)
    controls.set(target, (controls.get(target) ?? 0) + 1)
    return { op, id: target }
  }

  private async send(client: string, agent: ChaosNode, command: Command, marker: string): Promise<void> {
    const path = command.op === 'rollout' ? '/api/rollouts' : `/api/rollouts/${command.id}/${command.op}`
    const { op: _op, ...body } = command as Command & Record<string, unknown>
    const base = agent.api
    const invokedAt = Date.now()
    let status: number | undefined
    let code: string | undefined
    let detail: string | undefined
    let answer: RolloutView | null = null
    try {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.tokens.get(marker)}` },
        body: JSON.stringify(command.op === 'rollout' ? body : {}),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      })
      status = res.status
      const text = await res.text()
      if (res.ok) answer = JSON.parse(text) as RolloutView
      else {
        const error = (safeJson(text) as { error?: { code?: string; message?: string } } | null)?.error
        code = error?.code
        detail = error?.message ?? text.slice(0, 200)
      }
    } catch (err) {
      // No answer (or a cut one): the refused connection is the one that says nothing was sent.
      code = networkCode(err)
      detail = (err as Error).message
      if (status != null) code = `${code} after HTTP ${status}`
      status = undefined
    }
    const completedAt = Date.now()
    const outcome = classify({ status, code })
    const op: Operation = {
      marker,
      client,
      agent: agent.name,
      command,
      invokedAt,
      completedAt,
      outcome,
    }
    if (status != null) op.status = status
    if (code != null) op.code = code
    if (detail != null && outcome !== 'ok') op.detail = detail.slice(0, 300)
    if (answer != null) {
      op.rollout = answer.id
      this.learn([answer])
    }
    this.history.push(op)
  }

  /** Reads the newest rollouts from a random running agent every second while the clients run. */
  private async reader(): Promise<void> {
    while (!this.stopClients) {
      const up = this.cluster.nodes.filter((n) => n.child != null && !this.paused.has(n))
      if (up.length > 0) {
        const list = await this.get<RolloutView[]>(pick(this.random, up), '/api/rollouts', 2000).catch(
          () => null,
        )
        if (list != null) this.learn(list.slice(0, 5))
      }
      await sleep(1000)
    }
  }

  private learn(rollouts: ReadonlyArray<Pick<RolloutView, 'id' | 'state' | 'distribution'>>): void {
    for (const r of rollouts) {
      if (!this.knowledge.ids.includes(r.id)) this.knowledge.ids.push(r.id)
      const latest = this.knowledge.latest
      if (latest == null || rolloutNumber(r.id) >= rolloutNumber(latest.id))
        this.knowledge.latest = { id: r.id, state: r.state, distribution: r.distribution }
    }
    if (this.knowledge.ids.length > 12) this.knowledge.ids.splice(0, this.knowledge.ids.length - 12)
  }

  // --- healing -------------------------------------------------------------------------------

  /**
   * Every agent running and continued, one acting leader every agent follows, and
   * the same rollouts on every agent twice in a row, a second apart. Not healed
   * after `timeoutMs`: the last rollouts every agent answered with (the checker
   * says how they differ), or null when some agent did not answer.
   */
  private async heal(
    timeoutMs: number,
  ): Promise<{ healed: boolean; states: Record<string, ObservedRollout[]> | null }> {
    this.resumeAll()
    const deadline = Date.now() + timeoutMs
    for (const node of this.cluster.nodes)
      if (node.child == null) await this.cluster.launch(node).catch(() => {})
    let previous: string | null = null
    for (;;) {
      const states = await this.agreed()
      if (states != null) {
        const text = JSON.stringify(states)
        if (text === previous) return { healed: true, states }
        previous = text
      } else previous = null
      if (Date.now() >= deadline) return { healed: false, states: await this.allRollouts() }
      await sleep(1000)
    }
  }

  /** Every agent's rollouts when all follow one acting leader and hold the same rollouts; else null. */
  private async agreed(): Promise<Record<string, ObservedRollout[]> | null> {
    const leader = await this.findLeader(0)
    if (leader == null) return null
    const views = await Promise.all(
      this.cluster.nodes.map((n) => this.get<ManagerStatus>(n, '/api/manager', 3000).catch(() => null)),
    )
    if (views.some((v) => v == null || v.manager !== leader.id)) return null
    const states = await this.allRollouts()
    if (states == null) return null
    const texts = new Set(Object.values(states).map((s) => JSON.stringify(s)))
    return texts.size === 1 ? states : null
  }

  /** What each agent says of the manager and the voters (a failed heal's evidence). */
  private async managerViews(): Promise<Record<string, unknown>> {
    const views: Record<string, unknown> = {}
    for (const node of this.cluster.nodes) {
      const [manager, voters] = await Promise.all(
        ['/api/manager', '/api/voters'].map((path) =>
          this.get<Record<string, unknown>>(node, path, 3000).catch((err: unknown) => String(err)),
        ),
      )
      views[node.name] = {
        id: node.id,
        paused: this.paused.has(node),
        running: node.child != null,
        manager,
        voters,
      }
    }
    return views
  }

  private async allRollouts(): Promise<Record<string, ObservedRollout[]> | null> {
    const lists = await Promise.all(
      this.cluster.nodes.map((n) => this.get<RolloutView[]>(n, '/api/rollouts', 3000).catch(() => null)),
    )
    if (lists.some((l) => l == null)) return null
    return Object.fromEntries(this.cluster.nodes.map((n, i) => [n.name, lists[i]!.map(essential)]))
  }

  // --- HTTP ----------------------------------------------------------------------------------

  private async get<T>(node: ChaosNode, path: string, timeoutMs = 5000): Promise<T> {
    const res = await fetch(`${node.api}${path}`, {
      headers: { authorization: `Bearer ${this.tokens.get(HARNESS)}` },
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (!res.ok) throw new Error(`GET ${path} on ${node.name}: HTTP ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }

  private async post<T>(node: ChaosNode, path: string, body: unknown, as: string): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${node.api}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.tokens.get(as)}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      })
      if (res.ok) return (await res.json()) as T
      const text = await res.text()
      if (res.status !== 503 || attempt >= 10)
        throw new Error(`POST ${path} on ${node.name}: HTTP ${res.status} ${text}`)
      await sleep(1000)
    }
  }

  private async until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await sleep(200)
    }
  }

  private async collectLog(why: string): Promise<void> {
    this.log.push(`-- ${why}`)
    for (const node of this.cluster.nodes) {
      const lines = await logProblems(node, Math.max(0, (await sizeOf(node.logFile)) - 200_000), 30).catch(
        () => [],
      )
      this.log.push(...lines.map((line) => `${node.name}: ${line}`))
    }
  }

  // --- the report ----------------------------------------------------------------------------

  private report(stoppedEarly: string | null, workDir: string | null): ManagerReport {
    const { print: _print, ...options } = this.options
    const byKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
    for (const f of this.faultLog) byKind[f.kind]++
    const ops: ManagerReport['ops'] = {
      invoked: this.history.length,
      ok: 0,
      fail: 0,
      unknown: 0,
      unknownApplied: 0,
      unknownAbsent: 0,
      byOp: {},
      byCode: {},
      okLatencyMs: latency(
        this.history.filter((o) => o.outcome === 'ok').map((o) => o.completedAt - o.invokedAt),
      ),
    }
    for (const op of this.history) {
      ops[op.outcome]++
      const applied = this.applied.get(op.marker)
      if (op.outcome === 'unknown' && applied === true) ops.unknownApplied++
      if (op.outcome === 'unknown' && applied === false) ops.unknownAbsent++
      const perOp = entry(ops.byOp, op.command.op, () => ({ ok: 0, fail: 0, unknown: 0 }))
      perOp[op.outcome]++
      const code = op.outcome === 'ok' ? 'ok' : (op.code ?? `HTTP ${op.status ?? '?'}`)
      const perCode = entry(ops.byCode, code, () => ({ count: 0, applied: 0 }))
      perCode.count++
      if (applied === true) perCode.applied++
    }
    return {
      suite: 'chaos-manager',
      startedAt: new Date(this.began).toISOString(),
      durationS: round((Date.now() - this.began) / 1000),
      options,
      stoppedEarly,
      rounds: this.rounds,
      faults: {
        total: this.faultLog.length,
        byKind,
        onLeader: this.faultLog.filter((f) => f.wasLeader).length,
        leaderChanged: this.faultLog.filter((f) => f.leaderAfter != null && f.leaderAfter !== f.leaderBefore)
          .length,
      },
      terms: this.terms,
      ops,
      violations: this.violations,
      log: this.log,
      workDir,
      history: this.history,
      faultLog: this.faultLog,
    }
  }
}

/** Rolling rollout settings: one node at a time, each ready 1–3 s before the next. */
function rolling(random: Random): { maxUnavailable: number; minReadyMs: number } {
  return { maxUnavailable: 1, minReadyMs: intBetween(random, 1000, 3000) }
}

function latency(ms: number[]): { p50: number | null; p99: number | null; max: number | null } {
  const sorted = [...ms].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? null }
}

/**
 * The agents whose manager view names no leader, or another one than most agents
 * name (from managerViews()); all of them when most name none.
 */
function notFollowing(views: Record<string, unknown>): string[] {
  const leaderOf = (v: unknown) =>
    ((v as { manager?: { manager?: unknown } }).manager?.manager as string | null | undefined) ?? null
  const votes = new Map<string, number>()
  for (const v of Object.values(views)) {
    const leader = leaderOf(v)
    if (leader != null) votes.set(leader, (votes.get(leader) ?? 0) + 1)
  }
  const [top] = [...votes].sort((a, b) => b[1] - a[1])
  const majority = top != null && top[1] * 2 > Object.keys(views).length ? top[0] : null
  return Object.entries(views)
    .filter(([, v]) => majority == null || leaderOf(v) !== majority)
    .map(([name]) => name)
}

function markerName(i: number): string {
  return `op${String(i).padStart(4, '0')}`
}

/** The fields the checker reads (and agents must agree on). */
function essential(r: RolloutView): ObservedRollout {
  return {
    id: r.id,
    kind: r.kind,
    distribution: r.distribution,
    from: r.from,
    state: r.state,
    requestedBy: r.requestedBy,
    requestedAt: r.requestedAt,
    finishedAt: r.finishedAt,
    reason: r.reason,
    approved: r.approved,
    actions: r.actions ?? [],
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

/** ECONNREFUSED, ECONNRESET, TIMEOUT…: what a failed fetch says about the connection. */
function networkCode(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'TIMEOUT'
  let cause: unknown = err
  for (let depth = 0; depth < 4 && cause != null; depth++) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === 'string') return code
    cause = (cause as { cause?: unknown }).cause
  }
  return err instanceof Error ? err.name : 'ERROR'
}

function roundLine(record: RoundRecord, faults: readonly FaultRecord[]): string {
  const mine = faults.filter((f) => f.round === record.index)
  const what = mine
    .map((f) => `${f.kind} ${f.victim}${f.wasLeader ? '*' : ''} ${round(f.durationMs / 1000)}s`)
    .join(', ')
  const { ok, fail, unknown } = record.outcomes
  const check =
    record.check == null
      ? 'NOT CHECKED'
      : record.check.ok
        ? 'history OK'
        : `VIOLATIONS ${record.check.violations.map((v) => v.kind).join(', ')}`
  return (
    `round ${record.index}: ${what}; ${record.ops} ops (${ok} ok, ${fail} fail, ${unknown} unknown); ` +
    `healed ${record.healMs == null ? (record.restarted == null ? 'never' : `only after restarting ${record.restarted.join(', ')}`) : `in ${round(record.healMs / 1000)} s`}; ${check}`
  )
}

export function summaryText(report: ManagerReport): string {
  const lines: string[] = []
  const { ops, faults } = report
  lines.push(
    '',
    `faults: ${faults.total} (${FAULT_KINDS.map((k) => `${k} ${faults.byKind[k]}`).join(', ')}); ` +
      `${faults.onLeader} hit the acting leader; the leader changed after ${faults.leaderChanged}; ` +
      `terms ${report.terms.first ?? '?'} → ${report.terms.last ?? '?'}`,
    `ops: ${ops.invoked} invoked: ${ops.ok} ok, ${ops.fail} fail, ${ops.unknown} unknown ` +
      `(${ops.unknownApplied} found applied, ${ops.unknownAbsent} absent); acknowledged in ` +
      `${ops.okLatencyMs.p50} ms (median), ${ops.okLatencyMs.p99} ms (p99), ${ops.okLatencyMs.max} ms (max)`,
  )
  for (const [op, o] of Object.entries(ops.byOp))
    lines.push(`  ${op.padEnd(8)} ok ${o.ok}, fail ${o.fail}, unknown ${o.unknown}`)
  lines.push('codes (count, applied):')
  for (const [code, c] of Object.entries(ops.byCode).sort((a, b) => b[1].count - a[1].count))
    lines.push(`  ${code.padEnd(24)} ${c.count}, ${c.applied}`)
  const unhealed = report.rounds.filter((r) => r.unhealed != null)
  lines.push(
    `heal failures: ${unhealed.length}` +
      unhealed
        .map(
          (r) =>
            ` (round ${r.index}: ${r.restarted == null ? 'never healed' : `healed once ${r.restarted.join(', ')} restarted`})`,
        )
        .join(''),
  )
  lines.push(`violations: ${report.violations.length}`)
  for (const v of report.violations.slice(0, 20)) lines.push(`  ${v.kind}: ${v.detail}`)
  if (report.stoppedEarly != null) lines.push(`stopped early: ${report.stoppedEarly}`)
  if (report.workDir != null) lines.push(`work folder (logs, data): ${report.workDir}`)
  return lines.join('\n')
}
