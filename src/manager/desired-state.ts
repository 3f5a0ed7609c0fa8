import type { RuntimeComponents } from '../runtime/index.js'
import type { Logger, Startable, TypedEvents } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import {
  type ClusterState,
  type ClusterStateEvents,
  type RolloutState,
  runsHere,
  targetOf,
} from './record.js'

/** What the runtime of one node follows: the version the cluster wants there, and its changes. */
export type DesiredState = RuntimeComponents['desired']

/** The cluster-state store as its followers read it. */
export interface FollowedStore {
  current(): ClusterState
  readonly events: TypedEvents<ClusterStateEvents>
}

/** Rollout states in which a node still pending unpacks the rollout's version ahead of its turn. */
const PREPARING: readonly RolloutState[] = ['running', 'waiting-approval', 'paused']

/**
 * What the cluster state wants of node `node`: the version it should run, which of
 * its components run there (the placement), and the version it will move to soon
 * (prepare-ahead: a node still pending in the running rollout unpacks that version
 * before its turn, so its switch is quick when the turn comes). Null: nothing yet.
 */
export function desiredOf(state: ClusterState, node: string): ReturnType<DesiredState['current']> {
  const target = targetOf(state, node)
  if (target == null) return null
  const latest = state.rollouts[0]
  const prepare =
    latest != null && PREPARING.includes(latest.state) && latest.progress[node] === 'pending'
      ? latest.distribution
      : null
  return {
    distribution: target,
    runs: (component) => runsHere(state, node, component),
    prepare,
    condemned: condemnedOf(state),
  }
}

/**
 * The version a failed verdict is sending back, while it does: its components take
 * no new request from then on (weight 0), the nodes on the old version serving. Only
 * when the old version served during the judged window: with no node left on it,
 * weight 0 everywhere would leave the load balancers nothing to route to.
 */
export function condemnedOf(state: ClusterState): string[] {
  const latest = state.rollouts[0]
  if (latest == null || latest.state !== 'rolling-back') return []
  const verdict = latest.verdicts?.at(-1)
  if (verdict == null || verdict.decision !== 'rolled back' || verdict.baseline.requests === 0) return []
  return [latest.distribution]
}

/** The runtime's `desired` component for node `node`, read from the cluster-state store. */
export function desiredState(store: FollowedStore, node: string): DesiredState {
  return {
    current: () => desiredOf(store.current(), node),
    onChange: (listener) => store.events.on('state:changed', () => listener()),
  }
}

/**
 * Versions the cluster unpublished (`shoal unpublish`) are dropped on this node too:
 * at start, and each time the cluster state changes. A failure is logged; the next
 * change tries again.
 */
export class UnpublishedFollower implements Startable {
  private off: (() => void) | undefined

  constructor(
    private readonly components: {
      store: FollowedStore
      /** Drops these versions here (the distributor's withdraw). */
      withdraw(ids: string[]): Promise<void>
      logger: Logger
    },
  ) {}

  async start(): Promise<void> {
    if (this.off != null) return
    const { store } = this.components
    this.off = store.events.on('state:changed', (state) => void this.follow(state))
    await this.follow(store.current())
  }

  stop(): void {
    this.off?.()
    this.off = undefined
  }

  private follow(state: ClusterState): Promise<void> {
    return this.components
      .withdraw((state.unpublished ?? []).map((u) => u.id))
      .catch((err: unknown) =>
        this.components.logger.warn('dropping unpublished versions failed', { error: messageOf(err) }),
      )
  }
}
