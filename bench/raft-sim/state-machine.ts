/**
 * The replicated state the simulation and the unit tests check: the list of
 * applied commands in log order, each applied once thanks to ClientSessions.
 * A command's result is its position in that list, which is what a client is
 * told when it is acknowledged.
 */
import { ClientSessions, type Entry, type SessionsData, type Snapshot } from '../../src/manager/raft/index.js'

export interface AppliedCommand {
  readonly client: string
  readonly seq: number
  /** The log index it was applied from (its first copy). */
  readonly index: number
}

interface Data {
  applied: AppliedCommand[]
  sessions: SessionsData<number>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class ListStateMachine {
  applied: AppliedCommand[] = []
  sessions = new ClientSessions<number>()
  lastIndex = 0

  /** Applies one committed entry; for a command, returns its position (1-based) or null when nothing applies. */
  apply(entry: Entry): { position: number | null; duplicate: boolean } {
    this.lastIndex = entry.index
    if (entry.kind !== 'command' || entry.request == null) return { position: null, duplicate: false }
    const request = entry.request
    const { outcome, result } = this.sessions.applyOnce(request, () => {
      this.applied.push({ client: request.client, seq: request.seq, index: entry.index })
      return this.applied.length
    })
    return { position: result, duplicate: outcome.status === 'duplicate' }
  }

  encode(): Uint8Array {
    const data: Data = { applied: this.applied, sessions: this.sessions.toData() }
    return encoder.encode(JSON.stringify(data))
  }

  restore(snapshot: Snapshot): void {
    this.lastIndex = snapshot.meta.index
    if (snapshot.data.byteLength === 0) {
      this.applied = []
      this.sessions = new ClientSessions<number>()
      return
    }
    const data = JSON.parse(decoder.decode(snapshot.data)) as Data
    this.applied = data.applied
    this.sessions = ClientSessions.fromData(data.sessions)
  }
}
