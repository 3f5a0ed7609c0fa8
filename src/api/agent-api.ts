import { z } from 'zod'
import type { Artifacts } from '../artifacts/index.js'
import {
  type ClusterState,
  type CommandClient,
  type Manager,
  type ManagerCommand,
  type RolloutView,
  rolloutView,
} from '../manager/index.js'
import type { Membership } from '../membership/index.js'
import { componentsOf, type Runtime, runtimeAnnouncement } from '../runtime/index.js'
import { BadRequestError, VERSION } from '../shared/index.js'
import type { ArtifactsApi, UnpublishedView } from './artifact-routes.js'
import type { Caller } from './auth.js'
import type { NodesApi } from './node-routes.js'
import type { ReleasesApi } from './release-routes.js'
import type { RuntimeApi } from './runtime-routes.js'
import type { NodeOperation, NodeRow } from './schemas/nodes.js'
import type { FollowedState } from './schemas/rollouts.js'
import type { ApiBackend } from './server.js'
import type { TrafficApi } from './traffic-routes.js'
import { countStates, type MemberView, memberView, type StatusView } from './views.js'
import type { VotersApi } from './voter-routes.js'

/** What an agent is, as `GET /api/status` shows it. */
/** An API request reads the members' details as fetched at most this long ago (a node that does not watch). */
const API_DETAILS_MAX_AGE_MS = 1000

export interface AgentApiInit {
  id: string
  cluster: string
  /** The cluster has no secret: anyone who can reach it may join. */
  open: boolean
  /** The agent's resolved configuration (plain data). */
  config: unknown
  /** ms since the epoch when the agent started (for its uptime). */
  startedAt: number
}

/** `shoal node add|copy|remove`, as the agent's node operations (src/providers) carry them out. */
export interface NodeOperationsApi extends ReleasesApi {
  nodes(): NodeRow[]
  add(count: number, options: { like?: string; provider?: string; kind?: 'add' | 'copy' }): NodeOperation
  get(id: string): NodeOperation
  remove(id: string, force: boolean): NodeOperation
}

/** The subsystems the API reads and drives, handed over by the agent. */
export interface AgentApiComponents {
  membership: Pick<Membership, 'self' | 'members' | 'stats' | 'events' | 'refreshDetails'>
  /** The election, and the voters (`resetVoters` acts on this node alone, never through the leader). */
  manager: Pick<Manager, 'status' | 'voters' | 'resetVoters'>
  /** Operator commands on the manager, with the agent's waits (src/manager/command-client.ts). */
  commands: Pick<CommandClient, 'rollout' | 'command' | 'unpublish'>
  /** The cluster state this node holds. */
  store: { current(): ClusterState }
  artifacts: Pick<Artifacts, 'store' | 'catalogue' | 'distributor'>
  runtime: Pick<
    Runtime,
    | 'status'
    | 'logTail'
    | 'followLog'
    | 'stopComponent'
    | 'startComponent'
    | 'setWeight'
    | 'services'
    | 'events'
  >
  nodes: NodeOperationsApi
  /** Prometheus' text format of the agent's metrics (`GET /metrics`). */
  metrics(): Promise<string>
  /** Bytes moved over all libp2p connections so far. */
  traffic(): { sentBytes: number; receivedBytes: number }
  /** Every load balancer's per-version figures for a range of Unix seconds (`GET /api/traffic`). */
  loadBalancerTraffic?: TrafficApi
}

/** Distributions an agent knows, and how many of them it holds whole. */
export function distributionCounts(artifacts: Pick<Artifacts, 'catalogue' | 'distributor'>): {
  known: number
  complete: number
} {
  const entries = artifacts.catalogue.list()
  return {
    known: entries.length,
    complete: entries.filter((e) => artifacts.distributor.isComplete(e.id)).length,
  }
}

/**
 * What the API calls on an agent (its `ApiBackend`): views joined from the
 * subsystems (status, members, the audit trail of each version, the manager's
 * view of the placement) and the commands, requested by the token's holder
 * ("alice (admin)") when there is one, else by the agent itself. A malformed
 * command is a 400 here (the manager's schema says what is wrong).
 */
export class AgentApi implements ApiBackend {
  readonly distributions: ArtifactsApi
  readonly runtimeApi: RuntimeApi
  readonly nodesApi: NodesApi
  readonly votersApi: VotersApi
  /** `GET /releases/…`: the Shoal release the agent's node operations serve to nodes they launch. */
  readonly nodeOps: ReleasesApi
  readonly loadBalancerTraffic: TrafficApi | undefined

  constructor(
    private readonly init: AgentApiInit,
    private readonly components: AgentApiComponents,
  ) {
    this.distributions = this.artifactsApi()
    this.runtimeApi = this.runtimeView()
    const { nodes } = components
    this.nodesApi = {
      nodes: () => nodes.nodes(),
      add: (body) => nodes.add(body.count, body),
      copy: (id) => nodes.add(1, { like: id, kind: 'copy' }),
      remove: (id, force) => nodes.remove(id, force),
      operation: (id) => nodes.get(id),
    }
    this.nodeOps = nodes
    this.loadBalancerTraffic = components.loadBalancerTraffic
    const { manager } = components
    this.votersApi = { voters: () => manager.voters(), reset: () => manager.resetVoters() }
  }

