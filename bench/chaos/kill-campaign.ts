/**
 * Kill campaign: SIGKILL a real agent process at a random moment of a download,
 * an install, a version switch or a rollout step; restart it on the same data
 * folder with the same arguments; then check that its store verifies, that it
 * runs exactly one version, that no component process of the killed run is
 * left, that the rollout finishes or ends cleanly with a reason, and that the
 * cluster converges. Seeded: a seed gives the same phases, victims and moments.
 *
 * One cluster serves every trial; each trial starts from a settled cluster (every
 * node on one version, ready, no rollout running). See docs/reliability-chaos.md.
 */
import { mkdtempSync } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DistributionView } from '../../src/artifacts/index.js'
import type { ManagerStatus, RolloutView } from '../../src/manager/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { intBetween, mulberry32, pick, shuffle } from '../random.js'
import { round, table } from '../util.js'
import {
  CHECKS,
  type CheckName,
  type CheckResult,
  converged,
  holds,
  nameOf,
  noDebris,
  noOrphans,
  oneVersion,
  rolloutSettled,
  storeVerifies,
} from './checks.js'
import {
  ChaosCluster,
  type ChaosNode,
  getJson,
  HttpError,
  logProblems,
  markedProcesses,
  poll,
  postJson,
  sizeOf,
} from './cluster.js'
import { type BaseVersion, VersionFactory } from './versions.js'

export const PHASES = ['download', 'install', 'switch', 'rollout'] as const
export type Phase = (typeof PHASES)[number]

export interface KillOptions {
  trials: number
  seed: number
  maxMinutes: number
  phase: Phase | 'all'
  /** Agents in the cluster. */
  nodes: number
  preset: 'test' | 'lan'
  /** Longest a trial waits, after the kill, for every check to pass. */
  recoverTimeoutS: number
  /** Keep the work folder (data folders and agent logs) even when every trial passed. */
  keep: boolean
  /** Progress lines go here (default: console.log). */
  print?: (line: string) => void
}

/** Per-agent download limit: a few MB then take a second or two, long enough to cut. */
const DOWNLOAD_RATE = '3M'
const DOWNLOAD_RATE_BYTES = 3 * 1024 * 1024
/** Padding resource of a download trial: a fresh random blob of this many bytes. */
const PADDING_MIN = 3 * 1024 * 1024
const PADDING_MAX = 7 * 1024 * 1024
/** Chunk size of the padded versions: a kill lands between (or during) many small chunk writes. */
const DOWNLOAD_CHUNK = 256 * 1024
/** A killed agent stays down this long at most before it is restarted. */
const MAX_DOWN_MS = 1500
/** How often the phase of the victim is sampled while waiting for the phase to begin. */
const PHASE_POLL_MS = 5
/** Longest wait for a settled cluster before a trial, and for a phase to begin. */
const SETTLE_TIMEOUT_MS = 90_000
const PHASE_TIMEOUT_MS = 60_000
/** Gap between looks at the victim while waiting for the moment of the kill. */
const SAMPLE_MS = 20
/** A look older than this at the kill says nothing about whether the phase was still on. */
const FRESH_MS = 1000
/** How long a refused command (503: no manager reachable) is retried. */
const COMMAND_RETRY_MS = 20_000
/** Install and switch lengths: the median of this many recent observations. */
const ESTIMATE_WINDOW = 7

/** A phase set in motion: when it began, and how to tell where the victim was at the kill. */
interface PhaseUnderWay {
  phaseStart: number
  /** Versions the victim must hold whole once recovered. */
  holdsAfter: string[]
  /** Samples the victim (or the rollout) up to the kill. */
  sampler: Sampler<unknown>
  /** What a sample says: a description, and whether the phase was still under way. */
  read: (sample: unknown) => { text: string; inPhase: boolean }
  /** What the disk shows right after the kill: proof of a download or an unpack cut short. */
  evidence: () => Promise<string | null>
}

/** A trial's choices, all drawn from its own seed. */
export interface TrialPlan {
  index: number
  seed: number
  phase: Phase
  /** Which node is the victim (an index into the candidates of the phase). */
  victimDraw: number
  /** Rollout trials: kill the manager rather than another node. */
  killManager: boolean
  /** Where in the phase the kill lands, as a share of its calibrated length. */
  fraction: number
  downMs: number
  /** Download trials: the padding size; download and install trials: the Educa build copied. */
  paddingBytes: number
  base: BaseVersion
  /** Which other node sends the command (publish or rollout). */
  senderDraw: number
}

export function planTrial(index: number, seed: number, phase: Phase): TrialPlan {
  const random = mulberry32(seed)
  return {
    index,
    seed,
    phase,
    victimDraw: random(),
    killManager: random() < 0.4,
    fraction: random(),
    downMs: Math.floor(random() * MAX_DOWN_MS),
    paddingBytes: intBetween(random, PADDING_MIN, PADDING_MAX),
    base: pick<BaseVersion>(random, ['1.0', '1.1']),
    senderDraw: random(),
  }
}

/** The phase of each trial: `--phase P` → all P; `all` → equal shares in a seeded order. */
export function schedule(trials: number, seed: number, phase: Phase | 'all'): Phase[] {
  if (phase !== 'all') return Array.from({ length: trials }, () => phase)
  const phases = Array.from({ length: trials }, (_, i) => PHASES[i % PHASES.length]!)
  return shuffle(mulberry32((seed ^ 0x5bd1e995) >>> 0), phases)
}

