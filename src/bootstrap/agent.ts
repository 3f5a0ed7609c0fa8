import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  type ApiBackend,
  ApiServer,
  type ArtifactsApi,
  countStates,
  type MemberView,
  memberView,
  type StatusView,
} from '../api/index.js'
import { type Artifacts, openArtifacts } from '../artifacts/index.js'
import { createMembership, type Membership } from '../membership/index.js'
import { writeFileAtomic } from '../shared/files.js'
import { createLogger, type Logger } from '../shared/logger.js'
import { VERSION } from '../shared/version.js'
import { AgentState } from './agent-state.js'
import { type AgentConfig, type AgentOptions, resolveAgentConfig } from './config.js'
import { RUN_FILE, STATE_DIR } from './constants.js'
import { loadOrCreatePeerKey } from './identity.js'
import { createNode, type ShoalLibp2p } from './libp2p-node.js'
import { readSecret } from './secret.js'
import type { WireTraffic } from './wire-meter.js'

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
export class Agent implements ApiBackend {
  private api: ApiServer | undefined
  private stopping: Promise<void> | undefined
  private readonly startedAt = Date.now()

  private constructor(
    readonly config: AgentConfig,
    readonly node: ShoalLibp2p,
    readonly membership: Membership,
    readonly artifacts: Artifacts,
    private readonly state: AgentState,
    private readonly traffic: WireTraffic,
    private readonly log: Logger,
  ) {}

  static async start(options: AgentOptions, logger?: Logger): Promise<Agent> {
    const config = resolveAgentConfig(options)
    const log = logger ?? createLogger({ level: config.logLevel })
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
    const state = new AgentState(join(config.dataDir, STATE_DIR), config.dataDir)
    await state.open()
    const undo: Array<() => Promise<void>> = [() => state.close()]
    try {
      const privateKey = await loadOrCreatePeerKey(config.dataDir)
      const secret = config.secretFile == null ? null : await readSecret(config.secretFile)
      const traffic: WireTraffic = { sentBytes: 0, receivedBytes: 0 }
      const node = await createNode(
        {
          cluster: config.cluster,
          privateKey,
          listen: config.listen,
          bootstrap: config.bootstrap,
          secret,
          mdns: config.mdns,
          preset: config.preset,
          traffic,
          version: VERSION,
        },
        log.child('libp2p'),
      )
      await node.start()
      undo.unshift(async () => node.stop())
      const membership = createMembership(
        {
          cluster: config.cluster,
          preset: config.preset,
          timers: config.timers,
          bootstrap: config.bootstrap,
        },
        { network: node, store: state.incarnations(), logger: log },
      )
      await membership.start()
      undo.unshift(() => membership.stop())
      const artifacts = await openArtifacts(
        { cluster: config.cluster, dataDir: config.dataDir, trust: config.trust, config: config.artifacts },
        {
          network: node,
          membership,
          db: state.sublevel('blobs'),
          catalogueDb: state.sublevel('distributions'),
          logger: log,
        },
      )
      undo.unshift(() => artifacts.close())
      await artifacts.distributor.start()
      const agent = new Agent(config, node, membership, artifacts, state, traffic, log)
      await agent.startApi()
      if (secret == null) {
        log.warn(
          `cluster "${config.cluster}" is OPEN: no --secret-file was given, so any node that can reach this one may join it. ` +
            'Create a secret with "shoal secret new FILE" and pass --secret-file FILE to every agent.',
        )
      }
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

  /** Stops the agent (safe to call twice; the second call waits for the first). */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.leave ?? true)
    return this.stopping
  }

  status(): StatusView {
    const self = this.membership.self
    return {
      id: self.id,
      cluster: this.config.cluster,
      addrs: self.addrs,
      state: self.state,
      incarnation: self.incarnation,
      manager: null,
      open: this.config.secretFile == null,
      members: countStates(this.membership.members()),
      distribution: null,
      rollouts: [],
      health: this.membership.stats().health,
      distributions: {
        known: this.artifacts.catalogue.list().length,
        complete: this.artifacts.catalogue.list().filter((e) => this.artifacts.distributor.isComplete(e.id))
          .length,
      },
      transfer: this.artifacts.distributor.stats(),
      traffic: { ...this.traffic },
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      version: VERSION,
      config: this.config,
    }
  }

  members(): MemberView[] {
    return this.membership.members().map(memberView)
  }

  get distributions(): ArtifactsApi {
    const { store, distributor } = this.artifacts
    return {
      blob: (sha256) => {
        const size = store.sizeOf(sha256)
        return size == null ? null : { sha256, size }
      },
      ingestBlob: (body, sha256) => store.ingest(body, sha256),
      publish: (body) => distributor.publish(body),
      list: () => distributor.list(),
      history: (name) => distributor.history(name),
      detail: (id) => distributor.detail(id),
      verify: () => store.verifyAll(),
    }
  }

  /** Bytes moved over all connections so far. */
  wireTraffic(): WireTraffic {
    return { ...this.traffic }
  }

  private async startApi(): Promise<void> {
    this.api = new ApiServer(this.config.api, this, this.log)
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
  }

  private async shutdown(leave: boolean): Promise<void> {
    const steps: Array<[string, () => Promise<void>]> = [
      ['leave', () => (leave ? this.membership.leave() : Promise.resolve())],
      ['artifacts', () => this.artifacts.close()],
      ['membership', () => this.membership.stop()],
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
