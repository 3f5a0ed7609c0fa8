import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { isObserver, type Member, rolesOf } from '../membership/index.js'
import { runtimeAnnouncement } from '../runtime/index.js'
import type { Logger, Startable } from '../shared/index.js'
import { BadRequestError, messageOf, NotFoundError } from '../shared/index.js'
import { providersAnnouncement } from './announcement.js'
import { AmbiguousIdError, NodeTimeoutError, UnknownProviderError } from './errors.js'
import type { NodeSpec, Provider } from './provider.js'
import type { LaunchRecords } from './records.js'
import type { ReleaseFile } from './release-pack.js'

/** Where a node is in its life, as `shoal nodes` shows it. */
export type NodeState = 'launching' | 'joining' | 'fetching' | 'ready' | 'draining' | 'removing' | 'gone'

export interface OperationNode {
  handle: string | null
  id: string | null
  state: NodeState | 'failed'
  error: string | null
}

/** One `node add|copy|remove`, followed by the CLI until it ends. */
export interface Operation {
  id: string
  kind: 'add' | 'copy' | 'remove'
  state: 'running' | 'done' | 'failed'
  nodes: OperationNode[]
  /** What happened so far, oldest first. */
  steps: Array<{ at: string; text: string }>
  error: string | null
  startedAt: string
  finishedAt: string | null
}

export interface NodeOperationsInit {
  self: string
  /** The spec new nodes get: this agent's cluster, secret, trust keys, preset. */
  baseSpec: Omit<NodeSpec, 'bootstrap' | 'roles' | 'tags'>
  defaultProvider: string
  /** ms from launch to ready before an add fails. */
  readyTimeoutMs: number
  /** ms from a retire request to the node having left before a remove fails (or, forced, goes on). */
  leaveTimeoutMs: number
}

export interface NodeOperationsComponents {
  members(): Member[]
  /** Brings the members' runtime details up to date (a node that does not watch fetches them; membership). */
  freshDetails?(): Promise<void>
  /** This agent's own addresses (new nodes join through it). */
  selfAddrs(): string[]
  /** The version the cluster wants a node to run (null: none yet). */
  targetFor(id: string): string | null
  providers: Map<string, Provider>
  records: LaunchRecords
  /** Asks a member to drain, leave and stop (over libp2p). */
  retire(id: string): Promise<void>
  logger: Logger
}

/** Operations kept for `GET /api/operations/ID` after they end. */
const KEEP_OPERATIONS = 50

/**
 * Carries out `shoal node add|copy|remove` on this agent, whichever agent
 * launched the node: a launched node announces its provider and handle in its
 * member metadata, so any agent can find it and have it removed.
 */
export class NodeOperations implements Startable {
  private readonly operations = new Map<string, Operation>()
  private readonly log: Logger
  private stopped = false

  constructor(
    private readonly init: NodeOperationsInit,
    private readonly components: NodeOperationsComponents,
  ) {
    this.log = components.logger.child('nodes')
  }

  /** Reads the launch records (what `shoal nodes` lists of nodes still joining). */
  async start(): Promise<void> {
    await this.components.records.open()
  }

  /** Operations in progress end at their next step. */
  stop(): void {
    this.stopped = true
  }

  /**
   * The release tarball a URL's token grants, for `GET /releases/<token>`: nodes
   * this agent launched download Shoal from it (src/providers/releases.ts).
   */
  async release(token: string): Promise<ReleaseFile> {
    const releases = [...this.components.providers.values()].find((p) => p.releases != null)?.releases
    if (releases == null)
      throw new NotFoundError('this agent serves no Shoal release (no provider on it installs Shoal from it)')
    return releases.open(token)
  }

  get(id: string): Operation {
    const op = this.operations.get(id)
    if (op == null) throw new NotFoundError(`no operation ${id} on this agent`)
    return op
  }

  /** Members with their provider state, and nodes this agent launched that have not joined yet. */
  nodes(): Array<{
    id: string | null
    state: NodeState | 'failed'
    /** Its membership state, or null while it has not joined. */
    member: string | null
    provider: string | null
    handle: string | null
    distribution: string | null
  }> {
    const members = this.components.members().filter((m) => !isObserver(m))
    const removing = new Set(
      [...this.operations.values()]
        .filter((o) => o.kind === 'remove' && o.state === 'running')
        .flatMap((o) => o.nodes.map((n) => n.id)),
    )
    const rows: ReturnType<NodeOperations['nodes']> = members.map((m) => ({
      id: m.id,
      state: removing.has(m.id) ? ('removing' as const) : this.stateOf(m),
      member: m.state,
      provider: providersAnnouncement.of(m).provider ?? null,
      handle: providersAnnouncement.of(m).handle ?? null,
      distribution: runtimeAnnouncement.of(m).distribution ?? null,
    }))
    const known = new Set(rows.map((r) => r.handle))
    for (const record of this.components.records.list()) {
      if (known.has(record.handle) || record.state !== 'launching') continue
      rows.push({
        id: record.id,
        state: 'launching',
        member: null,
        provider: record.provider,
        handle: record.handle,
        distribution: null,
      })
    }
    return rows
  }

