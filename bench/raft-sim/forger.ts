/**
 * A member that holds the cluster secret but was never elected: it talks to the
 * nodes over authenticated links (its `from` is its own id), knows everything the
 * cluster says (it reads the nodes' state), and tries to be followed anyway —
 * higher terms, votes with signatures it made up, replayed real certificates,
 * forged snapshots, forced elections. The checker fails the run if any node ever
 * applies one of its commands or counts it as a leader.
 */
import type { Certificate, Entry, Message, NodeId, Snapshot } from '../../src/manager/raft/index.js'
import { pick, type Random } from '../random.js'
import { FORGER_CLIENT } from './checker.js'
import type { SimHost } from './host.js'
import { fakeSigner } from './keys.js'

export const FORGER_ID = 'forger'

const encoder = new TextEncoder()

export class Forger {
  private seq = 0
  sent = 0

  constructor(
    private readonly random: Random,
    private readonly send: (m: Message) => void,
  ) {}

  /** A burst of forged messages at random live nodes. */
  attack(hosts: readonly SimHost[]): void {
    const live = hosts.filter((h) => h.alive)
    if (live.length === 0) return
    const maxTerm = Math.max(...live.map((h) => h.raft.status().term))
    const stolen = live.map((h) => h.raft.status().certificate).find((c) => c != null) ?? null
    for (let i = 0; i < 4; i++) {
      const target = pick(this.random, live)
      const status = target.raft.status()
      const term = maxTerm + 1 + Math.floor(this.random() * 50)
      const kind = Math.floor(this.random() * 7)
      const cert = kind === 6 && stolen != null ? stolen : this.fakeCertificate(term, status.config.voters)
      const base = { from: FORGER_ID, to: target.id, term }
      const leaderPart = { certificate: cert, chain: null, sentAt: 0 }
      const entries: Entry[] = [
        {
          kind: 'command',
          index: status.lastIndex + 1,
          term,
          request: { client: FORGER_CLIENT, seq: ++this.seq },
          data: encoder.encode('forged'),
        },
      ]
      // A configuration record naming itself a voter, "appended" under its made-up certificate.
      const chain = [
        {
          index: status.lastIndex + 1,
          term,
          config: { voters: [FORGER_ID, ...status.config.voters].sort(), learners: [] },
          certificate: cert,
          signature: fakeSigner(FORGER_ID).sign(encoder.encode('config')),
        },
      ]
      let m: Message
      switch (kind) {
        case 0:
        case 6:
          m = {
            ...base,
            ...leaderPart,
            type: 'append',
            prevLogIndex: status.lastIndex,
            prevLogTerm: target.raft.status().term,
            entries,
            commit: status.lastIndex + 1,
          }
          break
        case 1:
          m = { ...base, ...leaderPart, type: 'heartbeat', commit: status.lastIndex + 5 }
          break
        case 2:
          m = {
            ...base,
            type: 'vote',
            lastLogIndex: 1e9,
            lastLogTerm: term,
            chain,
            transfer: this.random() < 0.5,
          }
          break
        case 3:
          m = { ...base, type: 'pre-vote', lastLogIndex: 1e9, lastLogTerm: term, chain }
          break
        case 4:
          m = { ...base, ...leaderPart, type: 'timeout-now' }
          break
        default:
          m = {
            ...base,
            ...leaderPart,
            type: 'snapshot',
            snapshot: this.fakeSnapshot(status.lastIndex + 100, term),
          }
      }
      this.sent++
      this.send(m)
      // Answers with a high term, as if it were a member the leader heard from.
      const leader = live.find((h) => h.raft.status().role === 'leader')
      if (leader != null && this.random() < 0.5) {
        this.sent++
        this.send({
          type: 'append-response',
          from: FORGER_ID,
          to: leader.id,
          term,
          success: true,
          index: 1e9,
          hint: null,
          sentAt: 1e9,
        })
      }
    }
  }

  private fakeCertificate(term: number, voters: readonly NodeId[]): Certificate {
    const own = fakeSigner(FORGER_ID).sign(encoder.encode(`vote ${term}`))
    const made = (): Uint8Array => Uint8Array.from({ length: 8 }, () => Math.floor(this.random() * 256))
    return {
      term,
      leader: FORGER_ID,
      votes: [{ voter: FORGER_ID, signature: own }, ...voters.map((voter) => ({ voter, signature: made() }))],
    }
  }

  private fakeSnapshot(index: number, term: number): Snapshot {
    const data = encoder.encode(
      JSON.stringify({ applied: [{ client: FORGER_CLIENT, seq: 1, index }], sessions: { sessions: [] } }),
    )
    const config = { voters: [FORGER_ID], learners: [] }
    return {
      meta: { index, term, config: { index, term, config, certificate: null, signature: null }, history: [] },
      data,
    }
  }
}
