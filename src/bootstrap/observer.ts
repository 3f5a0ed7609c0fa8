import { mkdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createMembership, hasObserverRole, MemberRole, type Membership } from '../membership/index.js'
import type { Logger } from '../shared/index.js'
import { DEFAULT_PRESET, presetTimers, type TimerPreset, VERSION } from '../shared/index.js'
import { AgentState } from './agent-state.js'
import { MEMBER_METADATA } from './announcements.js'
import { resolveAgentConfig } from './config.js'
import { STATE_DIR } from './constants.js'
import { loadOrCreatePeerKey } from './identity.js'
import { createNode, type ShoalLibp2p } from './libp2p-node.js'
import { readSecret } from './secret.js'

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
 * (identity, secret, discovery, failure detection) and nothing else, announcing
 * its roles in its metadata. The load balancer is one.
 */
export class Observer {
  private stopping: Promise<void> | undefined

  private constructor(
    readonly node: ShoalLibp2p,
    readonly membership: Membership,
    private readonly state: AgentState,
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
    // Read before anything is made: a missing or bad secret leaves no data folder behind.
    const secret = config.secretFile == null ? null : await readSecret(config.secretFile)
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
    const state = new AgentState(join(config.dataDir, STATE_DIR), config.dataDir)
    await state.open()
    let node: ShoalLibp2p | undefined
    try {
      node = await createNode(
        {
          cluster: config.cluster,
          privateKey: await loadOrCreatePeerKey(config.dataDir),
          listen: config.listen,
          bootstrap: config.bootstrap,
          secret,
          mdns: config.mdns,
          mdnsIntervalMs: presetTimers(config.preset).mdns.intervalMs,
          traffic: { sentBytes: 0, receivedBytes: 0 },
          version: VERSION,
        },
        log.child('libp2p'),
      )
      await node.start()
      const membership = createMembership(
        {
          cluster: config.cluster,
          timers: config.timers,
          bootstrap: config.bootstrap,
          contract: MEMBER_METADATA,
        },
        { network: node, store: state.incarnations(), logger: log },
      )
      await membership.start()
      await membership.updateMetadata({ roles })
      return new Observer(node, membership, state, log)
    } catch (err) {
      await Promise.resolve(node?.stop()).catch(() => {})
      await state.close().catch(() => {})
      throw err
    }
  }

  get id(): string {
    return this.node.peerId.toString()
  }

  stop(options: { leave?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (options.leave ?? true) await this.membership.leave().catch(() => {})
      await this.membership.stop().catch(() => {})
      await Promise.resolve(this.node.stop()).catch(() => {})
      await this.state.close().catch(() => {})
      this.log.info('observer stopped', { id: this.id })
    })()
    return this.stopping
  }
}
