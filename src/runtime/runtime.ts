import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import type { Logger, Startable } from '../shared/index.js'
import { BadRequestError, instanceKey, messageOf, NotFoundError, TypedEvents } from '../shared/index.js'
import {
  COMPONENT_ERROR_CHARS,
  DEFAULT_WEIGHT,
  fitOsgiAnnouncement,
  RUNTIME_ERROR_CHARS,
  type RuntimeAnnouncement,
} from './announcement.js'
import { type ComponentDescriptor, componentsOf } from './descriptor.js'
import { LogFile } from './log-file.js'
import { findOrphans, RUNTIME_MARK, reap } from './orphans.js'
import { BundleEndpoints } from './osgi/bundle-endpoints.js'
import { bundleStatus, isOsgi, wantedBundles } from './osgi/osgi-components.js'
import type { DsComponentStatus } from './osgi/osgi-ds.js'
import { type OsgiFramework, OsgiHost } from './osgi/osgi-host.js'
import { type Endpoint, endpointsOf } from './services.js'
import {
  ComponentProcess,
  type ComponentSpec,
  type ComponentState,
  type ComponentStatus,
  type SupervisorPolicy,
} from './supervisor.js'
import { type UnpackLimits, unpackPackage } from './unpack.js'

/**
 * Plain-data configuration of the runtime (see docs/configuration.md). The
 * timers come from the agent's preset (src/shared/presets.ts); each `@default`
 * reads: lan value (the default preset); cloud, test. The limits are
 * `DEFAULT_RUNTIME_LIMITS` (constants.ts).
 */
export interface RuntimeConfig extends SupervisorPolicy {
  /**
   * ms a draining component waits at most for the load balancers before it is stopped anyway.
   * @default 30_000 (lan; cloud 30_000, test 5_000)
   */
  drainTimeoutMs: number
  /** Largest unpacked package and most files in one (512 MiB, 10,000 entries). */
  unpack: UnpackLimits
  /** A component log rotates at this size (1 MiB); this many old files are kept (3). */
  logMaxBytes: number
  logKeep: number
}

/** What the runtime needs of the rest of the agent. */
export interface RuntimeComponents {
  membership: {
    readonly id: string
    readonly events: TypedEvents<MembershipEvents>
    members(): Member[]
    updateMetadata(patch: MemberMetadata, options?: { urgent?: boolean }): Promise<void>
  }
  /**
   * True once every alive load balancer routing to one of `services` says it has
   * nothing in flight to the component instance `key` (they announce it in their
   * own metadata; the rule is the load balancer's, src/loadbalancer/announcement.ts).
   */
  drainConfirmed(key: string, services: readonly string[]): boolean
  /** The versions this node holds. */
  distributions: {
    manifest(id: string): ManifestLike | undefined
    isComplete(id: string): boolean
    blobPath(sha256: string): string
    onComplete(listener: (id: string) => void): () => void
  }
  /** The version the cluster wants this node to run, and its changes. */
  desired: {
    /** `runs` says which components of it this node runs (the manager's placement); absent = all. */
    current(): {
      distribution: string
      runs?: (component: string) => boolean
      /** A version this node will move to soon (its turn in a rollout): unpacked ahead. */
      prepare?: string | null
      /**
       * Versions a failed verdict sent back (docs/manager.md, "Progressive delivery"): their
       * components announce weight 0 at once, so load balancers send them no new request
       * while the node switches back make-before-break.
       */
      condemned?: readonly string[]
    } | null
    onChange(listener: () => void): () => void
  }
  db: {
    get(key: string): Promise<string | undefined>
    put(key: string, value: string): Promise<void>
    del(key: string): Promise<void>
    batch(
      ops: Array<{ type: 'put'; key: string; value: string } | { type: 'del'; key: string }>,
    ): Promise<void>
  }
  logger: Logger
}

interface ManifestLike {
  name: string
  version: string
  config: Record<string, unknown>
  artifacts: Array<{
    name: string
    kind: string
    sha256: string
    descriptor?: Record<string, unknown> | undefined
  }>
}

export interface RuntimeInit {
  cluster: string
  dataDir: string
  /** Interface components listen on, and the host peers reach them through. */
  bindHost: string
  advertiseHost: string
  /** The local agent's API, handed to components as SHOAL_API. */
  apiUrl: () => string
  /** A viewer token for components (SHOAL_TOKEN) when the API requires tokens. */
  apiToken?: string | null
  config: RuntimeConfig
  /** The OSGi framework bundles run in (`--osgi-framework`; docs/osgi.md). Default: SHOAL_OSGI_FRAMEWORK, else equinox. */
  osgiFramework?: OsgiFramework
}

export type RuntimePhase = 'idle' | 'waiting' | 'fetching' | 'installing' | 'switching' | 'done' | 'failed'

/** When the steps of the last switch happened (ISO times), for operators and the benchmark. */
export interface SwitchTiming {
  from: string | null
  to: string
  startedAt: string
  installedAt: string | null
  spawnedAt: string | null
  /** Every new component ready or failed; the old ones are drained and stopped after it. */
  readyAt: string | null
  /** Committed: the old components are gone. */
  settledAt: string | null
}

