import { chmod, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'
import { createMembership, type MemberMetadata, type Membership } from '../membership/index.js'
import type { Logger, StartList, Step } from '../shared/index.js'
import { presetTimers, startable, VERSION } from '../shared/index.js'
import { AgentState } from './agent-state.js'
import { MEMBER_METADATA } from './announcements.js'
import type { AgentConfig } from './config.js'
import { STATE_DIR } from './constants.js'
import { loadOrCreatePeerKey } from './identity.js'
import { createNode, type ShoalLibp2p } from './libp2p-node.js'
import { readSecret } from './secret.js'
import type { WireTraffic } from './wire-meter.js'

/** How a start list stops: with a graceful leave (drain, tell the cluster) or as a crash looks to peers. */
export interface StopHow {
  leave: boolean
}

/** What a start that fails tells the steps that started: no leave (peers see it as a crash at start). */
export const ABORTED: StopHow = { leave: false }

export interface MemberInit {
  config: Pick<
    AgentConfig,
    'cluster' | 'dataDir' | 'listen' | 'bootstrap' | 'secretFile' | 'mdns' | 'preset' | 'timers'
  >
  /**
   * Steps run once the data folder is this process's (its state is open, so no
   * other agent uses it), before the node exists: the agent's API port check and
   * its run file, which must go last when it stops.
   */
  held?: Array<Step<StopHow>>
  /** More addresses to join through, looked up once libp2p listens (EC2 discovery). */
  discover?: () => Promise<string[]>
  /** What the node announces about itself once it is a member (roles, tags, its provider). */
  metadata: MemberMetadata
  /** Which peers may connect (tests cut the network in two with it; none in production). */
  connectionGater?: ConnectionGater
}

/** A member of the cluster: what the agent and the observer (`shoal lb`) both are. */
export interface ClusterMember {
  secret: Uint8Array | null
  state: AgentState
  privateKey: PrivateKey
  node: ShoalLibp2p
  membership: Membership
  /** Bytes moved over all libp2p connections, counted as they pass. */
  traffic: WireTraffic
}

/**
 * Makes this process a member, adding each part to `list` as it starts: the secret
 * (read before anything is made, so a bad one leaves no data folder behind), the data
 * folder (0700), the durable state, the peer key, the libp2p node, membership, and
 * what it announces. The caller stops `list` when anything here throws. The leave is
 * the caller's to place in its list: it must come after what drains first.
 */
export async function startMember(
  init: MemberInit,
  list: StartList<StopHow>,
  log: Logger,
): Promise<ClusterMember> {
  const { config } = init
  const secret = config.secretFile == null ? null : await readSecret(config.secretFile)
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
  // State, blobs, components and logs are this node's alone (like PostgreSQL's data directory).
  const { mode } = await stat(config.dataDir)
  if ((mode & 0o077) !== 0) await chmod(config.dataDir, 0o700)
  const state = new AgentState(join(config.dataDir, STATE_DIR), config.dataDir)
  await list.start([
    { name: 'state', start: () => state.open(), stop: () => state.close() },
    ...(init.held ?? []),
  ])
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
      ...(init.connectionGater == null ? {} : { connectionGater: init.connectionGater }),
    },
    log.child('libp2p'),
  )
  await list.start([startable('libp2p', node)])
  const discovered = (await init.discover?.()) ?? []
  const membership = createMembership(
    {
      cluster: config.cluster,
      timers: config.timers,
      bootstrap: [...config.bootstrap, ...discovered],
      contract: MEMBER_METADATA,
    },
    { network: node, store: state.incarnations(), logger: log },
  )
  await list.start([
    startable('membership', membership),
    {
      name: 'announce',
      start: () =>
        Object.keys(init.metadata).length > 0 ? membership.updateMetadata(init.metadata) : undefined,
    },
  ])
  return { secret, state, privateKey, node, membership, traffic }
}

/** The hook that leaves the cluster gracefully when the list stops with `leave`. */
export function leaveStep(membership: Pick<Membership, 'leave'>): Step<StopHow> {
  return { name: 'leave', stop: ({ leave }) => (leave ? membership.leave() : undefined) }
}