  status(): StatusView {
    const { membership, manager, runtime, artifacts } = this.components
    const self = membership.self
    return {
      id: self.id,
      cluster: this.init.cluster,
      addrs: self.addrs,
      state: self.state,
      incarnation: self.incarnation,
      manager: manager.status().manager,
      managerStatus: this.managerStatus(),
      open: this.init.open,
      members: countStates(membership.members()),
      distribution: runtime.status().active,
      runtime: runtime.status(),
      rollouts: this.rollouts().filter(
        (r) => !['done', 'failed', 'rolled-back', 'aborted', 'superseded'].includes(r.state),
      ),
      health: membership.stats().health,
      distributions: distributionCounts(artifacts),
      transfer: artifacts.distributor.stats(),
      traffic: { ...this.components.traffic() },
      uptimeSeconds: Math.round((Date.now() - this.init.startedAt) / 1000),
      version: VERSION,
      config: this.init.config,
    }
  }

  freshDetails(): Promise<void> {
    // A dashboard's burst of requests shares one fetch.
    return this.components.membership.refreshDetails(API_DETAILS_MAX_AGE_MS)
  }

  members(): MemberView[] {
    const manager = this.components.manager.status().manager
    return this.components.membership.members().map((m) => memberView(m, manager))
  }

  metrics(): Promise<string> {
    return this.components.metrics()
  }

  /** Rollouts and rollbacks, newest first (the audit trail), with what members report. */
  rollouts(): RolloutView[] {
    const members = this.components.membership.members()
    return this.components.store.current().rollouts.map((record) => rolloutView(record, members))
  }

  /** The election as this node sees it, and the state it follows. */
  managerStatus(): ReturnType<RuntimeApi['manager']> {
    const state = this.components.store.current()
    const followed: FollowedState = {
      stateTerm: state.term,
      stateSeq: state.seq,
      placement: state.placement,
      unplaced: state.unplaced,
      notReadyAnywhere: this.notReadyAnywhere(state.placementFrom ?? state.defaultTarget),
    }
    return { ...this.components.manager.status(), ...followed }
  }

  /** Who a command is recorded as requested by. */
  private requester(caller: Caller | null | undefined): string {
    return caller == null ? this.init.id : `${caller.name} (${caller.role})`
  }

  /** Components of `id` that no alive member reports ready: placed, but serving nowhere. */
  private notReadyAnywhere(id: string | null): string[] {
    const manifest = id == null ? undefined : this.components.artifacts.catalogue.get(id)?.signed.manifest
    if (manifest == null) return []
    let names: string[]
    try {
      names = [...componentsOf(manifest.artifacts).keys()]
    } catch {
      return []
    }
    const ready = new Set<string>()
    for (const m of this.components.membership.members()) {
      if (m.state !== 'alive') continue
      for (const c of runtimeAnnouncement.of(m).components ?? []) if (c.state === 'ready') ready.add(c.name)
    }
    return names.filter((n) => !ready.has(n)).sort()
  }

  private artifactsApi(): ArtifactsApi {
    const { store, distributor } = this.components.artifacts
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
        const trail = this.components.store.current().rollouts
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
      unpublish: async (id, caller): Promise<UnpublishedView> => {
        const { result, entry } = await this.components.commands.unpublish(id, this.requester(caller))
        const at = id.indexOf('@')
        return { result, id, name: id.slice(0, at), version: id.slice(at + 1), by: entry.by, at: entry.at }
      },
    }
  }

  private runtimeView(): RuntimeApi {
    const { runtime, membership, commands } = this.components
    return {
      status: () => runtime.status(),
      logTail: (name, lines) => runtime.logTail(name, lines),
      followLog: (name, listener) => runtime.followLog(name, listener),
      stopComponent: (name) => runtime.stopComponent(name),
      startComponent: (name) => runtime.startComponent(name),
      setWeight: (name, weight) => runtime.setWeight(name, weight),
      services: (name) => runtime.services(name),
      freshDetails: () => this.freshDetails(),
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
      startRollout: (body, caller) =>
        badCommand(() => commands.rollout((body ?? {}) as Record<string, unknown>, this.requester(caller))),
      rollouts: () => this.rollouts(),
      command: (command: ManagerCommand, caller) =>
        badCommand(() => commands.command(command, this.requester(caller))),
      manager: () => this.managerStatus(),
    }
  }
}

/** A command the manager's schema refuses is the client's mistake: 400, naming each field. */
async function badCommand<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    if (err instanceof z.ZodError)
      throw new BadRequestError(
        `bad command: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      )
    throw err
  }
}