/** Lengths of the phases measured on this cluster before the trials (ms). */
export interface Calibration {
  /** Bytes per second a node downloads a padded version at. */
  downloadBytesPerS: number
  installMs: number
  switchMs: number
  rolloutMs: number
}

export interface TrialResult {
  index: number
  seed: number
  phase: Phase
  victim: string
  victimId: string
  victimWasManager: boolean
  /** The version the trial published or rolled out. */
  version: string | null
  rolloutId: string | null
  fraction: number
  /** Planned ms from the start of the phase to the kill. */
  delayMs: number
  /** Actual ms from the start of the phase to the kill. */
  killAtMs: number | null
  /** What the victim (or the rollout) was doing just before the kill. */
  atKill: string
  /** The kill landed while the phase was still under way (null: the last look got no answer in time). */
  inPhase: boolean | null
  downMs: number
  restartMs: number | null
  /** From the kill until every check but the store's passed (null: never within the timeout). */
  recoverMs: number | null
  checks: Record<CheckName, CheckResult>
  pass: boolean
  /** A failure of the harness itself (a command refused, a phase that never began). */
  error: string | null
  /** Commands refused with 503 and retried (the refusal each time). */
  commandRetries: string[]
  /** The length of the phase the kill moment was drawn over (ms): calibrated, then refined by observations. */
  phaseMs: number
  /** WARN/ERROR lines the agents logged during the trial, on failure. */
  log: string[]
  reproduce: string
}

export interface KillReport {
  suite: 'chaos-kill'
  startedAt: string
  durationS: number
  options: Omit<KillOptions, 'print'>
  calibration: Calibration | null
  planned: number
  ran: number
  stoppedEarly: string | null
  /** After the last trial, on every node: the store verifies, no stray process, nothing half-written. */
  final: Record<string, Record<'store' | 'orphans' | 'debris', CheckResult>> | null
  workDir: string | null
  /** `inPhase`: kills seen to land during the phase; `unseen`: no last look in time. */
  summary: Record<
    Phase,
    { trials: number; killed: number; inPhase: number; unseen: number; passed: number; failed: number }
  >
  failures: Array<{ index: number; seed: number; phase: Phase; failed: string[]; reproduce: string }>
  trials: TrialResult[]
  notes: string[]
}

export async function runKillCampaign(options: KillOptions): Promise<{ report: KillReport; text: string }> {
  const campaign = new KillCampaign(options)
  return campaign.run()
}

class KillCampaign {
  private readonly print: (line: string) => void
  private readonly cluster: ChaosCluster
  private readonly versions: VersionFactory
  private calibration: Calibration | null = null
  /** Versions each node has run (so their packages are unpacked there), oldest first. */
  private readonly ran = new Map<string, string[]>()
  private readonly notes: string[] = []
  /** Install and switch lengths seen on the nodes (calibration, then the nodes not killed in each trial). */
  private readonly observed: Record<'install' | 'switch', number[]> = { install: [], switch: [] }
  private readonly dir: string
  private readonly began = Date.now()

  constructor(private readonly options: KillOptions) {
    this.print = options.print ?? ((line) => console.log(line))
    this.dir = mkdtempSync(join(tmpdir(), 'shoal-chaos-'))
    this.cluster = new ChaosCluster({
      dir: this.dir,
      size: options.nodes,
      cluster: 'chaos',
      preset: options.preset,
      downloadRate: DOWNLOAD_RATE,
      logLevel: 'info',
    })
    this.versions = new VersionFactory(this.dir, this.cluster.keyFile)
  }

  async run(): Promise<{ report: KillReport; text: string }> {
    const { options } = this
    const phases = schedule(options.trials, options.seed, options.phase)
    const trials: TrialResult[] = []
    let stoppedEarly: string | null = null
    let final: KillReport['final'] = null
    // Interrupted (Ctrl-C): stop the agents and their components rather than leave them running.
    const interrupted = (signal: NodeJS.Signals) => {
      this.print(`${signal}: stopping the agents; work folder ${this.dir} kept`)
      void this.cluster.stop().finally(() => process.exit(130))
    }
    process.once('SIGINT', interrupted)
    process.once('SIGTERM', interrupted)
    this.print(
      `kill campaign: ${options.trials} trial(s), seed ${options.seed}, phase ${options.phase}, ` +
        `budget ${options.maxMinutes} min, ${options.nodes} agents (${options.preset} preset), work folder ${this.dir}`,
    )
    try {
      await this.setUp()
      for (const [index, phase] of phases.entries()) {
        const spentMin = (Date.now() - this.began) / 60_000
        if (spentMin >= options.maxMinutes) {
          stoppedEarly = `time budget of ${options.maxMinutes} min used up after ${index} of ${phases.length} trials`
          this.print(`STOPPED: ${stoppedEarly}`)
          break
        }
        const plan = planTrial(index, (options.seed + index) >>> 0, phase)
        const result = await this.trial(plan)
        trials.push(result)
        this.print(progressLine(result, phases.length))
        if (!result.pass) {
          const healed = await this.heal()
          if (!healed) {
            stoppedEarly = `the cluster could not be brought back to a settled state after trial ${index}`
            this.print(`STOPPED: ${stoppedEarly}`)
            break
          }
        }
      }
      if (trials.length > 0 && stoppedEarly == null) final = await this.finalSweep()
    } catch (err) {
      stoppedEarly = `campaign aborted: ${(err as Error).stack ?? String(err)}`
      this.print(`STOPPED: ${stoppedEarly}`)
    } finally {
      process.off('SIGINT', interrupted)
      process.off('SIGTERM', interrupted)
      await this.cluster.stop().catch(() => {})
    }
    const failed =
      trials.some((t) => !t.pass) ||
      stoppedEarly != null ||
      Object.values(final ?? {}).some((checks) => Object.values(checks).some((c) => !c.ok))
    const keep = options.keep || failed
    if (!keep) await rm(this.dir, { recursive: true, force: true })
    const report = this.report(phases.length, trials, stoppedEarly, final, keep ? this.dir : null)
    return { report, text: summaryText(report) }
  }