export interface RuntimeStatus {
  /** The version this node committed to (all its components reached a known state). */
  active: string | null
  /** The version it works towards. */
  target: string | null
  phase: RuntimePhase
  error: string | null
  components: ComponentStatus[]
  /** The Declarative Services components of its bundles (docs/osgi.md); empty without OSGi. */
  dsComponents: DsComponentStatus[]
  lastSwitch: SwitchTiming | null
}

export interface RuntimeEvents {
  'runtime:changed': RuntimeStatus
}

/** The journal entry written before a switch and removed once it is over. */
interface Intent {
  from: string | null
  to: string
  at: string
}

const METADATA_DEBOUNCE_MS = 25
/**
 * `unpackPackage`'s temp folder beside an install folder (`VERSION-SHA12` + `.tmp-HEX12`),
 * and `installConfig`'s beside a config folder (`~` never appears in a `safe` name).
 */
const UNPACK_TEMP = /-[0-9a-f]{12}\.tmp-[0-9a-f]{12}$/
const CONFIG_TEMP = /~tmp-\d+(-[0-9a-f]{8})?$/

/**
 * Runs the components of the version the cluster wants on this node. A switch
 * from A to B is journalled first (`intent`), installs B next to A (each
 * component version in its own folder, so going back needs no unpacking), then
 * stops A and starts B, and commits B as `active` once every component reached
 * a known state. After a crash the journal and the process marks tell what to
 * clean up: orphaned processes are reaped and the switch is carried out again.
 */
export class Runtime implements Startable {
  readonly events: TypedEvents<RuntimeEvents>
  private readonly log: Logger
  private readonly processes = new Map<string, ComponentProcess>()
  /** The previous version's processes, serving until the new version's are ready (make before break). */
  private readonly retiring: ComponentProcess[] = []
  private readonly installing = new Map<string, { version: string; state: ComponentState }>()
  private readonly logs = new Map<string, LogFile>()
  private readonly held = new Set<string>()
  /** Share of load-balanced traffic per component (0–256), for canaries; kept across switches. */
  private readonly weights = new Map<string, number>()
  /** Versions the cluster condemned (a failed verdict): announced with weight 0. */
  private condemned: readonly string[] = []
  private readonly pids = new Set<number>()
  private active: string | null = null
  private running: string | null = null
  private target: string | null = null
  private phase: RuntimePhase = 'idle'
  private error: string | null = null
  /** A target whose install failed: not retried until the desired version changes. */
  private refused: string | null = null
  /** The version whose switch failed last (the phase says `failed` about it). */
  private failedTarget: string | null = null
  /** Versions unpacked ahead (or being), so each is prepared once. */
  private readonly prepared = new Set<string>()
  private preparing: Promise<void> | undefined
  /** Which components the placement gives this node (all until the manager says otherwise). */
  private runs: (component: string) => boolean = () => true
  private lastSwitch: SwitchTiming | null = null
  private started = false
  /** The agent is stopping: no switch or placement change starts a component any more. */
  private shuttingDown = false
  private dirty = false
  private loop: Promise<void> | undefined
  private publishTimer: NodeJS.Timeout | undefined
  private readonly abort = new AbortController()
  private readonly unsubscribe: Array<() => void> = []
  /** The node's OSGi framework, started when a version first places a bundle here (docs/osgi.md). */
  private readonly osgi: OsgiHost
  /** Ports, health and drains of the bundles that serve HTTP. */
  private readonly bundleEndpoints: BundleEndpoints
  /** The bundles last applied to the framework (what an update changes is drained first). */
  private appliedBundles: ReadonlyArray<{ name: string; sha256: string }> = []

  constructor(
    private readonly init: RuntimeInit,
    private readonly components: RuntimeComponents,
  ) {
    this.log = components.logger.child('runtime')
    this.events = new TypedEvents(this.log)
    this.osgi = new OsgiHost(
      {
        dir: join(init.dataDir, 'osgi'),
        // Marked like every component process, so an agent restarted after kill -9 reaps a framework left behind.
        env: { [RUNTIME_MARK]: init.dataDir, SHOAL_NODE_ID: components.membership.id },
        logFile: join(this.logsDir, 'osgi-framework.log'),
        ...(init.osgiFramework == null ? {} : { framework: init.osgiFramework }),
        spawned: (pid) => this.trackPid(pid, true),
        exited: (pid) => this.trackPid(pid, false),
      },
      this.log.child('osgi'),
    )
    this.bundleEndpoints = new BundleEndpoints(
      { bindHost: init.bindHost, advertiseHost: init.advertiseHost },
      () => this.publishSoon(),
      this.log.child('osgi'),
    )
    this.osgi.onChange(() => {
      this.bundleEndpoints.follow(this.osgi.states())
      this.publishSoon()
    })
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    await mkdir(this.componentsDir, { recursive: true })
    await mkdir(this.logsDir, { recursive: true })
    await this.reapOrphans()
    await this.removeUnfinishedInstalls()
    this.active = (await this.components.db.get('active')) ?? null
    const intent = await this.readIntent()
    if (intent != null) {
      this.log.warn('an earlier switch was interrupted; carrying it out again', { ...intent })
      this.target = intent.to
    }
    this.unsubscribe.push(
      this.components.desired.onChange(() => {
        this.refused = null
        this.wake()
      }),
      this.components.distributions.onComplete(() => this.wake()),
      this.components.membership.events.on('member:update', () =>
        this.events.emit('runtime:changed', this.status()),
      ),
    )
    this.wake()
  }

