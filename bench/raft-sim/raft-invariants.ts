/**
 * Raft's own invariants, which both checkers (checker.ts, rollout-checker.ts)
 * hold after every event:
 * - election safety: at most one leader per term, and every leader's
 *   certificate is signed by a majority of its voters;
 * - how many nodes act as leader (leader with a valid lease) at one instant
 *   (each checker says how it reports two);
 * - log matching on what is applied: the first entry applied at an index is
 *   what every node must apply there, and a snapshot restored at an index has
 *   that entry's term.
 */
import { type Entry, type NodeId, type Snapshot, verifyCertificate } from '../../src/manager/raft/index.js'
import { fakeVerifier } from './keys.js'
import type { AnyRaftProcess } from './raft-process.js'

/** An applied entry as the checks compare it: its term and what it carries. */
export interface AppliedAt {
  readonly term: number
  readonly key: string
}

export class RaftInvariants {
  /** Leaders seen, one per term. */
  leaders = 0
  /** Most nodes acting as leader at one instant. */
  maxActing = 0
  private readonly leaderOfTerm = new Map<number, NodeId>()
  private readonly atIndex = new Map<number, AppliedAt>()

  constructor(
    private readonly cluster: string,
    private readonly fail: (message: string) => void,
  ) {}

  /** After every event on `changed`: its leadership, and who acts as leader now. */
  step<Process extends AnyRaftProcess>(processes: readonly Process[], changed: Process): Process[] {
    if (changed.alive) {
      const status = changed.raft.status()
      if (status.role === 'leader') {
        const known = this.leaderOfTerm.get(status.term)
        if (known === undefined) {
          this.leaderOfTerm.set(status.term, changed.id)
          this.leaders++
          const cert = status.certificate
          if (
            cert == null ||
            !verifyCertificate(cert, status.config.voters, { cluster: this.cluster, verifier: fakeVerifier })
          )
            this.fail(`leader ${changed.id} of term ${status.term} has no valid majority certificate`)
        } else if (known !== changed.id)
          this.fail(`two leaders in term ${status.term}: ${known} and ${changed.id}`)
      }
    }
    const acting = processes.filter((p) => p.alive && p.raft.isActingLeader())
    if (acting.length > this.maxActing) this.maxActing = acting.length
    return acting
  }

  /**
   * An entry applied somewhere, compared by `key`: returns what was applied at
   * its index before (the caller reports a difference), or undefined when it is
   * the first there.
   */
  applied(entry: Entry, key: string): AppliedAt | undefined {
    const known = this.atIndex.get(entry.index)
    if (known === undefined) this.atIndex.set(entry.index, { term: entry.term, key })
    return known
  }

  restored(process: AnyRaftProcess, snapshot: Snapshot): void {
    const known = this.atIndex.get(snapshot.meta.index)
    if (known !== undefined && known.term !== snapshot.meta.term)
      this.fail(
        `${process.id} restored a snapshot at ${snapshot.meta.index}@term${snapshot.meta.term}, applied elsewhere at term ${known.term}`,
      )
  }
}
