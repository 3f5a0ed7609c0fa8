import { dirname, join } from 'node:path'
import { AgentApi, ApiAddressInUseError, distributionCounts } from '../api/index.js'
import { type Artifacts, checkDistribution, dataPlaneKey, openArtifacts } from '../artifacts/index.js'
import { drainConfirmed, gatherTraffic } from '../loadbalancer/index.js'
import {
  type ClusterStateStore,
  CommandClient,
  type CommandClientComponents,
  desiredState,
  Manager,
  type ManagerComponents,
  RaftStorage,
  retentionGuard,
  targetOf,
} from '../manager/index.js'
import type { Membership } from '../membership/index.js'
import { AgentMetrics } from '../metrics/index.js'
import {
  LaunchRecords,
  LocalProvider,
  loadProviders,
  NodeOperations,
  type Provider,
  type Retirement,
} from '../providers/index.js'
import { componentsOf, Runtime } from '../runtime/index.js'
import { type Logger, portInUse, presetTimers, type StreamNetwork, VERSION } from '../shared/index.js'
import type { AgentState } from './agent-state.js'
import type { AgentConfig } from './config.js'
import type { ShoalLibp2p } from './libp2p-node.js'
import type { WireTraffic } from './wire-meter.js'

/**
 * How the agent builds each subsystem from its configuration and the others: each
 * gets what it needs through its Components, adapted here and nowhere else.
 */

/** Throws the API's ApiAddressInUseError when something already listens on its fixed port. */
export async function requireFreeApiPort({ host, port }: { host: string; port: number }): Promise<void> {
  if (port !== 0 && (await portInUse(host, port))) throw new ApiAddressInUseError(`${host}:${port}`)
}

