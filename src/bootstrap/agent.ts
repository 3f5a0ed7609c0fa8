import { randomBytes } from 'node:crypto'
import type { ConnectionGater } from '@libp2p/interface'
import { type AgentApi, ApiServer, loadTokens } from '../api/index.js'
import type { Artifacts } from '../artifacts/index.js'
import {
  ClusterStateStore,
  type Manager,
  publishedStateTrust,
  UnpublishedFollower,
} from '../manager/index.js'
import type { Membership } from '../membership/index.js'
import {
  discoverOnEc2,
  type NodeOperations,
  type ProvidersAnnouncement,
  Retirement,
} from '../providers/index.js'
import type { Runtime } from '../runtime/index.js'
import { createLogger, type Logger, StartList, startable } from '../shared/index.js'
import { type AgentConfig, type AgentOptions, resolveAgentConfig } from './config.js'
import type { ShoalLibp2p } from './libp2p-node.js'
import { ABORTED, leaveStep, type StopHow, startMember } from './member.js'
import { removeRunFile, writeRunFile } from './run-file.js'
import { clusterCredential } from './secret.js'
import { startWarnings } from './start-warnings.js'
import {
  createAgentApi,
  createArtifacts,
  createManager,
  createMetrics,
  createNodeOperations,
  createRuntime,
  httpUrl,
  requireFreeApiPort,
} from './subsystems.js'
import type { WireTraffic } from './wire-meter.js'

export interface StopOptions {
  /** Announce a graceful leave first (default true). False behaves like a crash as peers see it. */
  leave?: boolean
}

export interface AgentHooks {
  /** Decides which peers may connect; tests use it to split a cluster in one process. */
  connectionGater?: ConnectionGater
}

/** The subsystems of a started agent, and the list that stops them. */
interface AgentParts {
  config: AgentConfig
  node: ShoalLibp2p
  membership: Membership
  artifacts: Artifacts
  clusterState: ClusterStateStore
  manager: Manager
  runtime: Runtime
  nodeOps: NodeOperations
  api: AgentApi
  server: ApiServer
  retirement: Retirement
  traffic: WireTraffic
  list: StartList<StopHow>
  log: Logger
}

/**
 * One Shoal agent: its subsystems, built from the configuration and started in one
 * ordered list (`start`), stopped in reverse with the drain and the leave at their
 * place (`stop`). What each subsystem does is its own; this only wires them.
 */
export class Agent {
  readonly config: AgentConfig
  readonly node: ShoalLibp2p
  readonly membership: Membership
  readonly artifacts: Artifacts
  readonly clusterState: ClusterStateStore
  readonly manager: Manager
  readonly runtime: Runtime
  /** `shoal node add|copy|remove` carried out by this agent. */
  readonly nodeOps: NodeOperations
  /** What the API serves (its `ApiBackend`). */
  readonly api: AgentApi
  /** Resolves once another agent asked this one to retire (`shoal node remove`) and it has stopped. */
  readonly retired: Promise<void>
  private readonly server: ApiServer
  private readonly traffic: WireTraffic
  private readonly list: StartList<StopHow>
  private readonly log: Logger
  private stopping: Promise<void> | undefined

  private constructor(parts: AgentParts) {
    this.config = parts.config
    this.node = parts.node
    this.membership = parts.membership
    this.artifacts = parts.artifacts
    this.clusterState = parts.clusterState
    this.manager = parts.manager
    this.runtime = parts.runtime
    this.nodeOps = parts.nodeOps
    this.api = parts.api
    this.server = parts.server
    this.traffic = parts.traffic
    this.list = parts.list
    this.log = parts.log
    this.retired = parts.retirement.requested.then(() => this.stop({ leave: true }))
  }