  // --- set-up and calibration -------------------------------------------------------------

  private async setUp(): Promise<void> {
    await this.cluster.start()
    await this.versions.init()
    await this.until('the cluster to converge', () => converged(this.cluster), SETTLE_TIMEOUT_MS)
    const [first] = this.cluster.nodes
    for (const version of ['1.0', '1.1'] as const)
      await this.versions.publish(first!.api, this.versions.base(version), version, 1024 * 1024)
    await this.waitHeld(['educa@1.0', 'educa@1.1'])
    await this.rollout(first!, 'educa@1.0', 'all-at-once')
    await this.settle()
    this.calibration = await this.calibrate()
    this.observed.install.push(this.calibration.installMs)
    this.observed.switch.push(this.calibration.switchMs)
    this.print(
      `calibrated: download ${round(this.calibration.downloadBytesPerS / 2 ** 20, 2)} MiB/s, install ` +
        `${this.calibration.installMs} ms, switch ${this.calibration.switchMs} ms, rolling rollout ` +
        `${this.calibration.rolloutMs} ms (set-up ${round((Date.now() - this.began) / 1000)} s)`,
    )
  }

  /** Measures each phase once on the settled cluster; the trials draw their kill moments over these lengths. */
  private async calibrate(): Promise<Calibration> {
    const nodes = this.cluster.nodes
    const [first] = nodes
    // Switch: 1.0 → 1.1 on every node (tiny packages: the install step is negligible).
    await this.rollout(first!, 'educa@1.1', 'all-at-once')
    await this.settle()
    const switches = await Promise.all(nodes.map((n) => getJson<RuntimeStatus>(n, '/api/components')))
    const switchMs = median(switches.map((s) => span(s.lastSwitch?.installedAt, s.lastSwitch?.settledAt)))

    // Download: a padded version published on the first node, timed on the others.
    const bytes = Math.round((PADDING_MIN + PADDING_MAX) / 2)
    const dl = await this.versions.padded('0.9-dl', '1.1', bytes)
    await this.versions.publish(first!.api, dl, '0.9-dl', DOWNLOAD_CHUNK)
    const seen = new Map<string, number>()
    const done = new Map<string, number>()
    await poll(
      async () => {
        for (const node of nodes.slice(1)) {
          if (done.has(node.name)) continue
          const d = (await getJson<DistributionView[]>(node, '/api/distributions')).find(
            (x) => x.id === 'educa@0.9-dl',
          )
          if (d == null) continue
          if (!seen.has(node.name)) seen.set(node.name, Date.now())
          if (d.complete) done.set(node.name, Date.now())
        }
        return done.size === nodes.length - 1 ? true : null
      },
      { timeoutMs: 120_000, everyMs: 20 },
    )
    const downloadMs = median([...done].map(([name, at]) => at - seen.get(name)!))
    const downloadBytesPerS = downloadMs > 0 ? (bytes / downloadMs) * 1000 : DOWNLOAD_RATE_BYTES

    // Install: freshly packed components rolled out everywhere at once.
    const inst = await this.versions.freshInstall('0.9-inst', '1.1')
    await this.versions.publish(first!.api, inst, '0.9-inst', 1024 * 1024)
    await this.waitHeld(['educa@0.9-inst'])
    await this.rollout(first!, 'educa@0.9-inst', 'all-at-once')
    await this.settle()
    const installs = await Promise.all(nodes.map((n) => getJson<RuntimeStatus>(n, '/api/components')))
    const installMs = median(installs.map((s) => span(s.lastSwitch?.startedAt, s.lastSwitch?.installedAt)))

    // Rolling rollout back to 1.1: every node in turn, min-ready included.
    const began = Date.now()
    await this.rollout(first!, 'educa@1.1', 'rolling')
    await this.settle()
    const rolloutMs = Date.now() - began
    return { downloadBytesPerS: Math.round(downloadBytesPerS), installMs, switchMs, rolloutMs }
  }

  // --- one trial --------------------------------------------------------------------------

