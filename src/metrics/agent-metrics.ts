import { Registry } from 'prom-client'
import type { DistributorStats } from '../artifacts/index.js'
import { type ClusterState, type ManagerStatus, NODE_PROGRESS } from '../manager/index.js'
import type { MemberState, MembershipStats } from '../membership/index.js'
import { COMPONENT_STATES, type RuntimeStatus } from '../runtime/index.js'
import type { Startable } from '../shared/index.js'
import { collectedCounter, collectedGauge, flag } from './collected.js'
import { RATE_SAMPLE_MS, RATE_WINDOW_MS } from './constants.js'
import { exposition, startProcessMetrics } from './exposition.js'
import { RateMeter } from './rate-meter.js'

const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const satisfies readonly MemberState[]

/** Where an agent's numbers come from; each is read at scrape time. */
export interface AgentMetricsSources {
  info: { id: string; cluster: string; version: string }
  members(): ReadonlyArray<{ state: MemberState }>
  membership(): MembershipStats
  /** Bytes over all libp2p connections (after encryption). */
  wire(): { sentBytes: number; receivedBytes: number }
  transfer(): DistributorStats
  /** Configured transfer limits in bytes per second (0: unlimited). */
  transferLimits: { uploadRate: number; downloadRate: number }
  distributions(): { known: number; complete: number }
  runtime(): RuntimeStatus
  manager(): ManagerStatus
  clusterState(): ClusterState
}

/**
 * An agent's metrics on a registry of its own (several agents share a process in
 * tests). Everything but the transfer rate is read from the subsystems' status and
 * stats objects when Prometheus scrapes; the rate needs samples, taken every second
 * between `start()` and `stop()`.
 */