  /**
   * Starts an agent. The order, each step stopped in reverse:
   * state (the data folder is ours) → API port check → run file (removed last) →
   * libp2p → membership → what it announces → artifacts (store, catalogue) →
   * cluster state → unpublished versions followed → distributor → metrics →
   * node operations → retire protocol → API → run file written → runtime →
   * [leave] → [drain] → manager → [node operations end] → start-up warnings →
   * [shutdown begins]. A step that fails stops what started, without a leave.
   * `hooks` are what plain-data options cannot carry: code that tests put in.
   */
  static async start(options: AgentOptions, logger?: Logger, hooks: AgentHooks = {}): Promise<Agent> {
    const config = resolveAgentConfig(options)
    const log = logger ?? createLogger({ level: config.logLevel })
    // Read before anything starts: a bad tokens file stops the agent at once.
    const tokens =
      config.tokensFile == null ? null : await loadTokens(config.tokensFile, { warn: (m) => log.warn(m) })
    // Components read the API (service discovery) with a token of their own, made at each start.
    const componentToken = tokens == null ? null : randomBytes(24).toString('hex')
    if (componentToken != null) tokens?.add(componentToken, { name: 'components', role: 'viewer' })
    const startedAt = Date.now()
    const ec2 = config.discoverEc2
    const list = new StartList<StopHow>(log, ABORTED)
    try {
      // Operator mistakes are found before anything starts: a bad secret file before the data
      // folder is made, the folder held by another agent, then an API port in use (ApiServer
      // says the same should it be taken later).
      const { secret, state, privateKey, node, membership, traffic } = await startMember(
        {
          config,
          held: [
            { name: 'API port check', start: () => requireFreeApiPort(config.api) },
            { name: 'run file', stop: () => removeRunFile(config.dataDir) },
          ],
          ...(ec2 == null ? {} : { discover: () => discoverOnEc2(ec2, config.cluster, log) }),
          metadata: announced(config),
          ...(hooks.connectionGater == null ? {} : { connectionGater: hooks.connectionGater }),
        },
        list,
        log,
      )
      const id = node.peerId.toString()
      const clusterState = new ClusterStateStore(
        { cluster: config.cluster },
        {
          membership,
          network: node,
          privateKey,
          trust: publishedStateTrust(config.cluster),
          db: state.sublevel('cluster'),
          logger: log,
        },
      )
      const artifacts = await createArtifacts(
        config,
        { node, membership, store: clusterState, state, secret },
        log,
      )
      await list.start([{ name: 'artifacts', stop: () => artifacts.close() }])
      const manager = createManager(
        config,
        { membership, node, artifacts, store: clusterState, state, privateKey },
        log,
      )
      // The runtime hands the API's address to components once it runs, after the API listens.
      const runtime = createRuntime(
        config,
        {
          membership,
          artifacts,
          store: clusterState,
          state,
          api: { url: () => httpUrl(server.address(), true), token: componentToken },
        },
        log,
      )
      const retirement = new Retirement({ cluster: config.cluster }, { network: node, logger: log })
      const nodeOps = await createNodeOperations(
        config,
        { id, membership, store: clusterState, state, retirement },
        log,
      )
      const subsystems = { id, membership, artifacts, store: clusterState, manager, runtime, traffic }
      const exporter = createMetrics(config, subsystems)
      const api = createAgentApi(config, {
        ...subsystems,
        startedAt,
        nodes: nodeOps,
        metrics: exporter,
        network: node,
      })
      const lbCredential = secret == null ? null : clusterCredential(secret, 'lb-admin')
      const server = new ApiServer({ ...config.api, tokens, lbCredential }, api, log)
      const unpublished = new UnpublishedFollower({
        store: clusterState,
        withdraw: (ids) => artifacts.distributor.withdraw(ids),
        logger: log,
      })
      await list.start([
        startable('cluster state', clusterState),
        // Versions the cluster unpublished (`shoal unpublish`): dropped here too, now and as the state changes.
        startable('unpublished versions', unpublished),
        startable('distributor', artifacts.distributor),
        startable('metrics', exporter),
        startable('node operations', nodeOps),
        startable('retire protocol', retirement),
        startable('API', server),
        {
          name: 'run file',
          start: async () => {
            const info = {
              id,
              cluster: config.cluster,
              api: httpUrl(server.address()),
              addrs: membership.self.addrs,
            }
            await writeRunFile(config.dataDir, {
              pid: process.pid,
              ...info,
              startedAt: new Date(startedAt).toISOString(),
            })
            log.info('agent started', info)
            if (tokens == null)
              log.warn(
                `the admin API at ${info.api} is unauthenticated (loopback only); pass --tokens FILE to require API tokens`,
              )
          },
        },
        startable('runtime', runtime),
        // Stopping: the drain, then the leave, while still a member (the load balancers hear
        // of it before the processes stop), then the runtime stops every component.
        leaveStep(membership),
        { name: 'drain', stop: ({ leave }) => (leave ? runtime.drainAll() : undefined) },
        // A leaving leader hands leadership to another voter first (no election timeout to wait
        // out); the new leader removes it from the voters once it has left.
        {
          name: 'manager',
          start: () => manager.start(),
          stop: ({ leave }) => manager.stop({ handOver: leave }),
        },
        { name: 'node operations end', stop: () => nodeOps.stop() },
        {
          name: 'start-up warnings',
          start: () => {
            if (secret == null)
              log.warn(
                `cluster "${config.cluster}" is OPEN: no --secret-file was given, so any node that can reach this one may join it. ` +
                  'Create a secret with "shoal secret new FILE" and pass --secret-file FILE to every agent.',
              )
            for (const warning of startWarnings(config)) log.warn(warning)
          },
        },
        // From now on a component that exits (signalled with the whole service) stays stopped.
        { name: 'shutdown begins', stop: () => runtime.beginShutdown() },
      ])
      const parts = { config, node, membership, artifacts, clusterState, manager, runtime, nodeOps }
      return new Agent({ ...parts, api, server, retirement, traffic, list, log })
    } catch (err) {
      await list.stop(ABORTED)
      throw err
    }
  }

  get id(): string {
    return this.node.peerId.toString()
  }

  /** The admin API's base URL. */
  get apiUrl(): string {
    return httpUrl(this.server.address())
  }

  /** The API as a process on this host reaches it (loopback when it listens on every interface). */
  get localApiUrl(): string {
    return httpUrl(this.server.address(), true)
  }

  /** Bytes moved over all connections so far. */
  wireTraffic(): WireTraffic {
    return { ...this.traffic }
  }

  /**
   * Stops the agent (safe to call twice and concurrently: every call gets the
   * first call's promise, whatever its options).
   */
  stop(options: StopOptions = {}): Promise<void> {
    const leave = options.leave ?? true
    this.stopping ??= this.list
      .stop({ leave })
      .then(() => this.log.info('agent stopped', { id: this.id, left: leave }))
    return this.stopping
  }

  /** A stop forced by the operator: every component process is killed at once (`Runtime.killAll`). */
  killComponents(): void {
    this.runtime.killAll()
  }
}

/** What the agent announces at once: who launched it, its roles and tags (`shoal agent --role/--tag`). */
function announced(config: AgentConfig) {
  const { provider, handle, roles, tags } = config.node
  const launched: Partial<ProvidersAnnouncement> = provider == null ? {} : { provider, handle }
  return {
    ...launched,
    ...(roles.length > 0 ? { roles } : {}),
    ...(Object.keys(tags).length > 0 ? { tags } : {}),
  }
}