  private async trial(plan: TrialPlan): Promise<TrialResult> {
    const { cluster } = this
    const offsets = new Map<string, number>()
    for (const node of cluster.nodes) offsets.set(node.name, await sizeOf(node.logFile))
    cluster.noteAll(`trial #${plan.index} seed ${plan.seed} phase ${plan.phase}`)
    const result: TrialResult = {
      index: plan.index,
      seed: plan.seed,
      phase: plan.phase,
      victim: '',
      victimId: '',
      victimWasManager: false,
      version: null,
      rolloutId: null,
      fraction: round(plan.fraction, 3),
      delayMs: 0,
      killAtMs: null,
      atKill: '',
      inPhase: null,
      downMs: plan.downMs,
      restartMs: null,
      recoverMs: null,
      checks: Object.fromEntries(CHECKS.map((c) => [c, { ok: false, detail: 'not run' }])) as Record<
        CheckName,
        CheckResult
      >,
      pass: false,
      error: null,
      commandRetries: [],
      phaseMs: 0,
      log: [],
      reproduce: `npm run chaos -- kill --seed ${plan.seed} --trials 1 --phase ${plan.phase}`,
    }
    let victim: ChaosNode | undefined
    try {
      await this.settle()
      const kill = await this.strike(plan, result)
      victim = kill.victim
      await sleep(plan.downMs)
      const restarting = Date.now()
      await cluster.launch(victim)
      result.restartMs = Date.now() - restarting
      await this.recover(result, victim, kill)
    } catch (err) {
      result.error = (err as Error).message
      // A node left down by a harness error is brought back for the next trial.
      for (const node of cluster.nodes) if (node.child == null) await cluster.launch(node).catch(() => {})
    }
    result.pass = result.error == null && CHECKS.every((c) => result.checks[c].ok)
    if (!result.pass)
      for (const node of cluster.nodes) {
        const lines = await logProblems(node, offsets.get(node.name) ?? 0).catch(() => [])
        result.log.push(...lines.map((line) => `${node.name}: ${line}`))
      }
    for (const node of cluster.nodes) {
      const status = await getJson<RuntimeStatus>(node, '/api/components').catch(() => null)
      if (status?.active != null) this.remember(node, status.active)
      // The nodes that were not killed did the same install or switch at the same time:
      // how long it took them is the best guess of how long the next one takes.
      const last = status?.lastSwitch
      if (
        node !== victim &&
        last?.to === result.version &&
        (plan.phase === 'install' || plan.phase === 'switch')
      ) {
        const ms =
          plan.phase === 'install'
            ? span(last.startedAt, last.installedAt)
            : span(last.installedAt, last.settledAt)
        if (Number.isFinite(ms)) this.observed[plan.phase].push(ms)
      }
    }
    return result
  }

  /** How long an install or a switch takes now: the median of the latest observations. */
  private estimate(phase: 'install' | 'switch'): number {
    return Math.round(median(this.observed[phase].slice(-ESTIMATE_WINDOW)))
  }

  /** Sets the phase in motion, waits for the planned moment, and kills the victim. */
  private async strike(
    plan: TrialPlan,
    result: TrialResult,
  ): Promise<{ victim: ChaosNode; before: number[]; holdsAfter: string[]; killedAt: number }> {
    const { cluster } = this
    const nodes = cluster.nodes
    const manager = (await getJson<ManagerStatus>(nodes[0]!, '/api/manager')).manager
    let victim: ChaosNode
    if (plan.phase === 'rollout') {
      const managerNode = cluster.byId(manager ?? '')
      const others = nodes.filter((n) => n !== managerNode)
      victim =
        plan.killManager && managerNode != null
          ? managerNode
          : others[Math.floor(plan.victimDraw * others.length)]!
    } else {
      victim = nodes[Math.floor(plan.victimDraw * nodes.length)]!
    }
    const senders = nodes.filter((n) => n !== victim)
    const sender = senders[Math.floor(plan.senderDraw * senders.length)]!
    result.victim = victim.name
    result.victimId = victim.id
    result.victimWasManager = victim.id === manager
    const phase =
      plan.phase === 'download'
        ? await this.startDownload(plan, result, victim, sender)
        : plan.phase === 'rollout'
          ? await this.startRollingRollout(result, victim, sender)
          : await this.startSwitch(plan, result, victim, sender)
    const { phaseStart, sampler, read, evidence } = phase
    result.delayMs = Math.round(plan.fraction * result.phaseMs)
    await sleepUntil(phaseStart + result.delayMs)
    sampler.stop()
    const killedAt = Date.now()
    await cluster.kill(victim, 'SIGKILL')
    result.killAtMs = killedAt - phaseStart
    // The newest answer before the kill says where the victim was, if it is recent enough.
    const last = sampler.latest
    if (last == null) result.atKill = 'no answer before the kill'
    else {
      const { text, inPhase } = read(last.value)
      const age = killedAt - last.at
      result.atKill = `${text} (seen ${age} ms before)`
      result.inPhase = age <= FRESH_MS ? inPhase : null
    }
    const proof = await evidence()
    if (proof != null) {
      result.atKill += `; ${proof}`
      result.inPhase = true
    }
    // Its components outlive it (own process groups): these are what the restart must deal with.
    const before = (await markedProcesses(victim.dataDir)).map((p) => p.pid)
    return { victim, before, holdsAfter: phase.holdsAfter, killedAt }
  }