  /** Launches `count` nodes like `like` (its roles and tags) through `provider`. */
  add(count: number, options: { like?: string; provider?: string; kind?: 'add' | 'copy' }): Operation {
    if (!Number.isInteger(count) || count < 1 || count > 100)
      throw new BadRequestError('count must be a whole number from 1 to 100')
    const model = options.like == null ? null : this.member(options.like)
    const launchedAs = model == null ? {} : providersAnnouncement.of(model)
    const providerName = options.provider ?? launchedAs.provider ?? this.init.defaultProvider
    const provider = this.components.providers.get(providerName)
    if (provider == null)
      throw new UnknownProviderError(
        `no provider "${providerName}" on this agent (have: ${[...this.components.providers.keys()].join(', ')})`,
      )
    const roles = model == null ? [] : [...rolesOf(model)]
    const tags = { ...launchedAs.tags }
    const op = this.open(options.kind ?? 'add')
    this.say(op, `launching ${count} node(s) through the ${providerName} provider`)
    const spec: NodeSpec = {
      ...this.init.baseSpec,
      bootstrap: this.bootstrapList(),
      roles,
      tags,
    }
    void Promise.all(
      Array.from({ length: count }, (_, i) => {
        const node: OperationNode = { handle: null, id: null, state: 'launching', error: null }
        op.nodes.push(node)
        return this.launchOne(op, node, provider, spec, i)
      }),
    ).then(() => this.close(op))
    return op
  }

  /** Drains, retires (the node leaves and stops) and terminates a member through its provider. */
  remove(target: string, force: boolean): Operation {
    const member = this.member(target)
    if (member.id === this.init.self)
      throw new BadRequestError('an agent cannot remove itself; ask another agent (--api) to remove this one')
    const { provider: providerName = null, handle = null } = providersAnnouncement.of(member)
    const provider = providerName == null ? null : this.components.providers.get(providerName)
    if (providerName != null && provider == null)
      throw new UnknownProviderError(
        `node ${member.id} was launched by the ${providerName} provider, which this agent does not have`,
      )
    const op = this.open('remove')
    const node: OperationNode = { handle, id: member.id, state: 'draining', error: null }
    op.nodes.push(node)
    void this.removeOne(op, node, member, provider ?? null, handle, force).then(() => this.close(op))
    return op
  }

  // --- steps -----------------------------------------------------------------------------

  private async launchOne(
    op: Operation,
    node: OperationNode,
    provider: Provider,
    spec: NodeSpec,
    index: number,
  ): Promise<void> {
    const tag = `node ${index + 1}`
    try {
      const launched = await provider.launch(spec, (step) => this.say(op, `${tag}: ${step}`))
      node.handle = launched.handle
      node.id = launched.id
      await this.components.records.save(launched)
      node.state = 'joining'
      this.say(op, `${tag}: started as ${launched.id ?? launched.handle}; joining`)
      const deadline = Date.now() + this.init.readyTimeoutMs
      let last: NodeState = 'joining'
      for (;;) {
        if (this.stopped) throw new Error('this agent is stopping')
        await this.components.freshDetails?.()
        const member = this.components
          .members()
          .find((m) => providersAnnouncement.of(m).handle === launched.handle || m.id === launched.id)
        const state = member == null || member.state !== 'alive' ? 'joining' : this.stateOf(member)
        if (state !== last) {
          node.state = state
          this.say(op, `${tag}: ${state}`)
          last = state
        }
        if (state === 'ready') break
        if (Date.now() > deadline)
          throw new NodeTimeoutError(
            `${tag} (${launched.handle}) not ready after ${Math.round(this.init.readyTimeoutMs / 1000)} s (${state})`,
          )
        await sleep(100)
      }
      node.state = 'ready'
    } catch (err) {
      node.state = 'failed'
      node.error = messageOf(err)
      this.say(op, `${tag}: failed: ${node.error}`)
      if (node.handle != null) {
        const record = this.components.records.get(node.handle)
        if (record != null)
          await this.components.records.save({ ...record, state: 'failed', error: node.error })
      }
    }
  }

