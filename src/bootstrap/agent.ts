import { randomBytes } from 'node:crypto'
import { chmod, mkdir, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConnectionGater } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import {
  type ApiBackend,
  ApiServer,
  type ArtifactsApi,
  type Caller,
  countStates,
  loadTokens,
  type MemberView,
  memberView,
  type NodesApi,
  type RuntimeApi,
  type StatusView,
  type TokenTable,
  type UnpublishedView,
} from '../api/index.js'
import {
  type Artifacts,
  checkDistribution,
  openArtifacts,
  UnknownDistributionError,
} from '../artifacts/index.js'
import { drainConfirmed } from '../loadbalancer/index.js'
import {
  type ClusterState,
  ClusterStateStore,
  Manager,
  type ManagerCommand,
  type ManagerStatus,
  type RolloutView,
  rolloutView,
  runsHere,
  targetOf,
} from '../manager/index.js'
import { createMembership, type Member, type Membership } from '../membership/index.js'
import { AgentMetrics } from '../metrics/index.js'
import {
  discoverOnEc2,
  LaunchRecords,
  LocalProvider,
  loadProviders,
  NodeOperations,
  type Provider,
  type ProvidersAnnouncement,
} from '../providers/index.js'
import { componentsOf, Runtime, type RuntimeStatus, runtimeAnnouncement } from '../runtime/index.js'
import {
  createLogger,
  decodeJson,
  encodeJson,
  exchange,
  type Logger,
  portInUse,
  presetTimers,
  ShoalError,
  serve,
  VERSION,
  writeFileAtomic,
} from '../shared/index.js'
import { AgentState } from './agent-state.js'
import { MEMBER_METADATA } from './announcements.js'
import { type AgentConfig, type AgentOptions, resolveAgentConfig } from './config.js'
import { RUN_FILE, STATE_DIR } from './constants.js'
import { loadOrCreatePeerKey } from './identity.js'
import { createNode, type ShoalLibp2p } from './libp2p-node.js'
import { clusterCredential, readSecret } from './secret.js'
import { startWarnings } from './start-warnings.js'
import type { WireTraffic } from './wire-meter.js'

/** How long a rollout waits for a version this agent has not heard of yet. */
const ROLLOUT_LEARN_WAIT_MS = 5000

/** What `<data>/agent.json` says while an agent runs, for tools that look for it. */
export interface RunInfo {
  pid: number
  id: string
  cluster: string
  api: string
  addrs: string[]
  startedAt: string
}

export interface StopOptions {
  /** Announce a graceful leave first (default true). False behaves like a crash as peers see it. */
  leave?: boolean
}

/**
 * One Shoal agent: durable state, identity, libp2p node, membership and the
 * admin API, started in that order and stopped in reverse.
 */
const retireRequest = z.strictObject({ op: z.literal('retire') })

/** How long a forwarded command's answer waits for the state that holds it to reach this agent. */
const COMMAND_VISIBLE_WAIT_MS = 3000

export interface AgentHooks {
  /** Decides which peers may connect; tests use it to split a cluster in one process. */
  connectionGater?: ConnectionGater
}

export class Agent implements ApiBackend {
  private api: ApiServer | undefined
  private stopping: Promise<void> | undefined
  private readonly startedAt = Date.now()
  /** What `GET /metrics` shows: read from the subsystems at scrape time. */
  private readonly exporter: AgentMetrics

  private constructor(
    readonly config: AgentConfig,
    readonly node: ShoalLibp2p,
    readonly membership: Membership,
    readonly artifacts: Artifacts,
    readonly clusterState: ClusterStateStore,
    readonly manager: Manager,
    readonly runtime: Runtime,
    private readonly state: AgentState,
    private readonly traffic: WireTraffic,
    private readonly log: Logger,
  ) {
    this.retired = new Promise((resolve) => {
      this.markRetired = resolve
    })
    this.exporter = new AgentMetrics({
      info: { id: node.peerId.toString(), cluster: config.cluster, version: VERSION },
      members: () => membership.members(),
      membership: () => membership.stats(),
      wire: () => traffic,
      transfer: () => artifacts.distributor.stats(),
      transferLimits: config.artifacts,
      distributions: () => this.distributionCounts(),
      runtime: () => runtime.status(),
      manager: () => manager.status(),
      clusterState: () => clusterState.current(),
    })
  }