  /**
   * Download: publishes `2.N-dl` (a fresh padding blob) through `sender`; the phase
   * begins when the version shows in the victim's list.
   */
  private async startDownload(
    plan: TrialPlan,
    result: TrialResult,
    victim: ChaosNode,
    sender: ChaosNode,
  ): Promise<PhaseUnderWay> {
    const version = `2.${plan.index}-dl`
    const id = `educa@${version}`
    result.version = id
    const dir = await this.versions.padded(version, plan.base, plan.paddingBytes)
    await this.versions.publish(sender.api, dir, version, DOWNLOAD_CHUNK)
    const probe = async () =>
      (await getJson<DistributionView[]>(victim, '/api/distributions', 2000)).find((x) => x.id === id) ?? null
    const phaseStart = await this.phaseBegins(victim, 'a download of the new version', async () =>
      (await probe()) == null ? null : Date.now(),
    )
    result.phaseMs = Math.round((plan.paddingBytes * 1000) / this.calibration!.downloadBytesPerS)
    return {
      phaseStart,
      holdsAfter: [id],
      sampler: new Sampler(probe),
      read: (sample) => {
        const d = sample as DistributionView
        return { text: `${d.progress.chunks}/${d.progress.total} chunks`, inPhase: !d.complete }
      },
      // Every version was whole before the trial: a partial blob now is this download's.
      evidence: async () => {
        const partial = await readdir(join(victim.dataDir, 'blobs', 'partial')).catch(() => [])
        return partial.length > 0 ? `${partial.length} partial blob(s) on disk` : null
      },
    }
  }

  /**
   * Install or switch: an all-at-once rollout through `sender`, to a new version
   * (`2.N-inst`, freshly packed components) or to one every node has run. The
   * phase begins when the victim's runtime says it did (its own timestamps, same
   * clock), not when a sample first saw it: a busy agent answers late.
   */
  private async startSwitch(
    plan: TrialPlan,
    result: TrialResult,
    victim: ChaosNode,
    sender: ChaosNode,
  ): Promise<PhaseUnderWay> {
    const install = plan.phase === 'install'
    let id: string
    if (install) {
      const version = `2.${plan.index}-inst`
      id = `educa@${version}`
      const dir = await this.versions.freshInstall(version, plan.base)
      await this.versions.publish(sender.api, dir, version, 1024 * 1024)
      await this.waitHeld([id])
    } else {
      id = await this.installedTarget([victim])
    }
    result.version = id
    result.rolloutId = (await this.startRollout(sender, id, 'all-at-once', result)).id
    const wanted = install ? 'installing' : 'switching'
    const phaseStart = await this.phaseBegins(victim, `${wanted} ${id}`, async () => {
      const s = await getJson<RuntimeStatus>(victim, '/api/components', 2000)
      const last = s.lastSwitch
      if (s.target !== id || last?.to !== id) return null
      // Over before a sample saw it: the kill lands after the phase (reported as such).
      const seen = s.phase === wanted || (s.phase === 'done' && s.active === id)
      const began = install ? last.startedAt : last.installedAt
      return seen && began != null ? Date.parse(began) : null
    })
    result.phaseMs = this.estimate(install ? 'install' : 'switch')
    return {
      phaseStart,
      holdsAfter: [],
      sampler: new Sampler(() => getJson<RuntimeStatus>(victim, '/api/components', 2000)),
      read: (sample) => {
        const s = sample as RuntimeStatus
        const components = s.components.map((c) => `${c.name}@${c.version} ${c.state}`).join(', ')
        return { text: `${s.phase} ${s.active} → ${s.target}; ${components}`, inPhase: s.phase === wanted }
      },
      evidence: async () => {
        if (!install) return null
        const root = join(victim.dataDir, 'components')
        const temps: string[] = []
        for (const component of await readdir(root).catch(() => []))
          for (const name of await readdir(join(root, component)).catch(() => []))
            if (name.includes('.tmp-')) temps.push(component)
        return temps.length > 0 ? `unpack of ${temps.join(', ')} cut short on disk` : null
      },
    }
  }

  /** Rollout: a rolling rollout through `sender`; the phase begins with the command. */
  private async startRollingRollout(
    result: TrialResult,
    victim: ChaosNode,
    sender: ChaosNode,
  ): Promise<PhaseUnderWay> {
    const id = await this.installedTarget(this.cluster.nodes)
    result.version = id
    const rollout = await this.startRollout(sender, id, 'rolling', result)
    result.rolloutId = rollout.id
    result.phaseMs = this.calibration!.rolloutMs
    return {
      phaseStart: Date.now(),
      holdsAfter: [],
      sampler: new Sampler(() => getJson<RolloutView>(sender, `/api/rollouts/${rollout.id}`, 2000)),
      read: (sample) => {
        const view = sample as RolloutView
        const progress = view.members.map((m) => `${nameOf(this.cluster, m.id)} ${m.status}`).join(', ')
        return {
          text: `${view.state}; ${progress}`,
          inPhase: view.state === 'running' && view.members.some((m) => m.id === victim.id),
        }
      },
      evidence: async () => null,
    }
  }

