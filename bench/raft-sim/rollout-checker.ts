/**
 * The invariants of the rollout simulation (rollout-simulation.ts), besides
 * Raft's own: checked as the run goes and once at the end.
 *
 * What the rollout engine promises (rollout-engine.ts): a rolling rollout gives
 * a node its turn (pending → updating) only while fewer than `maxUnavailable`
 * nodes are updating among those the deciding leader sees alive (alive or
 * suspect); a node its view declares dead holds no slot. So:
 *
 * - a committed decision that gives a turn leaves at most maxUnavailable
 *   updating nodes that the deciding leader did not see dead (a node missing
 *   from its view counts as dead when it is in truth down or cut off, as after
 *   every process restarted; one that is up and reachable, missing only because
 *   the leader's view is not complete yet, holds its slot);
 * - physically, at every step: at most maxUnavailable app nodes are up and in
 *   the middle of a switch (installing or switching) that their turn started;
 *   not counted: a node whose switch failed (it holds no slot: failures are
 *   bounded by the failure threshold), a node catching up after a rollout ended
 *   without it (`lost`), and a node whose slot a committed decision freed
 *   because the leader saw it dead or gone (still switching behind a cut, or
 *   back from a crash: the engine intends that overlap; it is counted apart);
 * - a node's progress only moves forward (pending → updating → done | failed |
 *   lost): never switched twice, never sent back (no abort in this mode); an
 *   app node never starts a switch to a version it ran or moved to before
 *   (rollout-nodes.ts); a finished record never changes;
 * - a node counted `done` had been ready on the new version for min-ready (in
 *   truth) when the decision was made; a node counted `lost` was dead in the
 *   deciding leader's view, or missing from it while down or cut off;
 * - Raft (raft-invariants.ts): one leader per term with a valid certificate,
 *   never two acting leaders, the same entry at every index on every node.
 * At the end, after every fault healed: every acknowledged rollout command made
 * exactly one record; every record is done (none superseded); each node in it is
 * done, failed with a reason, or lost; no node that stayed up and reachable
 * through a rollout was left out of it; every app node runs what the final
 * state wants (liveness).
 */
import type { Entry, Snapshot } from '../../src/manager/raft/index.js'
import type { ClusterState, RolloutRecord } from '../../src/manager/record.js'
import { targetOf } from '../../src/manager/record.js'
import { isFinished } from '../../src/manager/rollout-engine.js'
import { RaftInvariants } from './raft-invariants.js'
import type { RolloutHost } from './rollout-host.js'
import type { AppNode } from './rollout-nodes.js'

const RANK: Record<string, number> = {
  pending: 1,
  updating: 2,
  done: 3,
  failed: 3,
  lost: 3,
  reverting: 9,
  reverted: 9,
}

const decoder = new TextDecoder()

export interface RolloutCheckStats {
  /** Most app nodes unavailable at once by the engine's count, and with nodes whose slot was freed. */
  maxUnavailableSeen: number
  maxWithReturns: number
  /** Steps at which more than maxUnavailable nodes switched, the excess being nodes whose slot was freed. */
  excusedOverlaps: number
  /** Nodes counted lost though they had been neither down nor cut off (a dead verdict from lost gossip). */
  lostWhileReachable: number
  /** Committed turns given while an updating node was missing from the leader's view (down or cut off). */
  turnsPastUnseen: number
  /** Most `updating` nodes in one committed record. */
  maxUpdatingInRecord: number
  turns: number
  catchUps: number
  failedSwitches: number
}