/** `http://host:port`, with IPv6 hosts in brackets; `local`: as a process on this host reaches it. */
export function httpUrl({ host, port }: { host: string; port: number }, local = false): string {
  const to = !local ? host : host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${to.includes(':') ? `[${to}]` : to}:${port}`
}

/**
 * Opens the blob store and the catalogue; retention keeps the versions in use as
 * the cluster state and the members say (the manager's rule).
 */
export function createArtifacts(
  config: AgentConfig,
  components: {
    node: ShoalLibp2p
    membership: Membership
    store: ClusterStateStore
    state: AgentState
    secret: Uint8Array | null
  },
  log: Logger,
): Promise<Artifacts> {
  const { node, membership, store, state, secret } = components
  const dataListen = config.dataListen
  const addrs = node.getMultiaddrs().map((a) => a.toString())
  return openArtifacts(
    {
      cluster: config.cluster,
      dataDir: config.dataDir,
      trust: config.trust,
      config: config.artifacts,
      // Closed exactly as tightly as the cluster: its key comes from the cluster secret.
      dataPlane:
        dataListen == null
          ? null
          : {
              ...dataListen,
              advertiseHost: dataHost(config, dataListen.host, addrs),
              key: secret == null ? null : dataPlaneKey(secret, config.cluster),
            },
      protectedVersions: retentionGuard({
        store,
        members: () => {
          // What members run is a runtime detail: a node that does not watch fetches it (for its next round).
          void membership.refreshDetails(10_000)
          return membership.members()
        },
      }),
    },
    {
      network: node,
      membership,
      db: state.sublevel('blobs'),
      catalogueDb: state.sublevel('distributions'),
      logger: log,
    },
  )
}

/** A rollout's version as this agent's catalogue knows it, for the manager's command client. */
export function rolloutVersions(artifacts: Artifacts): CommandClientComponents['versions'] {
  return {
    known: (id) => artifacts.catalogue.get(id) != null,
    check: (id) => {
      const manifest = artifacts.catalogue.get(id)?.signed.manifest
      if (manifest != null) checkDistribution(manifest)
    },
  }
}

export function createManager(
  config: AgentConfig,
  components: {
    membership: Membership
    node: ShoalLibp2p
    artifacts: Artifacts
    store: ClusterStateStore
    state: AgentState
    privateKey: ManagerComponents['privateKey']
  },
  log: Logger,
): Manager {
  const { membership, node, artifacts, store, state, privateKey } = components
  const versions: ManagerComponents['versions'] = {
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
  }
  return new Manager(
    { cluster: config.cluster, ...presetTimers(config.preset).manager, maxVoters: config.maxVoters },
    {
      membership,
      network: node,
      store,
      versions,
      raftStorage: new RaftStorage(state.binarySublevel('raft')),
      privateKey,
      traffic: (range) => gatherTraffic(node, config.cluster, membership.members(), range),
      logger: log,
    },
  )
}

/** The host peers reach the data plane on: its own when it names one, else the components' advertised host. */
function dataHost(config: AgentConfig, bindHost: string, addrs: string[]): string {
  if (bindHost !== '0.0.0.0' && bindHost !== '::') return bindHost
  return componentHosts(config, addrs).advertiseHost
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

export function createRuntime(
  config: AgentConfig,
  components: {
    membership: Membership
    artifacts: Artifacts
    store: ClusterStateStore
    state: AgentState
    /** How components reach this agent's API (SHOAL_API, SHOAL_TOKEN); read once the API listens. */
    api: { url: () => string; token: string | null }
  },
  log: Logger,
): Runtime {
  const { membership, artifacts, store, state, api } = components
  const { catalogue, distributor, store: blobs } = artifacts
  return new Runtime(
    {
      cluster: config.cluster,
      dataDir: config.dataDir,
      ...componentHosts(config, membership.self.addrs),
      apiUrl: api.url,
      apiToken: api.token,
      config: config.runtime,
      osgiFramework: config.osgiFramework,
    },
    {
      membership,
      drainConfirmed: (key, services) => drainConfirmed(membership.members(), key, services),
      distributions: {
        manifest: (id) => catalogue.get(id)?.signed.manifest,
        isComplete: (id) => distributor.isComplete(id),
        blobPath: (sha256) => blobs.pathOf(sha256),
        onComplete: (listener) => distributor.events.on('distribution:complete', ({ id }) => listener(id)),
      },
      desired: desiredState(store, membership.id),
      db: state.sublevel('runtime'),
      logger: log,
    },
  )
}

/** `shoal node add|copy|remove` on this agent: the local provider, and those of the providers file. */
export async function createNodeOperations(
  config: AgentConfig,
  components: {
    id: string
    membership: Membership
    store: ClusterStateStore
    state: AgentState
    retirement: Retirement
  },
  log: Logger,
): Promise<NodeOperations> {
  const { id, membership, store, state, retirement } = components
  // New local nodes listen where this agent listens (loopback in tests, a LAN address otherwise).
  const listenIp = /^\/ip4\/([^/]+)/.exec(config.listen[0] ?? '')?.[1]
  const host = listenIp == null || listenIp === '0.0.0.0' ? (config.advertiseHost ?? '127.0.0.1') : listenIp
  const local = new LocalProvider(
    {
      dataRoot: join(dirname(config.dataDir), 'nodes'),
      host,
      launchedBy: id,
      startTimeoutMs: 30_000,
      stopTimeoutMs: 30_000,
    },
    log.child('local-provider'),
  )
  const configured =
    config.providersFile == null
      ? { providers: [], defaultProvider: local.name }
      : await loadProviders(config.providersFile, id, log, { dataDir: config.dataDir })
  const providers = new Map<string, Provider>([[local.name, local]])
  for (const provider of configured.providers) providers.set(provider.name, provider)
  return new NodeOperations(
    {
      self: id,
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
      freshDetails: () => membership.refreshDetails(),
      selfAddrs: () => membership.self.addrs,
      targetFor: (node) => targetOf(store.current(), node),
      providers,
      records: new LaunchRecords(state.sublevel('providers')),
      retire: (node) => retirement.ask(node),
      logger: log,
    },
  )
}

/** The subsystems the metrics and the API read. */
interface Observed {
  id: string
  membership: Membership
  artifacts: Artifacts
  store: ClusterStateStore
  manager: Manager
  runtime: Runtime
  traffic: WireTraffic
}

/** `GET /metrics`: read from the subsystems at scrape time (docs/metrics.md). */
export function createMetrics(config: AgentConfig, observed: Observed): AgentMetrics {
  const { id, membership, artifacts, store, manager, runtime, traffic } = observed
  return new AgentMetrics({
    info: { id, cluster: config.cluster, version: VERSION },
    members: () => membership.members(),
    membership: () => membership.stats(),
    wire: () => traffic,
    transfer: () => artifacts.distributor.stats(),
    transferLimits: config.artifacts,
    distributions: () => distributionCounts(artifacts),
    runtime: () => runtime.status(),
    manager: () => manager.status(),
    clusterState: () => store.current(),
  })
}

/** What the API serves: the subsystems, and operator commands through the manager's command client. */
export function createAgentApi(
  config: AgentConfig,
  components: Observed & {
    startedAt: number
    nodes: NodeOperations
    metrics: AgentMetrics
    /** Where the load balancers' figures are asked for (`GET /api/traffic`). */
    network: StreamNetwork
  },
): AgentApi {
  const { id, startedAt, membership, artifacts, store, manager, runtime, nodes, metrics, traffic, network } =
    components
  const commands = new CommandClient({
    manager,
    store,
    members: () => membership.members(),
    versions: rolloutVersions(artifacts),
  })
  return new AgentApi(
    { id, cluster: config.cluster, open: config.secretFile == null, config, startedAt },
    {
      membership,
      manager,
      commands,
      store,
      artifacts,
      runtime,
      nodes,
      metrics: () => metrics.render(),
      traffic: () => traffic,
      loadBalancerTraffic: (range) => gatherTraffic(network, config.cluster, membership.members(), range),
    },
  )
}