  /** Polls the victim every few ms until `probe` says the phase began; throws after PHASE_TIMEOUT_MS. */
  private async phaseBegins(
    victim: ChaosNode,
    what: string,
    probe: () => Promise<number | null>,
  ): Promise<number> {
    const at = await poll(probe, { timeoutMs: PHASE_TIMEOUT_MS, everyMs: PHASE_POLL_MS })
    if (at == null) throw new Error(`${victim.name} never began ${what} within ${PHASE_TIMEOUT_MS / 1000} s`)
    return at
  }

  /** After the restart: waits until every check passes (or the timeout), then verifies the store. */
  private async recover(
    result: TrialResult,
    victim: ChaosNode,
    kill: { before: number[]; holdsAfter: string[]; killedAt: number },
  ): Promise<void> {
    const { cluster } = this
    const deadline = kill.killedAt + this.options.recoverTimeoutS * 1000
    const attempt = async (name: CheckName, check: () => Promise<CheckResult>) => {
      result.checks[name] = await check().catch((err: unknown) => ({
        ok: false,
        detail: `error: ${(err as Error).message}`,
      }))
      return result.checks[name].ok
    }
    for (;;) {
      // Every check runs each round, so a timeout reports what each one saw last.
      const passed = [
        await attempt('converge', () => converged(cluster)),
        await attempt('version', async () => {
          const all = await Promise.all(cluster.nodes.map((n) => oneVersion(n)))
          const bad = all.filter((c) => !c.ok)
          return bad.length === 0
            ? all.find((_, i) => cluster.nodes[i] === victim)!
            : { ok: false, detail: bad.map((c) => c.detail).join(' | ') }
        }),
        await attempt('orphans', () => noOrphans(victim, kill.before)),
        await attempt('rollout', () => rolloutSettled(cluster, result.rolloutId)),
        await attempt('store', () => holds(victim, kill.holdsAfter)),
      ].every(Boolean)
      if (passed) break
      if (Date.now() >= deadline) return
      await sleep(200)
    }
    result.recoverMs = Date.now() - kill.killedAt
    await attempt('store', async () => {
      const held = await holds(victim, kill.holdsAfter)
      const verified = await storeVerifies(victim)
      return held.ok && verified.ok
        ? { ok: true, detail: `${verified.detail}${kill.holdsAfter.length > 0 ? `; ${held.detail}` : ''}` }
        : {
            ok: false,
            detail: [held, verified]
              .filter((c) => !c.ok)
              .map((c) => c.detail)
              .join('; '),
          }
    })
    await attempt('debris', () => noDebris(victim))
  }

  /** Every node, killed or not, once more at the end: store, processes, leftovers. */
  private async finalSweep(): Promise<NonNullable<KillReport['final']>> {
    await this.settle().catch(() => {})
    const sweep: NonNullable<KillReport['final']> = {}
    const safely = (check: () => Promise<CheckResult>) =>
      check().catch((err: unknown) => ({ ok: false, detail: `error: ${(err as Error).message}` }))
    for (const node of this.cluster.nodes) {
      sweep[node.name] = {
        store: await safely(() => storeVerifies(node)),
        orphans: await safely(() => noOrphans(node, [])),
        debris: await safely(() => noDebris(node)),
      }
      const line = Object.entries(sweep[node.name]!)
        .map(([name, c]) => `${name} ${c.ok ? 'ok' : `FAIL (${c.detail})`}`)
        .join(', ')
      this.print(`final check of ${node.name} (started ${node.starts} times): ${line}`)
    }
    return sweep
  }

  // --- cluster helpers -------------------------------------------------------------------

  /** Every node on one version, ready, converged, no rollout running. */
  private async settledCheck(): Promise<CheckResult> {
    const checks = [await converged(this.cluster), await rolloutSettled(this.cluster, null)]
    for (const node of this.cluster.nodes) checks.push(await oneVersion(node))
    const bad = checks.filter((c) => !c.ok)
    return bad.length === 0
      ? { ok: true, detail: 'settled' }
      : { ok: false, detail: bad.map((c) => c.detail).join('; ') }
  }

  private async settle(timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    await this.until('a settled cluster', () => this.settledCheck(), timeoutMs)
  }

  /** After a failed trial: wait; then restart every agent; false when the cluster stays unsettled. */
  private async heal(): Promise<boolean> {
    if (
      await this.settledCheck().then(
        (c) => c.ok,
        () => false,
      )
    )
      return true
    this.print('  healing: waiting for the cluster to settle')
    try {
      await this.settle(60_000)
      return true
    } catch {}
    this.print('  healing: restarting every agent')
    this.notes.push(`healed by restarting every agent at ${new Date().toISOString()}`)
    for (const node of this.cluster.nodes) {
      if (node.child != null) await this.cluster.kill(node, 'SIGTERM')
      await this.cluster.launch(node)
    }
    try {
      await this.settle(120_000)
      return true
    } catch (err) {
      this.print(`  healing failed: ${(err as Error).message}`)
      return false
    }
  }

  private async until(what: string, check: () => Promise<CheckResult>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last: CheckResult = { ok: false, detail: 'not checked' }
    for (;;) {
      last = await check().catch((err: unknown) => ({ ok: false, detail: (err as Error).message }))
      if (last.ok) return
      if (Date.now() >= deadline) throw new Error(`waited ${timeoutMs / 1000} s for ${what}: ${last.detail}`)
      await sleep(200)
    }
  }