export class RolloutChecker {
  readonly violations: string[] = []
  readonly raftChecks: RaftInvariants
  private checkedIndex = 0
  private readonly lastRecords = new Map<string, RolloutRecord>()
  /** The newest committed rollout record. */
  latest: RolloutRecord | null = null
  /** When the decisions that created each rollout and finished it were made (true time). */
  readonly startedAt = new Map<string, number>()
  readonly finishedAt = new Map<string, number>()
  /** What a decision broke, and the slots it freed (nodes the leader saw dead), by index:term: counted once it commits. */
  private readonly pending = new Map<string, { breaches: string[]; freed: string[]; pastUnseen: boolean }>()
  /** `rollout:node` whose slot a committed decision freed: the engine no longer counts that turn. */
  private readonly freed = new Set<string>()
  /** When each proposed entry (index:term) was decided, true time. */
  private readonly decidedAt = new Map<string, number>()
  readonly stats: RolloutCheckStats = {
    maxUnavailableSeen: 0,
    maxWithReturns: 0,
    excusedOverlaps: 0,
    lostWhileReachable: 0,
    turnsPastUnseen: 0,
    maxUpdatingInRecord: 0,
    turns: 0,
    catchUps: 0,
    failedSwitches: 0,
  }

  constructor(
    cluster: string,
    private readonly now: () => number,
    private readonly maxUnavailable: number,
    private readonly apps: ReadonlyMap<string, AppNode>,
  ) {
    this.raftChecks = new RaftInvariants(cluster, (message) => this.fail(message))
  }

  fail(message: string): void {
    if (this.violations.length < 20) this.violations.push(`t=${this.now().toFixed(1)}ms ${message}`)
  }

  // ── Raft ────────────────────────────────────────────────────────────────

  step(hosts: readonly RolloutHost[], changed: RolloutHost): void {
    const acting = this.raftChecks.step(hosts, changed).length
    if (acting > 1) this.fail(`${acting} nodes acting as leader at once`)
  }

  onApplied(host: RolloutHost, entry: Entry): void {
    const key =
      entry.kind === 'command'
        ? `${entry.request == null ? '-' : `${entry.request.client}#${entry.request.seq}`} ${decoder.decode(entry.data)}`
        : entry.kind
    const known = this.raftChecks.applied(entry, key)
    if (known === undefined) {
      const decided = this.pending.get(`${entry.index}:${entry.term}`)
      if (decided !== undefined) {
        for (const breach of decided.breaches) this.fail(breach)
        for (const slot of decided.freed) this.freed.add(slot)
        if (decided.pastUnseen) this.stats.turnsPastUnseen++
      }
    } else if (known.term !== entry.term || known.key !== key)
      this.fail(
        `${host.id} applied a different entry at index ${entry.index} (term ${entry.term} vs ${known.term})`,
      )
    if (entry.index > this.checkedIndex) {
      this.checkedIndex = entry.index
      this.records(host.machine.state(), entry.index, this.decidedAt.get(`${entry.index}:${entry.term}`))
    }
  }

  onSnapshotRestored(host: RolloutHost, snapshot: Snapshot): void {
    this.raftChecks.restored(host, snapshot)
    if (snapshot.meta.index > this.checkedIndex) {
      this.checkedIndex = snapshot.meta.index
      this.records(host.machine.state(), snapshot.meta.index, undefined)
    }
  }

  // ── the committed records ───────────────────────────────────────────────

  /** A newer committed state, decided at `decided` (true time; unknown for a snapshot). */
  private records(state: ClusterState, index: number, decided: number | undefined): void {
    const now = decided ?? this.now()
    this.latest = state.rollouts[0] ?? null
    for (const record of state.rollouts) {
      const before = this.lastRecords.get(record.id)
      if (!this.startedAt.has(record.id)) this.startedAt.set(record.id, now)
      if (isFinished(record) && !this.finishedAt.has(record.id)) this.finishedAt.set(record.id, now)
      if (record.state === 'superseded' || record.state === 'rolling-back' || record.state === 'aborted')
        this.fail(
          `rollout ${record.id} is ${record.state} at index ${index} (no abort, no second rollout at once)`,
        )
      for (const [node, status] of Object.entries(record.progress)) {
        const was = before?.progress[node]
        if (status === was) continue
        const rank = RANK[status] ?? 9
        const wasRank = was == null ? 0 : (RANK[was] ?? 9)
        if (
          rank <= wasRank ||
          rank === 9 ||
          (was === 'pending' && status !== 'updating' && status !== 'lost')
        )
          this.fail(`rollout ${record.id}: ${node} went ${was ?? 'absent'} → ${status} at index ${index}`)
      }
      if (before != null && isFinished(before) && JSON.stringify(before) !== JSON.stringify(record))
        this.fail(`rollout ${record.id} changed after it finished (${before.state}) at index ${index}`)
      const updating = Object.values(record.progress).filter((s) => s === 'updating').length
      this.stats.maxUpdatingInRecord = Math.max(this.stats.maxUpdatingInRecord, updating)
      this.lastRecords.set(record.id, record)
    }
  }