  /** `shoal node add|copy|remove` carried out by this agent (set once at start). */
  nodeOps!: NodeOperations

  /** `hooks` are what plain-data options cannot carry: code that tests put in (a connection gater). */
  static async start(options: AgentOptions, logger?: Logger, hooks: AgentHooks = {}): Promise<Agent> {
    const config = resolveAgentConfig(options)
    const log = logger ?? createLogger({ level: config.logLevel })
    // Read before anything starts: a bad tokens file stops the agent at once.
    const tokens =
      config.tokensFile == null ? null : await loadTokens(config.tokensFile, { warn: (m) => log.warn(m) })
    // Components read the API (service discovery) with a token of their own, made at each start.
    const componentToken = tokens == null ? null : randomBytes(24).toString('hex')
    if (componentToken != null) tokens?.add(componentToken, { name: 'components', role: 'viewer' })
    // Operator mistakes are found before anything starts: a bad secret file before the data
    // folder is made, the folder held by another agent, then an API port in use (ApiServer
    // says the same should it be taken later).
    const secret = config.secretFile == null ? null : await readSecret(config.secretFile)
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
    // State, blobs, components and logs are this agent's alone (like PostgreSQL's data directory).
    const { mode } = await stat(config.dataDir)
    if ((mode & 0o077) !== 0) await chmod(config.dataDir, 0o700)
    const state = new AgentState(join(config.dataDir, STATE_DIR), config.dataDir)
    await state.open()
    const undo: Array<() => Promise<void>> = [() => state.close()]
    try {
      await requireFreeApiPort(config.api)
      const privateKey = await loadOrCreatePeerKey(config.dataDir)
      const traffic: WireTraffic = { sentBytes: 0, receivedBytes: 0 }
      const node = await createNode(
        {
          cluster: config.cluster,
          privateKey,
          listen: config.listen,
          bootstrap: config.bootstrap,
          secret,
          mdns: config.mdns,
          mdnsIntervalMs: presetTimers(config.preset).mdns.intervalMs,
          traffic,
          version: VERSION,
          ...(hooks.connectionGater == null ? {} : { connectionGater: hooks.connectionGater }),
        },
        log.child('libp2p'),
      )
      await node.start()
      undo.unshift(async () => node.stop())
      const discovered =
        config.discoverEc2 == null ? [] : await discoverOnEc2(config.discoverEc2, config.cluster, log)
      const membership = createMembership(
        {
          cluster: config.cluster,
          timers: config.timers,
          bootstrap: [...config.bootstrap, ...discovered],
          contract: MEMBER_METADATA,
        },
        { network: node, store: state.incarnations(), logger: log },
      )
      await membership.start()
      undo.unshift(() => membership.stop())
      const { provider, handle, roles, tags } = config.node
      if (provider != null || roles.length > 0 || Object.keys(tags).length > 0) {
        const launched: Partial<ProvidersAnnouncement> = provider == null ? {} : { provider, handle }
        await membership.updateMetadata({
          ...launched,
          ...(roles.length > 0 ? { roles } : {}),
          ...(Object.keys(tags).length > 0 ? { tags } : {}),
        })
      }
      // Bound once the cluster state exists: retention never drops a version in use.
      let inUse: () => Set<string> = () => new Set()
      const artifacts = await openArtifacts(
        {
          cluster: config.cluster,
          dataDir: config.dataDir,
          trust: config.trust,
          config: config.artifacts,
          protectedVersions: () => inUse(),
        },
        {
          network: node,
          membership,
          db: state.sublevel('blobs'),
          catalogueDb: state.sublevel('distributions'),
          logger: log,
        },
      )
      undo.unshift(() => artifacts.close())
      const clusterState = new ClusterStateStore({
        cluster: config.cluster,
        membership,
        network: node,
        privateKey,
        db: state.sublevel('cluster'),
        logger: log,
      })
      await clusterState.start()
      undo.unshift(() => clusterState.stop())
      const manager = createManager(config, membership, node, artifacts, clusterState, state, log)
      let apiUrl = ''
      const runtime = createRuntime(
        config,
        membership,
        artifacts,
        clusterState,
        state,
        { url: () => apiUrl, token: componentToken },
        log,
      )
      inUse = () => versionsInUse(clusterState.current(), membership.members(), runtime.status())
      undo.unshift(() => runtime.stop())
      // Versions the cluster unpublished (`shoal unpublish`): dropped here too, now and as the state changes.
      const withdraw = (state: ClusterState) =>
        artifacts.distributor
          .withdraw((state.unpublished ?? []).map((u) => u.id))
          .catch((err: unknown) => log.warn('dropping unpublished versions failed', { error: String(err) }))
      await withdraw(clusterState.current())
      clusterState.events.on('state:changed', (state) => void withdraw(state))
      await artifacts.distributor.start()
      const agent = new Agent(
        config,
        node,
        membership,
        artifacts,
        clusterState,
        manager,
        runtime,
        state,
        traffic,
        log,
      )
      const records = new LaunchRecords(state.sublevel('providers'))
      await records.open()
      agent.nodeOps = await createNodeOperations(agent, records, log)
      await agent.serveRetire()
      await agent.startApi(tokens, secret == null ? null : clusterCredential(secret, 'lb-admin'))
      apiUrl = agent.localApiUrl
      await runtime.start()
      await manager.start()
      undo.unshift(() => manager.stop())
      if (secret == null) {
        log.warn(
          `cluster "${config.cluster}" is OPEN: no --secret-file was given, so any node that can reach this one may join it. ` +
            'Create a secret with "shoal secret new FILE" and pass --secret-file FILE to every agent.',
        )
      }
      for (const warning of startWarnings(config)) log.warn(warning)
      agent.exporter.start()
      return agent
    } catch (err) {
      for (const step of undo) await step().catch(() => {})
      throw err
    }
  }

