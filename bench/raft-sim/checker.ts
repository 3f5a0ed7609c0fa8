/**
 * The invariants, checked as the simulation runs and once at the end.
 *
 * At every step (after every event):
 * - Raft's own (raft-invariants.ts): election safety, no two nodes acting as
 *   leader (leader with a valid lease) at the same instant, and state machine
 *   safety and log matching on what is committed: every node applies, at each
 *   index, the same entry (same term, same command);
 * - exactly once: a command has one position, a position one command, and a
 *   forged command never applies;
 * - an acknowledged command's answer is its real position.
 * At the end, after the faults heal:
 * - every acknowledged command is in every member's state, exactly once;
 *   no command reported `fail` is anywhere;
 * - real-time order (linearizability of writes): a command acknowledged before
 *   another was invoked comes first;
 * - reads: a read sees every write acknowledged before it was invoked, and
 *   nothing invoked after it answered;
 * - liveness: the cluster converged and every client finished.
 */
import type { Entry, NodeId, Snapshot } from '../../src/manager/raft/index.js'
import type { Op, WriteOp } from './clients.js'
import type { SimHost } from './host.js'
import { RaftInvariants } from './raft-invariants.js'

export const FORGER_CLIENT = 'forger'

function keyOf(entry: Entry): string {
  if (entry.kind === 'command')
    return entry.request == null ? 'command' : `${entry.request.client}#${entry.request.seq}`
  return entry.kind
}

export class Checker {
  readonly violations: string[] = []
  readonly raftChecks: RaftInvariants
  private readonly keyAtPosition = new Map<number, string>()
  private readonly positionOfKey = new Map<string, number>()

  constructor(
    cluster: string,
    private readonly now: () => number,
  ) {
    this.raftChecks = new RaftInvariants(cluster, (message) => this.fail(message))
  }

  private fail(message: string): void {
    if (this.violations.length < 20) this.violations.push(`t=${this.now().toFixed(1)}ms ${message}`)
  }

  /** After every event: leaders per term, certificates, acting leaders. */
  step(hosts: readonly SimHost[], changed: SimHost): void {
    const acting = this.raftChecks.step(hosts, changed)
    if (acting.length > 1) {
      const terms = acting.map((h) => `${h.id}(term ${h.raft.status().term})`)
      this.fail(`${acting.length} nodes acting as leader at once: ${terms.join(', ')}`)
    }
  }

  onApplied(host: SimHost, entry: Entry, position: number | null): void {
    const key = keyOf(entry)
    const known = this.raftChecks.applied(entry, key)
    if (known !== undefined && (known.term !== entry.term || known.key !== key))
      this.fail(
        `${host.id} applied ${key}@term${entry.term} at index ${entry.index}, another node ${known.key}@term${known.term}`,
      )
    if (entry.kind === 'command' && entry.request?.client === FORGER_CLIENT)
      this.fail(`${host.id} applied a forged command at index ${entry.index}`)
    if (position != null) this.place(host.id, key, position)
  }

  onSnapshotRestored(host: SimHost, snapshot: Snapshot): void {
    this.raftChecks.restored(host, snapshot)
    host.machine.applied.forEach((c, i) => {
      this.place(host.id, `${c.client}#${c.seq}`, i + 1)
    })
  }

  /** A client was told `position` for its command. */
  onAcknowledged(op: WriteOp): void {
    const key = `${op.client}#${op.seq}`
    const at = this.keyAtPosition.get(op.position)
    if (at !== key)
      this.fail(`${key} acknowledged at position ${op.position}, which holds ${at ?? 'nothing yet'}`)
  }

  private place(host: NodeId, key: string, position: number): void {
    const at = this.keyAtPosition.get(position)
    if (at === undefined) this.keyAtPosition.set(position, key)
    else if (at !== key) this.fail(`${host}: position ${position} holds ${key}, elsewhere ${at}`)
    const pos = this.positionOfKey.get(key)
    if (pos === undefined) this.positionOfKey.set(key, position)
    else if (pos !== position)
      this.fail(`${host}: ${key} applied at position ${position} and at ${pos} (twice)`)
  }