  /**
   * A leader proposed a change, decided on its view of the members: what it
   * broke (reported if it commits) and the slots it freed.
   */
  onDecided(
    host: RolloutHost,
    before: { id: string; progress: Record<string, string> } | null,
    after: RolloutRecord | undefined,
    at: { index: number; term: number },
  ): void {
    const now = this.now()
    const key = `${at.index}:${at.term}`
    this.decidedAt.set(key, now)
    if (after == null) return
    const seen = new Map(host.view.members().map((m) => [m.id, m.state]))
    const was = before?.id === after.id ? before.progress : {}
    const breaches: string[] = []
    const freed: string[] = []
    const where = `${host.id} (index ${at.index}, term ${at.term})`
    const updating = Object.keys(after.progress).filter((id) => after.progress[id] === 'updating')
    // A node the leader sees dead holds no slot. So does one missing from its view while it is in
    // truth down or cut off (after every process restarted, no view remembers it): as good as dead.
    // One missing from its view while up and reachable (a view not complete yet) still holds its slot.
    const gone = (id: string) => {
      if (seen.get(id) === 'dead') return true
      if (seen.has(id)) return false
      const app = this.apps.get(id)
      const back = app?.spells.at(-1)?.end
      return app == null || !app.reachable || (back != null && now - back < 2000)
    }
    for (const id of updating) if (gone(id)) freed.push(`${after.id}:${id}`)
    const holding = updating.filter((id) => !gone(id))
    const turn = updating.some((id) => was[id] !== 'updating')
    if (turn && holding.length > after.maxUnavailable)
      breaches.push(
        `${where} gave a turn in ${after.id} with ${holding.length} nodes updating that it did not see dead (${holding
          .map((id) => `${id}:${seen.get(id) ?? 'not in its view'}`)
          .join(', ')}) > maxUnavailable ${after.maxUnavailable}`,
      )
    for (const [node, status] of Object.entries(after.progress)) {
      if (status === was[node]) continue
      // Lost with a reason: the leader saw it dead, or it is gone (down or cut off) and forgotten.
      if (status === 'lost' && !gone(node))
        breaches.push(
          `${where} counted ${node} lost in ${after.id}, though ${
            seen.has(node) ? `it sees it ${seen.get(node)}` : 'it is up and reachable (not in its view yet)'
          }`,
        )
      if (status !== 'done') continue
      const readyAt = this.apps.get(node)?.firstReadyAt.get(after.distribution)
      if (readyAt == null || now - readyAt < after.minReadyMs - 1e-6)
        breaches.push(
          `${where} counted ${node} done in ${after.id}: ready on ${after.distribution} ${
            readyAt == null ? 'never' : `for ${(now - readyAt).toFixed(0)} ms`
          }, min-ready ${after.minReadyMs} ms`,
        )
    }
    const pastUnseen = turn && updating.some((id) => !seen.has(id) && gone(id))
    if (breaches.length > 0 || freed.length > 0) this.pending.set(key, { breaches, freed, pastUnseen })
  }

  // ── the fleet ───────────────────────────────────────────────────────────