  /** Waits until every node holds every version in `ids`. */
  private async waitHeld(ids: string[]): Promise<void> {
    await this.until(
      `every node to hold ${ids.join(', ')}`,
      async () => {
        const all = await Promise.all(this.cluster.nodes.map((n) => holds(n, ids)))
        const bad = all.filter((c) => !c.ok)
        return bad.length === 0
          ? { ok: true, detail: '' }
          : { ok: false, detail: bad.map((c) => c.detail).join('; ') }
      },
      120_000,
    )
  }

  /**
   * Starts a rollout through `via`. A 503 (no manager reachable from there at that
   * moment) is retried for up to COMMAND_RETRY_MS, as an operator would: after three
   * refusals from one agent the command goes through the next one. Each refusal is
   * noted (docs/reliability-chaos.md, "Findings").
   */
  private async startRollout(
    via: ChaosNode,
    distribution: string,
    strategy: 'all-at-once' | 'rolling',
    result?: TrialResult,
  ): Promise<RolloutView> {
    const deadline = Date.now() + COMMAND_RETRY_MS
    const agents = [via, ...this.cluster.running().filter((n) => n !== via)]
    for (let attempt = 0; ; attempt++) {
      const through = agents[Math.floor(attempt / 3) % agents.length]!
      try {
        return await postJson<RolloutView>(through, '/api/rollouts', { distribution, strategy })
      } catch (err) {
        if (!(err instanceof HttpError) || err.status !== 503 || Date.now() >= deadline) throw err
        if (result != null) result.commandRetries.push(err.message)
        else this.notes.push(`set-up: retried ${err.message}`)
        await sleep(500)
      }
    }
  }

  /** Starts a rollout and waits until it is done. */
  private async rollout(
    via: ChaosNode,
    distribution: string,
    strategy: 'all-at-once' | 'rolling',
  ): Promise<void> {
    const started = await this.startRollout(via, distribution, strategy)
    await this.until(
      `${started.id} (${distribution}) to finish`,
      async () => {
        const view = await getJson<RolloutView>(via, `/api/rollouts/${started.id}`)
        if (view.state === 'done') return { ok: true, detail: '' }
        if (['failed', 'rolled-back', 'aborted', 'superseded'].includes(view.state))
          throw new Error(`${view.id} ended ${view.state}: ${view.reason}`)
        return { ok: false, detail: view.state }
      },
      180_000,
    )
    for (const node of this.cluster.nodes) this.remember(node, distribution)
  }

  private remember(node: ChaosNode, id: string): void {
    const list = this.ran.get(node.name) ?? []
    const at = list.indexOf(id)
    if (at >= 0) list.splice(at, 1)
    list.push(id)
    this.ran.set(node.name, list)
  }

  /**
   * A version every one of `nodes` has run before (its packages are unpacked, so
   * a switch to it is only drain, stop and start), other than what the first of
   * them runs now, that they all still hold: the most recent such.
   */
  private async installedTarget(nodes: ChaosNode[]): Promise<string> {
    const current = (await getJson<RuntimeStatus>(nodes[0]!, '/api/components')).active
    const lists = await Promise.all(nodes.map((n) => getJson<DistributionView[]>(n, '/api/distributions')))
    const held = (id: string) => lists.every((l) => l.some((d) => d.id === id && d.complete))
    const candidates = (this.ran.get(nodes[0]!.name) ?? []).filter(
      (id) => id !== current && nodes.every((n) => this.ran.get(n.name)?.includes(id)) && held(id),
    )
    const chosen = candidates.at(-1)
    if (chosen == null)
      throw new Error(
        `no version other than ${current} is installed on ${nodes.map((n) => n.name).join(', ')}`,
      )
    return chosen
  }

  // --- report --------------------------------------------------------------------------

  private report(
    planned: number,
    trials: TrialResult[],
    stoppedEarly: string | null,
    final: KillReport['final'],
    workDir: string | null,
  ): KillReport {
    const summary = Object.fromEntries(
      PHASES.map((phase) => {
        const of = trials.filter((t) => t.phase === phase)
        return [
          phase,
          {
            trials: of.length,
            killed: of.filter((t) => t.killAtMs != null).length,
            inPhase: of.filter((t) => t.inPhase === true).length,
            unseen: of.filter((t) => t.inPhase == null).length,
            passed: of.filter((t) => t.pass).length,
            failed: of.filter((t) => !t.pass).length,
          },
        ]
      }),
    ) as KillReport['summary']
    const { print: _print, ...options } = this.options
    return {
      suite: 'chaos-kill',
      startedAt: new Date(this.began).toISOString(),
      durationS: round((Date.now() - this.began) / 1000),
      options,
      calibration: this.calibration,
      planned,
      ran: trials.length,
      stoppedEarly,
      final,
      workDir,
      summary,
      failures: trials
        .filter((t) => !t.pass)
        .map((t) => ({
          index: t.index,
          seed: t.seed,
          phase: t.phase,
          failed: [...(t.error == null ? [] : ['harness']), ...CHECKS.filter((c) => !t.checks[c].ok)],
          reproduce: t.reproduce,
        })),
      trials,
      notes: this.notes,
    }
  }
}