  /** The end-of-run checks; `members` are the nodes of the final configuration. */
  final(
    hosts: readonly SimHost[],
    members: readonly NodeId[],
    history: readonly Op[],
    clientsDone: boolean,
  ): void {
    const live = hosts.filter((h) => h.alive && members.includes(h.id))
    if (live.length === 0) {
      this.fail('no member is up at the end')
      return
    }
    const reference = live.map((h) => h.machine.applied).sort((a, b) => b.length - a.length)[0]!
    const refKeys = reference.map((c) => `${c.client}#${c.seq}`)
    for (const host of live) {
      const mine = host.machine.applied
      if (mine.length !== reference.length)
        this.fail(`liveness: ${host.id} applied ${mine.length} commands, another member ${reference.length}`)
      for (let i = 0; i < mine.length; i++)
        if (`${mine[i]!.client}#${mine[i]!.seq}` !== refKeys[i]) {
          this.fail(`${host.id} diverges from the reference at position ${i + 1}`)
          break
        }
    }
    const seen = new Set<string>()
    for (const k of refKeys) {
      if (seen.has(k)) this.fail(`${k} applied twice`)
      seen.add(k)
    }
    if (!clientsDone) this.fail('liveness: a client still had an operation pending at the end')

    const writes = history.filter((o): o is WriteOp => o.kind === 'write')
    const positionOf = new Map(refKeys.map((k, i) => [k, i + 1] as const))
    for (const w of writes) {
      const key = `${w.client}#${w.seq}`
      const at = positionOf.get(key)
      if (w.status === 'ok' && at !== w.position)
        this.fail(
          `acknowledged ${key} (position ${w.position}) is ${at == null ? 'missing' : `at ${at}`} in the final state`,
        )
      if (w.status === 'fail' && at != null) this.fail(`${key} was reported failed but applied at ${at}`)
    }

    // Real time: a write completed before another was invoked must come first.
    const acked = writes.filter((w) => w.status === 'ok').sort((a, b) => a.completedAt - b.completedAt)
    const prefixMax: number[] = []
    for (const w of acked) prefixMax.push(Math.max(prefixMax.at(-1) ?? 0, w.position))
    const maxPositionAckedBefore = (t: number): number => {
      let lo = 0
      let hi = acked.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (acked[mid]!.completedAt < t) lo = mid + 1
        else hi = mid
      }
      return lo === 0 ? 0 : prefixMax[lo - 1]!
    }
    for (const w of writes) {
      const at = positionOf.get(`${w.client}#${w.seq}`)
      if (at == null) continue
      const before = maxPositionAckedBefore(w.invokedAt)
      if (before >= at)
        this.fail(
          `${w.client}#${w.seq} at ${at} comes before a write acknowledged before it was invoked (${before})`,
        )
    }

    // Reads: see every write acknowledged before the read began, nothing invoked after it ended.
    const invokedAt = new Map<string, number>(writes.map((w) => [`${w.client}#${w.seq}`, w.invokedAt]))
    const invokePrefixMax: number[] = []
    for (const k of refKeys)
      invokePrefixMax.push(Math.max(invokePrefixMax.at(-1) ?? 0, invokedAt.get(k) ?? 0))
    for (const r of history) {
      if (r.kind !== 'read' || r.status !== 'ok') continue
      const mustSee = maxPositionAckedBefore(r.invokedAt)
      if (r.count < mustSee)
        this.fail(
          `read by ${r.client} at ${r.invokedAt} saw ${r.count} commands, missing acknowledged ${mustSee}`,
        )
      if (r.count > 0 && (invokePrefixMax[r.count - 1] ?? 0) >= r.completedAt)
        this.fail(`read by ${r.client} answered at ${r.completedAt} saw a write invoked later`)
    }
  }
}