  /** Stops every component (SIGTERM, then SIGKILL after each stop timeout). */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.abort.abort()
    for (const off of this.unsubscribe.splice(0)) off()
    await this.loop?.catch(() => {})
    await this.preparing
    await Promise.all([...this.processes.values(), ...this.retiring].map((p) => p.stop()))
    await this.osgi.stop()
    this.bundleEndpoints.stop()
    clearTimeout(this.publishTimer)
    for (const file of this.logs.values()) await file.close()
  }

  status(): RuntimeStatus {
    const components = [...this.retiring, ...this.processes.values()].map((p) => p.status())
    const framework = this.osgi.frameworkView().pid
    for (const bundle of this.osgi.states())
      components.push(this.bundleEndpoints.overlay(bundleStatus(bundle, framework)))
    for (const [name, { version, state }] of this.installing)
      if (!this.processes.has(name))
        components.push({
          name,
          version,
          distribution: this.target ?? '',
          state,
          instance: 0,
          pid: null,
          port: null,
          endpoint: null,
          provides: [],
          restarts: 0,
          lastExit: null,
          error: null,
          since: new Date().toISOString(),
        })
    return {
      active: this.active,
      target: this.target,
      phase: this.phase,
      error: this.error,
      components: components.sort((a, b) => a.name.localeCompare(b.name) || a.instance - b.instance),
      dsComponents: this.osgi.dsComponents(),
      lastSwitch: this.lastSwitch,
    }
  }

  /** Ready endpoints of `service` across the cluster, this node's first. */
  services(service: string): Endpoint[] {
    return endpointsOf(this.components.membership.members(), service)
  }

  /** The last lines of a component's log. */
  async logTail(name: string, lines: number): Promise<string[]> {
    return (await this.logFile(name, false)).tail(lines)
  }

  /** Calls `listener` with every piece of output a component writes, until the returned function is called. */
  async followLog(name: string, listener: (text: string) => void): Promise<() => void> {
    return (await this.logFile(name, false)).events.on('log:data', listener)
  }

  /** Sets the share of traffic load balancers send to a component here (0–256; 100 is the default). */
  async setWeight(name: string, weight: number): Promise<{ name: string; weight: number }> {
    if (!Number.isInteger(weight) || weight < 0 || weight > 256)
      throw new BadRequestError('a weight is a whole number from 0 to 256')
    this.processOf(name)
    this.weights.set(name, weight)
    await this.publishNow()
    return { name, weight }
  }

  /** Stops one component until `startComponent` or the next switch (operator maintenance). */
  async stopComponent(name: string): Promise<ComponentStatus> {
    const proc = this.processOf(name)
    this.held.add(name)
    await this.drainAndStop([proc])
    return proc.status()
  }

  /** Starts a component stopped by `stopComponent`, or one that ended `failed`, afresh. */
  async startComponent(name: string): Promise<ComponentStatus> {
    const previous = this.processOf(name)
    this.held.delete(name)
    await previous.stop()
    const next = this.supervise(previous.spec)
    next.start()
    return next.status()
  }

  // --- reconciliation ------------------------------------------------------------------

  /** Asks the loop to compare what runs with what should run; runs are serialised. */
  private wake(): void {
    this.dirty = true
    if (this.loop != null || !this.started) return
    this.loop = (async () => {
      while (this.dirty && this.started) {
        this.dirty = false
        await this.reconcile().catch((err: unknown) => {
          this.log.error('reconcile failed', { error: messageOf(err) })
          this.setPhase('failed', messageOf(err))
        })
      }
    })().finally(() => {
      this.loop = undefined
      if (this.dirty && this.started) this.wake()
    })
  }

  private async reconcile(): Promise<void> {
    const wanted = this.components.desired.current()
    const condemned = wanted?.condemned ?? []
    if (condemned.join(',') !== this.condemned.join(',')) {
      this.condemned = condemned
      // Out of rotation now, not once the switch back has started the old version.
      if (this.status().components.some((c) => condemned.includes(c.distribution)))
        await this.publishNow({ urgent: true }).catch(() => {})
    }
    const target = wanted?.distribution ?? this.target ?? this.active
    if (target == null) return
    this.target = target
    this.runs = wanted?.runs ?? this.runs
    if (wanted?.prepare != null && wanted.prepare !== target && this.started)
      this.prepareAhead(wanted.prepare)
    if (target === this.running) {
      // Sent back to the version it runs after a refused switch: it is where it should be.
      if (this.phase === 'failed' && this.failedTarget != null && this.failedTarget !== target) {
        this.failedTarget = null
        this.setPhase('done', null)
      }
      const manifest = this.components.distributions.manifest(target)
      if (manifest != null) await this.reassign(target, manifest)
      return
    }
    if (target === this.refused) return
    const manifest = this.components.distributions.manifest(target)
    if (manifest == null) return this.setPhase('waiting', `version ${target} is not known here yet`)
    if (!this.components.distributions.isComplete(target)) return this.setPhase('fetching', null)
    await this.switchTo(target, manifest)
  }

  private async switchTo(to: string, manifest: ManifestLike): Promise<void> {
    const from = this.running ?? this.active
    this.log.info('switching', { from, to })
    const intent: Intent = { from, to, at: new Date().toISOString() }
    const timing: SwitchTiming = {
      from,
      to,
      startedAt: intent.at,
      installedAt: null,
      spawnedAt: null,
      readyAt: null,
      settledAt: null,
    }
    this.lastSwitch = timing
    await this.components.db.put('intent', JSON.stringify(intent))

    // 1. Install B beside A; a refused package leaves A running untouched.
    this.setPhase('installing', null)
    let specs: ComponentSpec[]
    try {
      specs = await this.install(to, manifest)
      // OSGi bundles switch in place, in the running framework; a failure puts the old bundles back.
      await this.applyBundles(to, manifest)
    } catch (err) {
      this.installing.clear()
      this.refused = to
      this.failedTarget = to
      await this.components.db.del('intent')
      const error = describe(err)
      this.log.error('install failed; staying on the current version', { to, error })
      return this.setPhase('failed', error)
    } finally {
      this.installing.clear()
    }
    if (!this.started || this.shuttingDown) return

    // 2. Make before break: start B beside A, so A keeps serving until B is ready. What
    // serves nothing (failed, held, restarting) and what cannot run twice on a node
    // (exclusive) stops first. Old instances kept serving after an earlier failed
    // switch (see retire) are part of A.
    timing.installedAt = new Date().toISOString()
    this.setPhase('switching', null)
    const previous = [...this.retiring, ...this.processes.values()]
    const exclusive = new Set(specs.filter((s) => s.descriptor.exclusive).map((s) => s.name))
    const stopFirst = previous.filter(
      (p) => p.status().state !== 'ready' || p.spec.descriptor.exclusive || exclusive.has(p.name),
    )
    await this.drainAndStop(stopFirst)
    this.retiring.splice(0, this.retiring.length, ...previous.filter((p) => !stopFirst.includes(p)))
    this.processes.clear()
    this.held.clear()
    this.running = to
    if (!this.started || this.shuttingDown) return
    for (const spec of specs) {
      spec.instance = this.retiring.some((p) => p.name === spec.name && p.spec.instance === 0) ? 1 : 0
      this.supervise(spec)
    }
    for (const spec of specs) void this.startWhenRequirementsMet(this.processes.get(spec.name)!)
    timing.spawnedAt = new Date().toISOString()
    this.publishSoon()

    // 3. Once every component of B is ready or has failed, drain and stop A; the node is then on B.
    // Sent elsewhere meanwhile (abort, rollback): the switch is given up at once.
    if (
      !(await this.settled(
        specs.map((s) => s.name),
        to,
      ))
    )
      return this.giveUp(from, to, stopFirst.length === 0)
    if (!this.started || this.running !== to) return
    timing.readyAt = new Date().toISOString()
    await this.retire()
    if (!this.started) return
    timing.settledAt = new Date().toISOString()
    this.active = to
    await this.components.db.batch([
      { type: 'put', key: 'active', value: to },
      { type: 'del', key: 'intent' },
    ])
    const failed = this.status().components.filter((c) => c.state === 'failed')
    if (failed.length > 0)
      this.setPhase(
        'failed',
        failed.map((c) => `${c.name} failed: ${c.error ?? 'no reason given'}`).join('; '),
      )
    else this.setPhase('done', null)
    this.log.info('switched', { to, failed: failed.map((c) => c.name) })
  }

  /**
   * A switch to `to` that the cluster no longer wants (an abort, a rollback) before
   * it settled. When the node is sent back to `from` and every one of its old
   * components still serves (none had to stop first), the new ones are stopped and
   * the old ones simply stay: no restart, nothing out of rotation. Otherwise the
   * next reconcile switches to whatever is wanted now, the usual way.
   */
  private async giveUp(from: string | null, to: string, oldIntact: boolean): Promise<void> {
    const wanted = this.components.desired.current()?.distribution
    this.log.warn('switch interrupted: the cluster wants another version', { from, to, wanted })
    if (!oldIntact || wanted == null || wanted !== from || this.retiring.length === 0) return
    if (this.retiring.some((p) => p.spec.distribution !== from)) return
    const abandoned = [...this.processes.values()]
    await this.drainAndStop(abandoned)
    this.processes.clear()
    for (const proc of this.retiring.splice(0)) this.processes.set(proc.name, proc)
    this.running = from
    this.failedTarget = null
    await this.components.db.del('intent')
    if (this.lastSwitch != null) this.lastSwitch.settledAt = new Date().toISOString()
    this.setPhase('done', null)
    this.log.info('back on the previous version; its components never stopped', {
      version: from,
      abandoned: to,
    })
  }

  /**
   * The placement changed while the version stayed: drains and stops the
   * components no longer placed here and starts the ones newly placed here.
   */
  private async reassign(id: string, manifest: ManifestLike): Promise<void> {
    const bundles = this.bundlesOf(id, manifest)
    if (!this.osgi.holds(bundles))
      await this.applyBundles(id, manifest).catch((err: unknown) => {
        this.log.error('placing bundles failed', { id, error: describe(err) })
        this.setPhase('failed', describe(err))
      })
    const placed = new Set(this.placedHere(manifest).filter((name) => !bundles.some((b) => b.name === name)))
    const leaving = [...this.processes.values()].filter((p) => !placed.has(p.name))
    const arriving = [...placed].filter((name) => !this.processes.has(name))
    if (leaving.length === 0 && arriving.length === 0) return
    this.log.info('placement changed', {
      stop: leaving.map((p) => p.name),
      start: arriving,
    })
    if (leaving.length > 0) {
      await this.drainAndStop(leaving)
      for (const proc of leaving) this.processes.delete(proc.name)
      this.publishSoon()
    }
    if (arriving.length === 0) return
    let specs: ComponentSpec[]
    try {
      specs = await this.install(id, manifest, new Set(arriving))
    } catch (err) {
      this.log.error('install of newly placed components failed', { id, error: describe(err) })
      return this.setPhase('failed', describe(err))
    } finally {
      this.installing.clear()
    }
    if (!this.started || this.shuttingDown || this.running !== id) return
    for (const spec of specs) this.supervise(spec)
    for (const spec of specs) void this.startWhenRequirementsMet(this.processes.get(spec.name)!)
    this.publishSoon()
  }

  /** The OSGi bundles of `id` placed on this node. */
  /**
   * Puts the bundles of `id` placed here in the framework, in place. HTTP bundles get
   * their port in their configuration; when any jar changes or leaves, the serving
   * HTTP bundles are drained first (marked `draining`, load balancers confirm), since
   * one framework cannot run the old and the new bundle side by side as two
   * processes can.
   */
  private async applyBundles(id: string, manifest: ManifestLike): Promise<void> {
    const bundles = this.bundlesOf(id, manifest)
    const descriptors = componentsOf(manifest.artifacts)
    const http = await this.bundleEndpoints.plan(
      bundles.map((b) => descriptors.get(b.name)).filter((d) => d != null),
    )
    const changing = this.appliedBundles
      .filter((a) => !bundles.some((b) => b.name === a.name && b.sha256 === a.sha256))
      .map((a) => a.name)
    // Any bundle that changes may restart the HTTP ones (a package refresh, a static DS
    // reference to a service it provides): every serving HTTP bundle is drained first.
    const drain = changing.length === 0 ? [] : this.bundleEndpoints.serving(bundles.map((b) => b.name))
    if (drain.length > 0) {
      this.bundleEndpoints.markDraining(drain)
      await this.publishNow({ urgent: true }).catch(() => {})
      await this.waitDrainedKeys(drain, descriptors)
    }
    try {
      await this.osgi.apply(bundles, withHttpConfig(manifest.config, http))
      this.appliedBundles = bundles.map(({ name, sha256 }) => ({ name, sha256 }))
    } finally {
      this.bundleEndpoints.settle()
      this.bundleEndpoints.follow(this.osgi.states())
    }
  }

  private bundlesOf(id: string, manifest: ManifestLike) {
    return wantedBundles(
      id,
      manifest.artifacts,
      componentsOf(manifest.artifacts),
      (name) => this.runs(name),
      (sha256) => this.components.distributions.blobPath(sha256),
      (descriptor) => versionOf(descriptor, manifest),
    )
  }

  /** Names of the components of `manifest` the placement gives this node. */
  private placedHere(manifest: ManifestLike): string[] {
    return [...componentsOf(manifest.artifacts).keys()].filter((name) => this.runs(name))
  }

  /** Unpacks the components of `id` placed here (or `only` these) into their own folders and gathers the config artifacts. */
  private async install(id: string, manifest: ManifestLike, only?: Set<string>): Promise<ComponentSpec[]> {
    const chosen = only ?? new Set(this.placedHere(manifest))
    const descriptors = new Map([...componentsOf(manifest.artifacts)].filter(([name]) => chosen.has(name)))
    const configDir = await this.installConfig(id, manifest)
    const specs: ComponentSpec[] = []
    for (const d of descriptors.values())
      if (!isOsgi(d)) this.installing.set(d.name, { version: versionOf(d, manifest), state: 'installing' })
    this.publishSoon()
    for (const artifact of manifest.artifacts) {
      if (artifact.kind !== 'component') continue
      const descriptor = [...descriptors.values()].find((d) => artifact.descriptor?.name === d.name)
      if (descriptor == null || isOsgi(descriptor)) continue
      const version = versionOf(descriptor, manifest)
      await this.logFile(descriptor.name, true)
      const dir = this.packageDir(descriptor.name, version, artifact.sha256)
      await unpackPackage(
        this.components.distributions.blobPath(artifact.sha256),
        dir,
        this.init.config.unpack,
      )
      specs.push({
        name: descriptor.name,
        version,
        distribution: id,
        dir,
        descriptor,
        instance: 0,
        bindHost: this.init.bindHost,
        advertiseHost: this.init.advertiseHost,
        env: {
          [RUNTIME_MARK]: this.init.dataDir,
          SHOAL_NODE_ID: this.components.membership.id,
          SHOAL_CLUSTER: this.init.cluster,
          SHOAL_API: this.init.apiUrl(),
          ...(this.init.apiToken == null ? {} : { SHOAL_TOKEN: this.init.apiToken }),
          SHOAL_COMPONENT: descriptor.name,
          SHOAL_VERSION: version,
          SHOAL_DISTRIBUTION: id,
          SHOAL_CONFIG: JSON.stringify(manifest.config),
          SHOAL_CONFIG_DIR: configDir,
        },
      })
    }
    return specs
  }

  /** Where a component package is unpacked: named by content, so a folder that exists holds these bytes. */
  private packageDir(name: string, version: string, sha256: string): string {
    return join(this.componentsDir, name, `${safe(version)}-${sha256.slice(0, 12)}`)
  }

  /**
   * Unpacks the components of `id` placed here before this node's turn comes
   * (a rolling update names the version every node will move to), so that the
   * switch itself only drains, stops and starts. Failures are left to the switch
   * to report; one version is prepared at a time.
   */
  private prepareAhead(id: string): void {
    if (this.prepared.has(id) || this.preparing != null) return
    const manifest = this.components.distributions.manifest(id)
    if (manifest == null || !this.components.distributions.isComplete(id)) return
    this.prepared.add(id)
    this.preparing = (async () => {
      const descriptors = componentsOf(manifest.artifacts)
      for (const artifact of manifest.artifacts) {
        const descriptor = descriptors.get(String(artifact.descriptor?.name))
        if (artifact.kind !== 'component' || descriptor == null || !this.runs(descriptor.name)) continue
        if (isOsgi(descriptor)) continue
        const dir = this.packageDir(descriptor.name, versionOf(descriptor, manifest), artifact.sha256)
        await unpackPackage(
          this.components.distributions.blobPath(artifact.sha256),
          dir,
          this.init.config.unpack,
        )
      }
      await this.installConfig(id, manifest)
      this.log.info('prepared ahead of its switch', { id })
    })()
      .catch((err: unknown) =>
        this.log.warn('could not prepare a version ahead', { id, error: describe(err) }),
      )
      .finally(() => {
        this.preparing = undefined
      })
  }

  /**
   * Copies the config artifacts of a version into one folder, by artifact name
   * (atomically). The prepare-ahead and the switch may install the same version at
   * once: each copies into a temp folder of its own, and the one that renames
   * second finds the folder there and keeps it.
   */
  private async installConfig(id: string, manifest: ManifestLike): Promise<string> {
    const dir = join(this.init.dataDir, 'configs', safe(id))
    if (await exists(dir)) return dir
    const temp = `${dir}~tmp-${process.pid}-${randomBytes(4).toString('hex')}`
    try {
      for (const artifact of manifest.artifacts.filter((a) => a.kind === 'config')) {
        const file = join(temp, artifact.name)
        await mkdir(dirname(file), { recursive: true })
        await copyFile(this.components.distributions.blobPath(artifact.sha256), file)
      }
      await mkdir(temp, { recursive: true })
      await rename(temp, dir)
    } catch (err) {
      await rm(temp, { recursive: true, force: true })
      // Another install of the same version won the rename: its folder has the same content.
      if (!(await exists(dir))) throw err
    }
    return dir
  }

  private supervise(spec: ComponentSpec): ComponentProcess {
    const log = this.logs.get(spec.name)!
    const proc = new ComponentProcess(
      spec,
      this.init.config,
      log,
      {
        spawned: (_name, pid) => this.trackPid(pid, true),
        exited: (_name, pid) => this.trackPid(pid, false),
      },
      this.log,
    )
    proc.events.on('component:state', (status) => {
      // A component that fails after the switch was committed fails the node's rollout too.
      if (status.state === 'failed' && this.phase === 'done' && this.running === spec.distribution)
        this.setPhase('failed', `${status.name} failed: ${status.error ?? 'crashed'}`)
      else this.publishSoon()
    })
    this.processes.set(spec.name, proc)
    return proc
  }

  /** A hard requirement holds the start until the service is ready somewhere in the cluster. */
  private async startWhenRequirementsMet(proc: ComponentProcess): Promise<void> {
    const hard = proc.spec.descriptor.requires.filter((r) => r.hard).map((r) => r.service)
    let noted = false
    while (this.started && this.processes.get(proc.name) === proc) {
      const missing = hard.filter((s) => this.services(s).length === 0)
      if (missing.length === 0) {
        if (!this.held.has(proc.name) && !this.shuttingDown) proc.start()
        return
      }
      if (!noted) {
        this.logs
          .get(proc.name)
          ?.write(`[shoal] ${proc.name} waits for ${missing.join(', ')} (hard requirement)\n`)
        noted = true
      }
      await sleep(250, undefined, { signal: this.abort.signal }).catch(() => {})
    }
  }

  /**
   * Waits until every component named is ready or failed, or until the cluster no
   * longer wants `to` here (an abort or a rollback): then it returns false at once.
   */
  private async settled(names: string[], to: string): Promise<boolean> {
    const done = () =>
      names.every((n) => {
        const state = this.processes.get(n)?.status().state
        return state == null || state === 'ready' || state === 'failed' || this.held.has(n)
      })
    const stillWanted = () => (this.components.desired.current()?.distribution ?? to) === to
    while (this.started && !done()) {
      if (!stillWanted()) return false
      await sleep(50, undefined, { signal: this.abort.signal }).catch(() => {})
    }
    return true
  }

  // --- metadata ------------------------------------------------------------------------

  private setPhase(phase: RuntimePhase, error: string | null): void {
    this.phase = phase
    this.error = error
    this.publishSoon()
  }

  /** Member metadata follows component states, coalesced so a burst of changes is one update. */
  private publishSoon(): void {
    this.events.emit('runtime:changed', this.status())
    if (this.publishTimer != null) return
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined
      this.publishNow().catch((err: unknown) =>
        this.log.warn('could not publish component states', { error: messageOf(err) }),
      )
    }, METADATA_DEBOUNCE_MS)
  }

  /**
   * Announces the component states at once (a drain must reach the load balancers
   * before the stop); `urgent` also skips the coalescing of pushes to watchers.
   */
  private async publishNow(options: { urgent?: boolean } = {}): Promise<void> {
    clearTimeout(this.publishTimer)
    this.publishTimer = undefined
    const status = this.status()
    const condemned = this.condemned
    const components = status.components.map((c) => ({
      name: c.name,
      version: c.version,
      // Only the second instance of a make-before-break switch says which it is.
      ...(c.instance === 0 ? {} : { instance: c.instance }),
      state: c.state,
      // Why a component failed travels with it, so the manager can keep the reason in the rollout.
      ...(c.state === 'failed' && c.error != null ? { error: c.error.slice(0, COMPONENT_ERROR_CHARS) } : {}),
      endpoint: c.endpoint,
      provides: c.provides,
      weight: condemned.includes(c.distribution) ? 0 : (this.weights.get(c.name) ?? DEFAULT_WEIGHT),
    }))
    const announced: Partial<RuntimeAnnouncement> = {
      distribution: status.active,
      components,
      runtime: {
        target: status.target,
        phase: status.phase,
        error: status.error?.slice(0, RUNTIME_ERROR_CHARS) ?? null,
      },
      osgi: this.osgiAnnouncement(),
      ready: components.every((c) => c.state === 'ready'),
    }
    await this.components.membership.updateMetadata(announced, options)
  }

  /** The OSGi framework's bundles and services, without service properties when they would not fit the key's budget. */
  private osgiAnnouncement(): RuntimeAnnouncement['osgi'] {
    return fitOsgiAnnouncement(this.osgi.metadata())
  }

  // --- draining ------------------------------------------------------------------------

  /**
   * Takes components out of rotation before they stop: marks them `draining` in
   * member metadata, waits until every load balancer serving one of their
   * services says it has nothing in flight to them (or the drain timeout), then
   * stops them. Load balancers learn of the drain before the process stops.
   */
  private async drainAndStop(procs: ComponentProcess[]): Promise<void> {
    const serving = procs.filter((p) => p.status().endpoint != null && p.markDraining())
    if (serving.length > 0) {
      await this.publishNow({ urgent: true }).catch(() => {})
      await this.waitDrained(serving)
    }
    await Promise.all(procs.map((p) => p.stop()))
  }

  /** The drain handshake for bundle components (instance 0: a bundle runs once per node). */
  private async waitDrainedKeys(
    names: readonly string[],
    descriptors: ReadonlyMap<string, ComponentDescriptor>,
  ): Promise<void> {
    const self = this.components.membership.id
    const deadline = Date.now() + this.init.config.drainTimeoutMs
    const pending = () =>
      names.filter(
        (n) => !this.components.drainConfirmed(instanceKey(self, n, 0), descriptors.get(n)?.provides ?? [n]),
      )
    while (pending().length > 0 && Date.now() < deadline && !this.abort.signal.aborted)
      await sleep(20, undefined, { signal: this.abort.signal }).catch(() => {})
    if (pending().length > 0)
      this.log.warn('bundle drain timed out; updating anyway', {
        components: pending(),
        timeoutMs: this.init.config.drainTimeoutMs,
      })
  }

  private async waitDrained(procs: ComponentProcess[]): Promise<void> {
    const self = this.components.membership.id
    const deadline = Date.now() + this.init.config.drainTimeoutMs
    const pending = () =>
      procs.filter((p) => {
        // One that has exited (signalled with the whole service, say) has nothing in flight.
        if (p.status().pid == null) return false
        return !this.components.drainConfirmed(
          instanceKey(self, p.name, p.spec.instance),
          p.spec.descriptor.provides,
        )
      })
    let waiting = pending()
    while (waiting.length > 0 && Date.now() < deadline && !this.abort.signal.aborted) {
      await sleep(20, undefined, { signal: this.abort.signal }).catch(() => {})
      waiting = pending()
    }
    if (waiting.length > 0)
      this.log.warn('drain timed out; stopping anyway', {
        components: waiting.map((p) => p.name),
        timeoutMs: this.init.config.drainTimeoutMs,
      })
  }

  /** The agent begins to stop: components that exit from now on are not restarted. */
  beginShutdown(): void {
    this.shuttingDown = true
    for (const proc of [...this.retiring, ...this.processes.values()]) proc.expectExit()
  }

  /**
   * SIGKILLs the process group of every component process, for an exit that cannot
   * wait for the graceful stop (a stop forced by the operator): nothing is drained,
   * but nothing outlives the agent either.
   */
  killAll(): void {
    const pids = new Set(this.status().components.map((c) => c.pid))
    for (const pid of pids) {
      if (pid == null) continue
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
  }

  /** Drains and stops every component, for a graceful agent stop (before it leaves the cluster). */
  async drainAll(): Promise<void> {
    if (!this.started) return
    await this.drainAndStop([...this.retiring, ...this.processes.values()])
  }

  /**
   * Takes the previous version's processes out of rotation and stops them (end of a
   * switch). One whose successor failed keeps serving until the next switch: a bad
   * release must not take the node out of rotation while it is rolled back.
   */
  private async retire(): Promise<void> {
    const kept = this.retiring.filter((p) => this.processes.get(p.name)?.status().state === 'failed')
    const leaving = this.retiring.filter((p) => !kept.includes(p))
    if (kept.length > 0)
      this.log.warn('keeping the previous version of failed components serving until the next switch', {
        components: kept.map((p) => `${p.name}@${p.spec.version}`),
      })
    if (leaving.length === 0) return
    await this.drainAndStop(leaving)
    this.retiring.splice(0, this.retiring.length, ...this.retiring.filter((p) => !leaving.includes(p)))
    this.publishSoon()
  }

  // --- crash safety ----------------------------------------------------------------------

  private async reapOrphans(): Promise<void> {
    const recorded = JSON.parse((await this.components.db.get('pids')) ?? '[]') as number[]
    const orphans = await findOrphans(this.init.dataDir, recorded)
    if (orphans.length > 0) {
      this.log.warn('stopping component processes left by an earlier run', { pids: orphans })
      await reap(orphans, 5000)
    }
    await this.components.db.put('pids', '[]')
  }

  /**
   * Temp folders of unpacks and config copies that an earlier run was killed in
   * the middle of. They were never renamed into place, so nothing uses them, and
   * no later install would ever touch them again (each gets a fresh temp name).
   */
  private async removeUnfinishedInstalls(): Promise<void> {
    const list = (dir: string) => readdir(dir).catch(() => [] as string[])
    const left: string[] = []
    for (const component of await list(this.componentsDir))
      for (const name of await list(join(this.componentsDir, component)))
        if (UNPACK_TEMP.test(name)) left.push(join(this.componentsDir, component, name))
    const configs = join(this.init.dataDir, 'configs')
    for (const name of await list(configs)) if (CONFIG_TEMP.test(name)) left.push(join(configs, name))
    if (left.length === 0) return
    this.log.warn('removing unfinished installs left by an earlier run', { folders: left })
    for (const folder of left) await rm(folder, { recursive: true, force: true })
  }

  private trackPid(pid: number, alive: boolean): void {
    if (alive) this.pids.add(pid)
    else this.pids.delete(pid)
    this.components.db.put('pids', JSON.stringify([...this.pids])).catch(() => {})
  }

  private async readIntent(): Promise<Intent | null> {
    const raw = await this.components.db.get('intent')
    return raw == null ? null : (JSON.parse(raw) as Intent)
  }

  // --- helpers ---------------------------------------------------------------------------

  private processOf(name: string): ComponentProcess {
    const proc = this.processes.get(name)
    if (proc == null) throw new NotFoundError(`no component "${name}" on this node`)
    return proc
  }

  private async logFile(name: string, create: boolean): Promise<LogFile> {
    let file = this.logs.get(name)
    if (file != null) return file
    const path = join(this.logsDir, `${safe(name)}.log`)
    if (!create && !(await exists(path)))
      throw new NotFoundError(`no component "${name}" has run on this node`)
    file = new LogFile(path, this.init.config.logMaxBytes, this.init.config.logKeep, this.log)
    this.logs.set(name, file)
    await file.open()
    return file
  }

  private get componentsDir(): string {
    return join(this.init.dataDir, 'components')
  }

  private get logsDir(): string {
    return join(this.init.dataDir, 'logs')
  }
}

/** An error as operators see it in status and rollouts: its code first, when it has one. */
function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('ERR_') ? `${code}: ${messageOf(err)}` : messageOf(err)
}

function versionOf(descriptor: ComponentDescriptor, manifest: ManifestLike): string {
  return descriptor.version ?? manifest.version
}

/** A name safe as one path segment. */
function safe(name: string): string {
  return name.replace(/[^A-Za-z0-9._@-]/g, '_')
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * The distribution's configuration with each HTTP bundle's host and port added to
 * its PID's properties under `osgi` (what Configuration Admin delivers to it).
 */
function withHttpConfig(config: unknown, http: ReadonlyMap<string, Record<string, unknown>>): unknown {
  if (http.size === 0) return config
  const base = config != null && typeof config === 'object' ? (config as Record<string, unknown>) : {}
  const osgi =
    base.osgi != null && typeof base.osgi === 'object' ? (base.osgi as Record<string, unknown>) : {}
  const merged: Record<string, unknown> = { ...osgi }
  for (const [pid, props] of http) {
    const own = merged[pid] != null && typeof merged[pid] === 'object' ? (merged[pid] as object) : {}
    merged[pid] = { ...own, ...props }
  }
  return { ...base, osgi: merged }
}
