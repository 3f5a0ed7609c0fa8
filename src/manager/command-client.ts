import { setTimeout as sleep } from 'node:timers/promises'
import type { Member } from '../membership/index.js'
import { BadRequestError } from '../shared/index.js'
import {
  COMMAND_VISIBLE_POLL_MS,
  COMMAND_VISIBLE_WAIT_MS,
  LEARN_POLL_MS,
  LEARN_WAIT_MS,
} from './constants.js'
import type { ManagerCommand, Unpublishing } from './decisions.js'
import { UnknownDistributionError } from './errors.js'
import type { ClusterState, RolloutRecord } from './record.js'
import { type RolloutView, rolloutView } from './rollout-view.js'

export interface CommandClientComponents {
  /** The manager, wherever it runs: this node's `Manager` carries a command out or forwards it. */
  manager: {
    /** The decision, with the log index it was committed at. */
    commandAt(command: ManagerCommand): Promise<{ rollout: RolloutRecord; index: number }>
    unpublish(input: { id: string; requestedBy?: string }): Promise<Unpublishing>
  }
  /** The cluster state this node holds. */
  store: { current(): ClusterState }
  members(): Member[]
  /** The versions this node holds in its catalogue. */
  versions: {
    known(id: string): boolean
    /**
     * Throws when a known version cannot be rolled out: it breaks the distribution
     * rules (published before agents checked them, or by an older agent).
     */
    check(id: string): void
  }
}

/**
 * Operator commands on the manager as one agent takes them: a rollout's version is
 * checked here first (a typo fails now, not on the nodes), and every answer waits
 * (briefly) until this agent holds the state that shows it, so that a client's next
 * read from the same agent agrees with what it was told (read-your-writes).
 */
export class CommandClient {
  constructor(private readonly components: CommandClientComponents) {}

  /**
   * Starts a rollout of `input.distribution` ("NAME@VERSION"). A version published
   * through another agent a moment ago may still be on its way here: it is waited
   * for up to LEARN_WAIT_MS.
   */
  async rollout(input: Record<string, unknown>, requestedBy: string): Promise<RolloutView> {
    const { distribution } = input
    if (typeof distribution !== 'string' || !distribution.includes('@'))
      throw new BadRequestError('give the version to roll out as "distribution": "NAME@VERSION"')
    const { versions } = this.components
    const deadline = Date.now() + LEARN_WAIT_MS
    while (!versions.known(distribution) && Date.now() < deadline) await sleep(LEARN_POLL_MS)
    if (!versions.known(distribution)) throw new UnknownDistributionError(distribution)
    versions.check(distribution)
    return this.command({ ...input, op: 'rollout', distribution } as ManagerCommand, requestedBy)
  }

  /**
   * rollout, rollback, approve, pause, resume, abort: carried out by the manager,
   * answered once this agent's cluster state has reached the decision's log index (or COMMAND_VISIBLE_WAIT_MS passed).
   * A malformed command throws the command schema's ZodError.
   */
  async command(command: ManagerCommand, requestedBy: string): Promise<RolloutView> {
    const { manager, store, members } = this.components
    const { rollout: record, index } = await manager.commandAt({ ...command, requestedBy } as ManagerCommand)
    // Read-your-writes: answered once this agent holds the state the decision was committed
    // in (its log index), not merely one that lists the rollout: a pause or an approve of a
    // rollout it already held was answered before this agent saw it (a bench saw 1,200 of 1,200).
    await this.until(() => {
      const state = store.current()
      return state.seq >= index && state.rollouts.some((r) => r.id === record.id)
    })
    return rolloutView(record, members())
  }

  /**
   * `shoal unpublish`: the manager records the version as unpublished (or refuses one in
   * use); answered once this agent has dropped it too, so a client's next read here agrees.
   */
  async unpublish(id: string, requestedBy: string): Promise<Unpublishing> {
    const done = await this.components.manager.unpublish({ id, requestedBy })
    await this.until(() => !this.components.versions.known(id))
    return done
  }

  private async until(seen: () => boolean): Promise<void> {
    const deadline = Date.now() + COMMAND_VISIBLE_WAIT_MS
    while (!seen() && Date.now() < deadline) await sleep(COMMAND_VISIBLE_POLL_MS)
  }
}