  private async removeOne(
    op: Operation,
    node: OperationNode,
    member: Member,
    provider: Provider | null,
    handle: string | null,
    force: boolean,
  ): Promise<void> {
    const short = member.id.slice(-8)
    try {
      if (member.state === 'alive' || member.state === 'suspect') {
        this.say(op, `${short}: draining (the load balancers stop sending it requests), then leaving`)
        try {
          await this.components.retire(member.id)
          const deadline = Date.now() + this.init.leaveTimeoutMs
          while (!this.hasLeft(member.id) && Date.now() < deadline) await sleep(100)
          if (!this.hasLeft(member.id))
            throw new NodeTimeoutError(`${short} did not leave within ${this.init.leaveTimeoutMs / 1000} s`)
          this.say(op, `${short}: drained and left the cluster`)
        } catch (err) {
          if (!force) throw err
          this.say(op, `${short}: could not retire it (${messageOf(err)}); --force: terminating anyway`)
        }
      } else this.say(op, `${short}: already ${member.state}`)
      node.state = 'removing'
      if (provider != null && handle != null) {
        await provider.terminate({ handle }, (step) => this.say(op, `${short}: ${step}`))
        const record = this.components.records.get(handle)
        if (record != null) await this.components.records.save({ ...record, state: 'terminated' })
      } else this.say(op, `${short}: no provider launched it; it stopped by itself`)
      node.state = 'gone'
      this.say(op, `${short}: removed`)
    } catch (err) {
      node.state = 'failed'
      node.error = messageOf(err)
      this.say(op, `${short}: failed: ${node.error}`)
    }
  }

  // --- helpers ---------------------------------------------------------------------------

  /** joining → fetching → ready, from what the member's runtime reports; draining while it drains. */
  private stateOf(member: Member): NodeState {
    if (member.state === 'left' || member.state === 'dead') return 'gone'
    const { components = [], runtime = {}, distribution } = runtimeAnnouncement.of(member)
    if (components.some((c) => c.state === 'draining')) return 'draining'
    const target = this.components.targetFor(member.id)
    if (target == null) return 'ready'
    const onTarget = distribution === target && runtime.phase === 'done'
    if (onTarget && components.every((c) => c.state === 'ready')) return 'ready'
    return runtime.phase == null || runtime.phase === 'idle' ? 'joining' : 'fetching'
  }

  private hasLeft(id: string): boolean {
    const m = this.components.members().find((x) => x.id === id)
    return m == null || m.state === 'left' || m.state === 'dead'
  }

  /** A member by full id or by a unique end of it (as tables show ids). */
  private member(id: string): Member {
    const members = this.components.members()
    const exact = members.find((m) => m.id === id)
    if (exact != null) return exact
    const matches = members.filter((m) => m.id.endsWith(id.replace(/^…/, '')))
    if (matches.length === 1) return matches[0]!
    if (matches.length > 1) throw new AmbiguousIdError(id, matches.length)
    throw new NotFoundError(`no member ${id} in the cluster`)
  }

  /** This agent and a few alive members: a new node joins through them. */
  private bootstrapList(): string[] {
    const others = this.components
      .members()
      .filter((m) => !m.self && m.state === 'alive' && !isObserver(m))
      .slice(0, 3)
      .flatMap((m) => m.addrs.slice(0, 1))
    return [...this.components.selfAddrs().slice(0, 1), ...others]
  }

  private open(kind: Operation['kind']): Operation {
    const op: Operation = {
      id: `op-${randomBytes(3).toString('hex')}`,
      kind,
      state: 'running',
      nodes: [],
      steps: [],
      error: null,
      startedAt: new Date().toISOString(),
      finishedAt: null,
    }
    this.operations.set(op.id, op)
    for (const old of [...this.operations.keys()].slice(0, -KEEP_OPERATIONS)) this.operations.delete(old)
    return op
  }

  private close(op: Operation): void {
    const failed = op.nodes.filter((n) => n.state === 'failed')
    op.state = failed.length > 0 ? 'failed' : 'done'
    op.error = failed.length > 0 ? failed.map((n) => n.error).join('; ') : null
    op.finishedAt = new Date().toISOString()
    this.say(op, op.state === 'done' ? 'done' : `failed: ${op.error}`)
  }

  private say(op: Operation, text: string): void {
    op.steps.push({ at: new Date().toISOString(), text })
    this.log.info(text, { operation: op.id })
  }
}