export class AgentMetrics implements Startable {
  readonly registry = new Registry()
  private readonly rates = { received: new RateMeter(RATE_WINDOW_MS), sent: new RateMeter(RATE_WINDOW_MS) }
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly sources: AgentMetricsSources) {
    this.membershipMetrics()
    this.trafficMetrics()
    this.transferMetrics()
    this.runtimeMetrics()
    this.managerMetrics()
  }

  /** Starts sampling the transfer rate, and the process metrics with it (once per process). */
  start(): void {
    if (this.timer != null) return
    startProcessMetrics()
    this.sampleRates()
    this.timer = setInterval(() => this.sampleRates(), RATE_SAMPLE_MS)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Prometheus text format: this agent's metrics and the process's. */
  render(): Promise<string> {
    return exposition(this.registry)
  }

  private sampleRates(): void {
    const { bytesFetched, bytesServed } = this.sources.transfer()
    this.rates.received.sample(bytesFetched)
    this.rates.sent.sample(bytesServed)
  }

  private membershipMetrics(): void {
    const { registry, sources } = this
    collectedGauge(registry, {
      name: 'shoal_agent_info',
      help: 'Always 1; labels say which agent, cluster and Shoal version this is.',
      labelNames: ['id', 'cluster', 'version'],
      read: () => [[sources.info, 1]],
    })
    collectedGauge(registry, {
      name: 'shoal_members',
      help: 'Members this agent knows, by state (itself included).',
      labelNames: ['state'],
      read: () => {
        const counts = new Map<string, number>(MEMBER_STATES.map((s) => [s, 0]))
        for (const m of sources.members()) counts.set(m.state, (counts.get(m.state) ?? 0) + 1)
        return [...counts].map(([state, n]) => [{ state }, n] as const)
      },
    })
    collectedGauge(registry, {
      name: 'shoal_local_health',
      help: 'Lifeguard local-health score: 0 is healthy; failure-detector timeouts are stretched by (score + 1).',
      read: () => sources.membership().health,
    })
    const stats = () => sources.membership()
    collectedCounter(registry, {
      name: 'shoal_gossip_messages_total',
      help: 'Membership gossip messages published and received on the cluster topic.',
      labelNames: ['direction'],
      read: () => [
        [{ direction: 'sent' }, stats().gossipSent],
        [{ direction: 'received' }, stats().gossipReceived],
      ],
    })
    collectedCounter(registry, {
      name: 'shoal_gossip_bytes_total',
      help: 'Payload bytes of membership gossip messages (once per message, not per peer reached).',
      labelNames: ['direction'],
      read: () => [
        [{ direction: 'sent' }, stats().gossipBytesSent],
        [{ direction: 'received' }, stats().gossipBytesReceived],
      ],
    })
    // Three totals, not one split by outcome: a probe counts as started before its outcome is known.
    collectedCounter(registry, {
      name: 'shoal_probes_total',
      help: 'Failure-detector probes started.',
      read: () => stats().probes,
    })
    collectedCounter(registry, {
      name: 'shoal_probe_failures_total',
      help: 'Probes that got no ack, directly or through other members.',
      read: () => stats().probeFailures,
    })
    collectedCounter(registry, {
      name: 'shoal_probes_inconclusive_total',
      help: 'Probes that ran out of time because this agent was too slow to tell (nobody is suspected).',
      read: () => stats().inconclusiveProbes,
    })
    collectedCounter(registry, {
      name: 'shoal_indirect_probes_total',
      help: 'Indirect probes asked of other members after a direct probe got no answer.',
      read: () => stats().indirectProbes,
    })
    collectedCounter(registry, {
      name: 'shoal_suspicions_total',
      help: 'Members this agent started to suspect.',
      read: () => stats().suspicionsRaised,
    })
    collectedCounter(registry, {
      name: 'shoal_syncs_total',
      help: 'Anti-entropy exchanges of the whole member list.',
      read: () => stats().syncs,
    })
  }

  private trafficMetrics(): void {
    const { registry, sources } = this
    collectedCounter(registry, {
      name: 'shoal_wire_bytes_total',
      help: 'Bytes over all libp2p connections (membership, gossip, manager, and transfers that fell back from the data plane), after encryption.',
      labelNames: ['direction'],
      read: () => {
        const wire = sources.wire()
        return [
          [{ direction: 'sent' }, wire.sentBytes],
          [{ direction: 'received' }, wire.receivedBytes],
        ]
      },
    })
  }

  private transferMetrics(): void {
    const { registry, sources } = this
    collectedCounter(registry, {
      name: 'shoal_transfer_bytes_total',
      help: 'Artifact chunk bytes fetched from peers (received) and served to peers (sent).',
      labelNames: ['direction'],
      read: () => {
        const t = sources.transfer()
        return [
          [{ direction: 'received' }, t.bytesFetched],
          [{ direction: 'sent' }, t.bytesServed],
        ]
      },
    })
    collectedCounter(registry, {
      name: 'shoal_transfer_chunks_total',
      help: 'Artifact chunks fetched from peers (received) and served to peers (sent).',
      labelNames: ['direction'],
      read: () => {
        const t = sources.transfer()
        return [
          [{ direction: 'received' }, t.chunksFetched],
          [{ direction: 'sent' }, t.chunksServed],
        ]
      },
    })
    collectedGauge(registry, {
      name: 'shoal_transfer_rate_bytes_per_second',
      help: `Artifact transfer rate over the last ${RATE_WINDOW_MS / 1000} s.`,
      labelNames: ['direction'],
      read: () => [
        [{ direction: 'received' }, this.rates.received.perSecond()],
        [{ direction: 'sent' }, this.rates.sent.perSecond()],
      ],
    })
    collectedGauge(registry, {
      name: 'shoal_transfer_rate_limit_bytes_per_second',
      help: 'Configured transfer limit (--download-rate, --upload-rate); 0 is unlimited.',
      labelNames: ['direction'],
      read: () => [
        [{ direction: 'received' }, sources.transferLimits.downloadRate],
        [{ direction: 'sent' }, sources.transferLimits.uploadRate],
      ],
    })
    collectedCounter(registry, {
      name: 'shoal_chunk_failures_total',
      help: 'Chunks not obtained from a peer: corrupt (failed verification; the peer is penalised) or request (refused, timed out, cut short).',
      labelNames: ['reason'],
      read: () => {
        const t = sources.transfer()
        return [
          [{ reason: 'corrupt' }, t.badChunks],
          [{ reason: 'request' }, t.chunkRequestsFailed],
        ]
      },
    })
    collectedCounter(registry, {
      name: 'shoal_data_plane_answers_total',
      help: 'Chunk requests the data plane turned away: busy (no upload slot) or elsewhere (the chunk had just gone to another peer). Absent with --data-listen off.',
      labelNames: ['answer'],
      read: () => {
        const d = sources.transfer().dataPlane
        return d == null
          ? []
          : [
              [{ answer: 'busy' }, d.busyAnswers],
              [{ answer: 'elsewhere' }, d.elsewhereAnswers],
            ]
      },
    })
    collectedCounter(registry, {
      name: 'shoal_data_plane_fallbacks_total',
      help: 'Chunks fetched over libp2p because a peer announced a data plane this agent could not reach (a firewall?).',
      read: () => sources.transfer().dataPlane?.fallbacks ?? 0,
    })
    collectedGauge(registry, {
      name: 'shoal_data_plane_connections',
      help: "Connections open to this agent's data plane now.",
      read: () => sources.transfer().dataPlane?.connections ?? 0,
    })
    collectedGauge(registry, {
      name: 'shoal_penalised_peers',
      help: 'Peers avoided for now because they sent a corrupt chunk.',
      read: () => sources.transfer().penalised.length,
    })
    collectedGauge(registry, {
      name: 'shoal_distributions',
      help: 'Distributions (name@version) this agent knows, by whether it holds all their bytes.',
      labelNames: ['state'],
      read: () => {
        const { known, complete } = sources.distributions()
        return [
          [{ state: 'complete' }, complete],
          [{ state: 'incomplete' }, known - complete],
        ]
      },
    })
  }

  private runtimeMetrics(): void {
    const { registry, sources } = this
    collectedGauge(registry, {
      name: 'shoal_runtime_info',
      help: 'Always 1; labels say the version this node runs (active), works towards (target), and the phase of that work.',
      labelNames: ['active', 'target', 'phase'],
      read: () => {
        const r = sources.runtime()
        return [[{ active: r.active ?? '', target: r.target ?? '', phase: r.phase }, 1]]
      },
    })
    collectedCounter(registry, {
      name: 'shoal_component_restarts_total',
      help: "Restarts of a component's process after it exited or failed its health check (counts from 0 for each new version).",
      labelNames: ['component'],
      read: () => sources.runtime().components.map((c) => [{ component: c.name }, c.restarts] as const),
    })
    collectedGauge(registry, {
      name: 'shoal_component_ready',
      help: '1 when the component is ready (its health check passes).',
      labelNames: ['component'],
      read: () =>
        sources.runtime().components.map((c) => [{ component: c.name }, flag(c.state === 'ready')] as const),
    })
    collectedGauge(registry, {
      name: 'shoal_component_state',
      help: "1 for the component's current state, 0 for the others.",
      labelNames: ['component', 'state'],
      read: () =>
        sources
          .runtime()
          .components.flatMap((c) =>
            COMPONENT_STATES.map((state) => [{ component: c.name, state }, flag(c.state === state)] as const),
          ),
    })
  }

  private managerMetrics(): void {
    const { registry, sources } = this
    collectedGauge(registry, {
      name: 'shoal_is_manager',
      help: '1 on the agent that is the cluster manager.',
      read: () => flag(sources.manager().self),
    })
    collectedGauge(registry, {
      name: 'shoal_manager_quorum',
      help: '1 when this agent sees a majority of the voters alive.',
      read: () => flag(sources.manager().quorum),
    })
    collectedGauge(registry, {
      name: 'shoal_manager_term',
      help: "The manager's term as this agent knows it.",
      read: () => sources.manager().term,
    })
    collectedGauge(registry, {
      name: 'shoal_voters',
      help: 'Voters in the election, and how many of them this agent sees alive.',
      labelNames: ['state'],
      read: () => {
        const m = sources.manager()
        return [
          [{ state: 'all' }, m.voters.length],
          [{ state: 'alive' }, m.aliveVoters],
        ]
      },
    })
    collectedGauge(registry, {
      name: 'shoal_cluster_state_seq',
      help: 'Sequence number of the cluster state this agent holds (grows with every write by the manager).',
      read: () => sources.clusterState().seq,
    })
    collectedGauge(registry, {
      name: 'shoal_rollouts',
      help: 'Rollouts and rollbacks in the cluster state (the audit trail), by state.',
      labelNames: ['state'],
      read: () => {
        const counts = new Map<string, number>()
        for (const r of sources.clusterState().rollouts) counts.set(r.state, (counts.get(r.state) ?? 0) + 1)
        return [...counts].map(([state, n]) => [{ state }, n] as const)
      },
    })
    // The newest rollout only: the earlier ones are over, and keeping them would grow a series per rollout.
    collectedGauge(registry, {
      name: 'shoal_rollout_info',
      help: 'Always 1; labels describe the newest rollout or rollback.',
      labelNames: ['rollout', 'kind', 'distribution', 'strategy', 'state'],
      read: () => {
        const r = sources.clusterState().rollouts[0]
        return r == null
          ? []
          : [
              [
                {
                  rollout: r.id,
                  kind: r.kind,
                  distribution: r.distribution,
                  strategy: r.strategy,
                  state: r.state,
                },
                1,
              ],
            ]
      },
    })
    collectedGauge(registry, {
      name: 'shoal_rollout_nodes',
      help: 'Nodes of the newest rollout or rollback, by where it has them.',
      labelNames: ['rollout', 'state'],
      read: () => {
        const r = sources.clusterState().rollouts[0]
        if (r == null) return []
        const counts = new Map<string, number>(NODE_PROGRESS.map((s) => [s, 0]))
        for (const status of Object.values(r.progress)) counts.set(status, (counts.get(status) ?? 0) + 1)
        return [...counts].map(([state, n]) => [{ rollout: r.id, state }, n] as const)
      },
    })
  }
}