  /** After every change of an app node: how many are unavailable because of the rollout. */
  fleet(): void {
    let counted = 0
    let excused = 0
    const names: string[] = []
    for (const app of this.apps.values()) {
      if (!app.up || !app.midSwitch || app.current?.cause !== 'turn') continue
      if (this.freed.has(`${app.current.rollout}:${app.id}`)) excused++
      else {
        counted++
        names.push(`${app.id}→${app.target}`)
      }
    }
    this.stats.maxUnavailableSeen = Math.max(this.stats.maxUnavailableSeen, counted)
    if (counted + excused > this.stats.maxWithReturns) this.stats.maxWithReturns = counted + excused
    if (excused > 0 && counted + excused > this.maxUnavailable) this.stats.excusedOverlaps++
    if (counted > this.maxUnavailable)
      this.fail(
        `${counted} nodes unavailable at once (${names.join(', ')}) > maxUnavailable ${this.maxUnavailable}`,
      )
  }

  // ── the end ─────────────────────────────────────────────────────────────

  final(
    state: ClusterState,
    acknowledged: ReadonlyArray<{ distribution: string; rollout: string }>,
    started: number,
  ): void {
    for (const app of this.apps.values())
      for (const s of app.switches) {
        if (s.cause === 'turn') this.stats.turns++
        else this.stats.catchUps++
      }
    for (const app of this.apps.values()) if (app.phase === 'failed') this.stats.failedSwitches++
    if (acknowledged.length !== started)
      this.fail(`liveness: ${started} rollout commands sent, ${acknowledged.length} acknowledged`)
    for (const ack of acknowledged) {
      const records = state.rollouts.filter((r) => r.distribution === ack.distribution)
      if (records.length !== 1 || records[0]!.id !== ack.rollout)
        this.fail(
          `rollout of ${ack.distribution} acknowledged as ${ack.rollout}; the final state has ${records
            .map((r) => r.id)
            .join(', ')}`,
        )
    }
    for (const record of state.rollouts) {
      if (record.state !== 'done') {
        const open = Object.entries(record.progress).filter(([, s]) => s !== 'done' && s !== 'failed')
        this.fail(
          `liveness: rollout ${record.id} is ${record.state} at the end (${open.map(([id, s]) => `${id}:${s}`).join(', ')})`,
        )
        continue
      }
      const finished = this.finishedAt.get(record.id) ?? this.now()
      const begun = this.startedAt.get(record.id) ?? 0
      for (const [node, status] of Object.entries(record.progress)) {
        if (status === 'failed' && record.failures?.[node] == null)
          this.fail(`rollout ${record.id}: ${node} failed with no reason recorded`)
        if (status === 'lost') {
          // The finishing leader saw it dead (checked when decided): down or cut off shortly before, or still?
          const app = this.apps.get(node)
          const why = app?.spells.find(
            (s) => s.start <= finished && (s.end == null || s.end >= finished - 5000),
          )
          if (why == null) this.stats.lostWhileReachable++
        }
        if (status !== 'done' && status !== 'failed' && status !== 'lost')
          this.fail(`rollout ${record.id} done with ${node} ${status}`)
      }
      for (const app of this.apps.values()) {
        if (record.progress[app.id] != null) continue
        const away = app.spells.some((s) => s.start <= finished && (s.end == null || s.end >= begun))
        if (!away) this.fail(`rollout ${record.id} skipped ${app.id}, up and reachable throughout`)
      }
    }
    for (const app of this.apps.values()) {
      const wanted = targetOf(state, app.id)
      if (
        !app.up ||
        app.midSwitch ||
        app.target !== wanted ||
        (app.active !== wanted && app.phase !== 'failed')
      )
        this.fail(
          `liveness: ${app.id} runs ${app.active} (target ${app.target}, ${app.phase}${app.up ? '' : ', down'}), the state wants ${wanted}`,
        )
    }
  }
}