  get id(): string {
    return this.node.peerId.toString()
  }

  /** The admin API's base URL. */
  get apiUrl(): string {
    const { host, port } = this.api!.address()
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  }

  /** The API as a process on this host reaches it (loopback when it listens on every interface). */
  get localApiUrl(): string {
    const { host, port } = this.api!.address()
    const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
    return `http://${local.includes(':') ? `[${local}]` : local}:${port}`
  }

  /**
   * Stops the agent (safe to call twice and concurrently: every call gets the
   * first call's promise, whatever its options).
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.leave ?? true)
    return this.stopping
  }

  /**
   * SIGKILLs the process group of every component process this agent runs, for
   * an exit that cannot wait for the graceful stop (a stop forced by the
   * operator): nothing is drained, but nothing outlives the agent either.
   */
  killComponents(): void {
    const pids = new Set(this.runtime.status().components.map((c) => c.pid))
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

  status(): StatusView {
    const self = this.membership.self
    return {
      id: self.id,
      cluster: this.config.cluster,
      addrs: self.addrs,
      state: self.state,
      incarnation: self.incarnation,
      manager: this.manager.status().manager,
      managerStatus: this.managerStatus(),
      open: this.config.secretFile == null,
      members: countStates(this.membership.members()),
      distribution: this.runtime.status().active,
      runtime: this.runtime.status(),
      rollouts: this.rollouts().filter(
        (r) => !['done', 'failed', 'rolled-back', 'aborted', 'superseded'].includes(r.state),
      ),
      health: this.membership.stats().health,
      distributions: this.distributionCounts(),
      transfer: this.artifacts.distributor.stats(),
      traffic: { ...this.traffic },
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      version: VERSION,
      config: this.config,
    }
  }

  /** The agent's metrics in Prometheus' text format (`GET /metrics`; docs/metrics.md). */
  metrics(): Promise<string> {
    return this.exporter.render()
  }

  /** Distributions this agent knows, and how many of them it holds whole. */
  private distributionCounts(): { known: number; complete: number } {
    const entries = this.artifacts.catalogue.list()
    return {
      known: entries.length,
      complete: entries.filter((e) => this.artifacts.distributor.isComplete(e.id)).length,
    }
  }

  members(): MemberView[] {
    const manager = this.manager.status().manager
    return this.membership.members().map((m) => memberView(m, manager))
  }

  get distributions(): ArtifactsApi {
    const { store, distributor } = this.artifacts
    return {
      blob: (sha256) => {
        const size = store.sizeOf(sha256)
        return size == null ? null : { sha256, size }
      },
      ingestBlob: (body, sha256) => store.ingest(body, sha256),
      // The distributor applies the distribution rules: a typo is refused here, not at rollout.
      publish: (body) => distributor.publish(body),
      list: () => distributor.list(),
      // Each version with the rollouts and rollbacks that moved the cluster to it: the audit trail.
      history: (name) => {
        const trail = this.clusterState.current().rollouts
        return distributor.history(name).map((view) => ({
          ...view,
          rollouts: trail
            .filter((r) => r.distribution === view.id)
            .map((r) => ({
              id: r.id,
              kind: r.kind,
              from: r.from,
              strategy: r.strategy,
              state: r.state,
              reason: r.reason,
              requestedBy: r.requestedBy,
              requestedAt: r.requestedAt,
              finishedAt: r.finishedAt,
              actions: r.actions ?? [],
              failures: r.failures ?? {},
            })),
        }))
      },
      detail: (id) => distributor.detail(id),
      verify: () => store.verifyAll(),
      unpublish: (id, caller) => this.unpublish(id, caller),
    }
  }

  /**
   * `shoal unpublish`: the manager records the version as unpublished (or refuses one in
   * use); answered once this agent has dropped it too, so a client's next GET here agrees.
   */
  async unpublish(id: string, caller?: Caller | null): Promise<UnpublishedView> {
    const requestedBy = caller == null ? this.id : `${caller.name} (${caller.role})`
    const { result, entry } = await this.manager.unpublish({ id, requestedBy })
    const deadline = Date.now() + COMMAND_VISIBLE_WAIT_MS
    while (this.artifacts.catalogue.get(id) != null && Date.now() < deadline) await sleep(20)
    const at = id.indexOf('@')
    return { result, id, name: id.slice(0, at), version: id.slice(at + 1), by: entry.by, at: entry.at }
  }

  get nodesApi(): NodesApi {
    const ops = this.nodeOps
    return {
      nodes: () => ops.nodes(),
      add: (body) => ops.add(body.count, body),
      copy: (id) => ops.add(1, { like: id, kind: 'copy' }),
      remove: (id, force) => ops.remove(id, force),
      operation: (id) => ops.get(id),
    }
  }

  get runtimeApi(): RuntimeApi {
    const { runtime, membership } = this
    return {
      status: () => runtime.status(),
      logTail: (name, lines) => runtime.logTail(name, lines),
      followLog: (name, listener) => runtime.followLog(name, listener),
      stopComponent: (name) => runtime.stopComponent(name),
      startComponent: (name) => runtime.startComponent(name),
      setWeight: (name, weight) => runtime.setWeight(name, weight),
      services: (name) => runtime.services(name),
      onChange: (listener) => {
        const offs = [
          runtime.events.on('runtime:changed', listener),
          ...(['member:join', 'member:update', 'member:dead', 'member:leave', 'member:reap'] as const).map(
            (event) => membership.events.on(event, listener),
          ),
        ]
        return () => {
          for (const off of offs) off()
        }
      },
      startRollout: (body, caller) => this.startRollout(body, caller),
      rollouts: () => this.rollouts(),
      command: (command, caller) => this.managerCommand(command, caller),
      manager: () => this.managerStatus(),
    }
  }

  /** Rollouts and rollbacks, newest first (the audit trail), with what members report. */
  rollouts(): RolloutView[] {
    const members = this.membership.members()
    return this.clusterState.current().rollouts.map((record) => rolloutView(record, members))
  }

  /** The election as this node sees it, and the state it follows. */
  managerStatus(): ManagerStatus & {
    stateTerm: number
    stateSeq: number
    placement: Record<string, string[]>
    unplaced: string[]
    notReadyAnywhere: string[]
  } {
    const state = this.clusterState.current()
    return {
      ...this.manager.status(),
      stateTerm: state.term,
      stateSeq: state.seq,
      placement: state.placement,
      unplaced: state.unplaced,
      notReadyAnywhere: this.notReadyAnywhere(state.placementFrom ?? state.defaultTarget),
    }
  }

  /** Components of `id` that no alive member reports ready: placed, but serving nowhere. */
  private notReadyAnywhere(id: string | null): string[] {
    const manifest = id == null ? undefined : this.artifacts.catalogue.get(id)?.signed.manifest
    if (manifest == null) return []
    let names: string[]
    try {
      names = [...componentsOf(manifest.artifacts).keys()]
    } catch {
      return []
    }
    const ready = new Set<string>()
    for (const m of this.membership.members()) {
      if (m.state !== 'alive') continue
      for (const c of runtimeAnnouncement.of(m).components ?? []) if (c.state === 'ready') ready.add(c.name)
    }
    return names.filter((n) => !ready.has(n)).sort()
  }

  /**
   * Starts a rollout through the manager (wherever it runs). The version's
   * components must be valid where this agent can tell, so a typo fails now.
   */
  async startRollout(body: unknown, caller?: Caller | null): Promise<RolloutView> {
    const input = (body ?? {}) as Record<string, unknown>
    const distribution = input.distribution
    if (typeof distribution !== 'string' || !distribution.includes('@'))
      throw new ShoalError(
        'ERR_BAD_REQUEST',
        'give the version to roll out as "distribution": "NAME@VERSION"',
        400,
      )
    // A version published through another agent a moment ago may still be on its way here.
    const deadline = Date.now() + ROLLOUT_LEARN_WAIT_MS
    while (this.artifacts.catalogue.get(distribution) == null && Date.now() < deadline) await sleep(100)
    const entry = this.artifacts.catalogue.get(distribution)
    if (entry == null) throw new UnknownDistributionError(distribution)
    // Published before the agents checked the rules at publish time, or by an older agent.
    checkDistribution(entry.signed.manifest)
    return this.managerCommand({ ...input, op: 'rollout', distribution } as ManagerCommand, caller)
  }

  /**
   * rollout, rollback, approve, pause, resume, abort: carried out by the manager.
   * Requested by the token's holder ("alice (admin)") when there is one, else by this agent.
   */
  async managerCommand(command: ManagerCommand, caller?: Caller | null): Promise<RolloutView> {
    let record: Awaited<ReturnType<Manager['command']>>
    const requestedBy = caller == null ? this.id : `${caller.name} (${caller.role})`
    try {
      record = await this.manager.command({ ...command, requestedBy } as ManagerCommand)
    } catch (err) {
      if (err instanceof Error && err.name === 'ZodError')
        throw new ShoalError(
          'ERR_BAD_REQUEST',
          `bad command: ${(err as { issues?: Array<{ message: string; path: unknown[] }> }).issues?.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
          400,
        )
      throw err
    }
    // Read-your-writes: the answer came from the manager; wait (briefly) until
    // this agent holds the state with it, so a client's next GET here finds it.
    const deadline = Date.now() + COMMAND_VISIBLE_WAIT_MS
    const seen = () => this.clusterState.current().rollouts.some((r) => r.id === record.id)
    while (!seen() && Date.now() < deadline) await sleep(20)
    return rolloutView(record, this.membership.members())
  }

  /** Bytes moved over all connections so far. */
  wireTraffic(): WireTraffic {
    return { ...this.traffic }
  }

  /** Resolves once another agent asked this one to retire (`shoal node remove`) and it has stopped. */
  readonly retired: Promise<void>
  private markRetired: () => void = () => {}

  /** `/shoal/<cluster>/node/1.0.0 {"op":"retire"}`: acknowledge, then drain, leave and stop. */
  async serveRetire(): Promise<void> {
    await serve(
      this.node,
      `/shoal/${this.config.cluster}/node/1.0.0`,
      { timeoutMs: 5000, maxBytes: 1024 },
      this.log,
      async (ch, connection) => {
        decodeJson(retireRequest, await ch.read(), 'node request')
        await ch.write(encodeJson({ ok: true }))
        this.log.info('asked to retire: draining, leaving and stopping', {
          by: connection.remotePeer.toString(),
        })
        setTimeout(() => {
          void this.stop({ leave: true }).finally(() => this.markRetired())
        }, 0)
      },
    )
  }

  /** Asks a member to retire (drain, leave, stop) and waits for its acknowledgement. */
  async retire(id: string): Promise<void> {
    await exchange(
      this.node,
      peerIdFromString(id),
      `/shoal/${this.config.cluster}/node/1.0.0`,
      { timeoutMs: 10_000, maxBytes: 1024 },
      async (ch) => {
        await ch.write(encodeJson({ op: 'retire' }))
        await ch.read()
      },
    )
  }

  private async startApi(tokens: TokenTable | null, lbCredential: string | null): Promise<void> {
    this.api = new ApiServer({ ...this.config.api, tokens, lbCredential }, this, this.log)
    try {
      await this.api.start()
    } catch (err) {
      await this.shutdown(false)
      throw err
    }
    const info: RunInfo = {
      pid: process.pid,
      id: this.id,
      cluster: this.config.cluster,
      api: this.apiUrl,
      addrs: this.membership.self.addrs,
      startedAt: new Date(this.startedAt).toISOString(),
    }
    await writeFileAtomic(join(this.config.dataDir, RUN_FILE), `${JSON.stringify(info, null, 2)}\n`)
    this.log.info('agent started', {
      id: this.id,
      cluster: this.config.cluster,
      api: this.apiUrl,
      addrs: info.addrs,
    })
    if (tokens == null)
      this.log.warn(
        `the admin API at ${this.apiUrl} is unauthenticated (loopback only); pass --tokens FILE to require API tokens`,
      )
  }

  private async shutdown(leave: boolean): Promise<void> {
    // From now on a component that exits (signalled with the whole service) stays stopped.
    this.runtime.beginShutdown()
    const steps: Array<[string, () => Promise<void>]> = [
      // Drained while still a member, so the load balancers hear of it before the processes stop.
      ['node operations', async () => this.nodeOps?.stop()],
      // A leaving manager stops deciding first; the others elect a new one once it has left.
      ['manager', () => this.manager.stop()],
      ['drain', () => (leave ? this.runtime.drainAll() : Promise.resolve())],
      ['leave', () => (leave ? this.membership.leave() : Promise.resolve())],
      ['runtime', () => this.runtime.stop()],
      ['cluster state', () => this.clusterState.stop()],
      ['artifacts', () => this.artifacts.close()],
      ['membership', () => this.membership.stop()],
      ['metrics', async () => this.exporter.stop()],
      ['api', () => this.api?.stop() ?? Promise.resolve()],
      ['libp2p', async () => this.node.stop()],
      ['state', () => this.state.close()],
      ['run file', () => rm(join(this.config.dataDir, RUN_FILE), { force: true })],
    ]
    for (const [name, step] of steps) {
      await step().catch((err: unknown) => this.log.warn(`stopping ${name} failed`, { error: String(err) }))
    }
    this.log.info('agent stopped', { id: this.id, left: leave })
  }
}

/** Throws ERR_API_ADDRESS_IN_USE when something already listens on the API's fixed port. */
async function requireFreeApiPort({ host, port }: { host: string; port: number }): Promise<void> {
  if (port !== 0 && (await portInUse(host, port)))
    throw new ShoalError(
      'ERR_API_ADDRESS_IN_USE',
      `API address ${host}:${port} is in use; pass another --api`,
      409,
    )
}

/** Components listen where libp2p listens; peers reach them on the advertised host. */
function componentHosts(config: AgentConfig, addrs: string[]): { bindHost: string; advertiseHost: string } {
  const ipOf = (addr: string) => /^\/ip[46]\/([^/]+)/.exec(addr)?.[1]
  const bindHost = ipOf(config.listen[0] ?? '') ?? '127.0.0.1'
  const wildcard = bindHost === '0.0.0.0' || bindHost === '::'
  const reachable = addrs.map(ipOf).find((ip) => ip != null && ip !== '127.0.0.1' && ip !== '::1')
  const advertiseHost = config.advertiseHost ?? (wildcard ? (reachable ?? '127.0.0.1') : bindHost)
  return { bindHost, advertiseHost }
}

function createRuntime(
  config: AgentConfig,
  membership: Membership,
  artifacts: Artifacts,
  clusterState: ClusterStateStore,
  state: AgentState,
  api: { url: () => string; token: string | null },
  log: Logger,
): Runtime {
  const { catalogue, distributor, store } = artifacts
  return new Runtime(
    {
      cluster: config.cluster,
      dataDir: config.dataDir,
      ...componentHosts(config, membership.self.addrs),
      apiUrl: api.url,
      apiToken: api.token,
      config: config.runtime,
    },
    {
      membership,
      drainConfirmed: (key, services) => drainConfirmed(membership.members(), key, services),
      distributions: {
        manifest: (id) => catalogue.get(id)?.signed.manifest,
        isComplete: (id) => distributor.isComplete(id),
        blobPath: (sha256) => store.pathOf(sha256),
        onComplete: (listener) => distributor.events.on('distribution:complete', ({ id }) => listener(id)),
      },
      desired: {
        current: () => {
          const state = clusterState.current()
          const target = targetOf(state, membership.id)
          if (target == null) return null
          // A node still pending in the running rollout unpacks its version ahead of its turn.
          const latest = state.rollouts[0]
          const prepare =
            latest != null &&
            ['running', 'waiting-approval', 'paused'].includes(latest.state) &&
            latest.progress[membership.id] === 'pending'
              ? latest.distribution
              : null
          return {
            distribution: target,
            runs: (component) => runsHere(state, membership.id, component),
            prepare,
          }
        },
        onChange: (listener) => clusterState.events.on('state:changed', () => listener()),
      },
      db: state.sublevel('runtime'),
      logger: log,
    },
  )
}

function createManager(
  config: AgentConfig,
  membership: Membership,
  node: ShoalLibp2p,
  artifacts: Artifacts,
  clusterState: ClusterStateStore,
  state: AgentState,
  log: Logger,
): Manager {
  return new Manager(
    { cluster: config.cluster, ...presetTimers(config.preset).manager },
    {
      membership,
      network: node,
      store: clusterState,
      versions: {
        has: async (id) => artifacts.catalogue.get(id) != null,
        history: (name) => artifacts.catalogue.history(name).map((e) => e.id),
        layout: (id) => {
          const manifest = artifacts.catalogue.get(id)?.signed.manifest
          if (manifest == null) return null
          try {
            const components = componentsOf(manifest.artifacts)
            return {
              components: [...components.keys()],
              placement: manifest.placement,
              exclusive: [...components.values()].filter((d) => d.exclusive && d.http).map((d) => d.name),
            }
          } catch {
            return null // bad descriptors: the rollout of it fails on the nodes with the reason
          }
        },
      },
      db: state.sublevel('manager'),
      logger: log,
    },
  )
}

/**
 * Versions retention keeps whatever their age: what this node runs or moves to,
 * what any member runs, what the cluster wants, and both ends of the newest
 * rollouts (a rollback needs its target on the nodes).
 */
function versionsInUse(state: ClusterState, members: Member[], runtime: RuntimeStatus): Set<string> {
  const ids = new Set<string>()
  const add = (id: unknown) => {
    if (typeof id === 'string') ids.add(id)
  }
  add(runtime.active)
  add(runtime.target)
  for (const m of members) add(runtimeAnnouncement.of(m).distribution)
  add(state.defaultTarget)
  for (const id of Object.values(state.targets)) add(id)
  for (const r of state.rollouts.slice(0, 3)) {
    add(r.distribution)
    add(r.from)
  }
  return ids
}

async function createNodeOperations(
  agent: Agent,
  records: LaunchRecords,
  log: Logger,
): Promise<NodeOperations> {
  const { config, membership } = agent
  // New local nodes listen where this agent listens (loopback in tests, a LAN address otherwise).
  const listenIp = /^\/ip4\/([^/]+)/.exec(config.listen[0] ?? '')?.[1]
  const host = listenIp == null || listenIp === '0.0.0.0' ? (config.advertiseHost ?? '127.0.0.1') : listenIp
  const local = new LocalProvider(
    {
      dataRoot: join(dirname(config.dataDir), 'nodes'),
      host,
      launchedBy: agent.id,
      startTimeoutMs: 30_000,
      stopTimeoutMs: 30_000,
    },
    log.child('local-provider'),
  )
  const configured =
    config.providersFile == null
      ? { providers: [], defaultProvider: local.name }
      : await loadProviders(config.providersFile, agent.id, log, { dataDir: config.dataDir })
  const providers = new Map<string, Provider>([[local.name, local]])
  for (const provider of configured.providers) providers.set(provider.name, provider)
  return new NodeOperations(
    {
      self: agent.id,
      baseSpec: {
        cluster: config.cluster,
        secretFile: config.secretFile,
        trust: config.trust,
        preset: config.preset,
        mdns: config.mdns,
        tokensFile: config.tokensFile,
      },
      defaultProvider: configured.defaultProvider,
      readyTimeoutMs: 5 * 60_000,
      leaveTimeoutMs: 60_000,
    },
    {
      members: () => membership.members(),
      selfAddrs: () => membership.self.addrs,
      targetFor: (id) => targetOf(agent.clusterState.current(), id),
      providers,
      records,
      retire: (id) => agent.retire(id),
      logger: log,
    },
  )
}
