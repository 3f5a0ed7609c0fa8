import { homedir } from 'node:os'
import { join } from 'node:path'
import { hasObserverRole, MemberRole, type Membership } from '../membership/index.js'
import type { Logger } from '../shared/index.js'
import { DEFAULT_PRESET, StartList, type TimerPreset } from '../shared/index.js'
import { resolveAgentConfig } from './config.js'
import type { ShoalLibp2p } from './libp2p-node.js'
import { ABORTED, leaveStep, type StopHow, startMember } from './member.js'

export interface ObserverOptions {
  cluster: string
  /**
   * Roles it announces (`lb`); `observer` is added when none of them is an
   * observer role, since an observer votes in no election, gets no placement and
   * is not counted as a node (OBSERVER_ROLES, src/membership/roles.ts).
   */
  roles: readonly string[]
  /** Default ~/.shoal/CLUSTER-ROLE. */
  dataDir?: string
  /** Default /ip4/0.0.0.0/tcp/0: an observer often shares its host with an agent. */
  listen?: string[]
  bootstrap?: string[]
  secretFile?: string | null
  mdns?: boolean
  preset?: TimerPreset
}

/**
 * A member that only watches: the same libp2p node and membership as an agent
 * (identity, secret, discovery, failure detection; `startMember`) and nothing else,
 * announcing its roles in its metadata. The load balancer is one.
 */
export class Observer {
  private stopping: Promise<void> | undefined

  private constructor(
    readonly node: ShoalLibp2p,
    readonly membership: Membership,
    private readonly list: StartList<StopHow>,
    private readonly log: Logger,
  ) {}

  static async start(options: ObserverOptions, log: Logger): Promise<Observer> {
    const roles = hasObserverRole(options.roles)
      ? [...options.roles]
      : [...options.roles, MemberRole.Observer]
    const role = roles[0]!
    // The agent's validation and defaults (cluster name, multiaddrs, presets) apply as they are.
    const config = resolveAgentConfig({
      cluster: options.cluster,
      dataDir: options.dataDir ?? join(homedir(), '.shoal', `${options.cluster}-${role}`),
      listen: options.listen?.length ? options.listen : ['/ip4/0.0.0.0/tcp/0'],
      bootstrap: options.bootstrap ?? [],
      secretFile: options.secretFile ?? null,
      mdns: options.mdns ?? true,
      preset: options.preset ?? DEFAULT_PRESET,
    })
    const list = new StartList<StopHow>(log, ABORTED)
    try {
      const { node, membership } = await startMember({ config, metadata: { roles } }, list, log)
      // It routes to (or shows) every node's components: every member sends it their details.
      await membership.setWatching(true)
      await list.start([leaveStep(membership)])
      return new Observer(node, membership, list, log)
    } catch (err) {
      await list.stop(ABORTED)
      throw err
    }
  }

  get id(): string {
    return this.node.peerId.toString()
  }

  /** Leaves (unless `leave` is false) and stops; safe to call twice. */
  stop(options: { leave?: boolean } = {}): Promise<void> {
    this.stopping ??= this.list
      .stop({ leave: options.leave ?? true })
      .then(() => this.log.info('observer stopped', { id: this.id }))
    return this.stopping
  }
}