function progressLine(t: TrialResult, total: number): string {
  const n = String(total).length
  const checks = CHECKS.map((c) => `${c} ${t.checks[c].ok ? 'ok' : 'FAIL'}`).join(' ')
  const moment =
    t.killAtMs == null
      ? 'not killed'
      : `killed at ${t.killAtMs} ms (${Math.round(t.fraction * 100)}% of ~${t.phaseMs} ms, ` +
        `${t.inPhase == null ? 'unseen' : t.inPhase ? 'in phase' : 'after it'}: ${t.atKill})`
  const head =
    `[${String(t.index + 1).padStart(n)}/${total}] ${t.phase.padEnd(8)} seed ${t.seed} ` +
    `victim ${t.victim}${t.victimWasManager ? ' (manager)' : ''} ${moment}`
  const tail =
    t.error != null
      ? `harness: ${t.error}`
      : `recovered in ${t.recoverMs == null ? 'never' : `${round(t.recoverMs / 1000)} s`} | ${checks}`
  const problems = CHECKS.filter((c) => !t.checks[c].ok).map((c) => `\n      ${c}: ${t.checks[c].detail}`)
  const retried =
    t.commandRetries.length > 0 ? ` (command retried ${t.commandRetries.length}× after 503)` : ''
  return `${head}\n    ${tail}${retried} | ${t.pass ? 'PASS' : 'FAIL'}${t.pass ? '' : problems.join('')}`
}

function summaryText(report: KillReport): string {
  const recoveryOf = (trials: TrialResult[]) => {
    const ms = trials.map((t) => t.recoverMs).filter((v): v is number => v != null)
    return ms.length === 0 ? [null, null] : [round(median(ms) / 1000), round(Math.max(...ms) / 1000)]
  }
  const rows: Array<Array<string | number | null>> = PHASES.map((phase) => {
    const of = report.trials.filter((t) => t.phase === phase)
    const s = report.summary[phase]
    return [phase, s.trials, s.killed, s.inPhase, s.unseen, s.passed, s.failed, ...recoveryOf(of)]
  })
  const all = report.trials
  rows.push([
    'all',
    all.length,
    all.filter((t) => t.killAtMs != null).length,
    all.filter((t) => t.inPhase === true).length,
    all.filter((t) => t.inPhase == null).length,
    all.filter((t) => t.pass).length,
    all.filter((t) => !t.pass).length,
    ...recoveryOf(all),
  ])
  const lines = [
    '',
    `kill campaign, seed ${report.options.seed}: ${report.ran} of ${report.planned} trials in ${report.durationS} s`,
    table(
      [
        'phase',
        'trials',
        'killed',
        'killed in phase',
        'not seen',
        'passed',
        'failed',
        'recover median s',
        'recover max s',
      ],
      rows,
    ),
  ]
  // A trial whose harness failed before the kill ran no check: counted apart.
  const checked = all.filter((t) => t.error == null)
  const checkRows = CHECKS.map((c) => [c, checked.length, checked.filter((t) => !t.checks[c].ok).length])
  lines.push('', table(['check', 'trials checked', 'failed'], checkRows))
  const harness = all.filter((t) => t.error != null).length
  if (harness > 0) lines.push(`${harness} trial(s) failed in the harness before the checks (see below)`)
  const retried = all.filter((t) => t.commandRetries.length > 0)
  if (retried.length > 0)
    lines.push(
      `${retried.length} trial(s) had a command refused with 503 and retried: ${retried.map((t) => `#${t.index}`).join(', ')}`,
    )
  if (report.failures.length > 0) {
    lines.push('', 'failures (reproduce each with the command shown):')
    for (const f of report.failures)
      lines.push(`  #${f.index} ${f.phase} seed ${f.seed}: ${f.failed.join(', ')} — ${f.reproduce}`)
  }
  if (report.final != null) {
    lines.push('', 'after the last trial, every node:')
    for (const [node, checks] of Object.entries(report.final))
      lines.push(
        `  ${node}: ${Object.entries(checks)
          .map(([name, c]) => `${name} ${c.ok ? 'ok' : `FAIL (${c.detail})`}`)
          .join(', ')}`,
      )
  }
  if (report.stoppedEarly != null) lines.push('', `stopped early: ${report.stoppedEarly}`)
  if (report.workDir != null) lines.push('', `agent logs and data folders kept in ${report.workDir}`)
  return lines.join('\n')
}

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return 0
  return sorted[Math.floor(sorted.length / 2)]!
}

function span(from: string | null | undefined, to: string | null | undefined): number {
  if (from == null || to == null) return Number.NaN
  return Date.parse(to) - Date.parse(from)
}

/** Asks `probe` again and again until stopped; `latest` is the newest answer and when it came. */
class Sampler<T> {
  latest: { value: T; at: number } | null = null
  private stopped = false

  constructor(probe: () => Promise<T | null>, everyMs = SAMPLE_MS) {
    void (async () => {
      while (!this.stopped) {
        const value = await probe().catch(() => null)
        if (value != null && !this.stopped) this.latest = { value, at: Date.now() }
        await sleep(everyMs)
      }
    })()
  }

  stop(): void {
    this.stopped = true
  }
}

async function sleepUntil(at: number): Promise<void> {
  const wait = at - Date.now()
  if (wait > 0) await sleep(wait)
}
