import { BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MS, MAX_PIPELINE, MIN_PIPELINE } from './constants.js'

interface PeerState {
  inflight: number
  /** Bytes per second per request stream, smoothed (EWMA); 0 until a chunk arrived. */
  rate: number
  /** ms from sending a request on an idle pipe to its first answer, smoothed; 0 until measured. */
  latency: number
  busyUntil: number
  busyStreak: number
}

/**
 * What this node asks of each peer, across every blob it fetches: requests in
 * flight, and how many it may have. The budget is the pipeline that keeps the
 * peer's link busy: the bandwidth-delay product in chunks, plus one so a chunk is
 * always queued behind the one being sent (MIN_PIPELINE to MAX_PIPELINE). A peer
 * that answered `busy` (no upload slot) is left alone for a back-off that doubles.
 */
export class PeerBudget {
  private readonly peers = new Map<string, PeerState>()

  constructor(private readonly now: () => number = Date.now) {}

  /** Requests this peer may still take now (0 while it is busy). */
  room(peer: string, chunkSize: number): number {
    const state = this.peers.get(peer)
    if (state == null) return MIN_PIPELINE
    if (state.busyUntil > this.now()) return 0
    return Math.max(0, this.depth(state, chunkSize) - state.inflight)
  }

  inflight(peer: string): number {
    return this.peers.get(peer)?.inflight ?? 0
  }

  /** Expected ms for one chunk from this peer once its turn comes (null before any measure). */
  expectedMs(peer: string, bytes: number): number | null {
    const state = this.peers.get(peer)
    if (state == null || state.rate <= 0) return null
    return state.latency + (bytes * 1000) / state.rate
  }

  /** A request goes out; the returned function reports how it ended. */
  begin(peer: string): (outcome: RequestOutcome) => void {
    const state = this.state(peer)
    const idle = state.inflight === 0
    state.inflight++
    const sent = this.now()
    let done = false
    return (outcome) => {
      if (done) return
      done = true
      state.inflight--
      const elapsed = Math.max(1, this.now() - sent)
      if (outcome.kind === 'ok') {
        state.busyStreak = 0
        // A pipelined answer waited behind others: its elapsed time is not the pipe's delay.
        if (idle) state.latency = smooth(state.latency, outcome.firstByteMs ?? elapsed)
        const transferMs = Math.max(1, elapsed - (outcome.firstByteMs ?? 0))
        state.rate = smooth(state.rate, (outcome.bytes * 1000) / transferMs)
      } else if (outcome.kind === 'busy') {
        state.busyStreak++
        state.busyUntil =
          this.now() + Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MS * 2 ** (state.busyStreak - 1))
      }
    }
  }

  private depth(state: PeerState, chunkSize: number): number {
    if (state.rate <= 0 || state.latency <= 0) return MIN_PIPELINE
    const chunksInFlight = Math.ceil((state.rate * state.latency) / 1000 / chunkSize)
    return Math.min(MAX_PIPELINE, Math.max(MIN_PIPELINE, chunksInFlight + 1))
  }

  private state(peer: string): PeerState {
    let state = this.peers.get(peer)
    if (state == null) {
      state = { inflight: 0, rate: 0, latency: 0, busyUntil: 0, busyStreak: 0 }
      this.peers.set(peer, state)
    }
    return state
  }
}

export type RequestOutcome =
  | { kind: 'ok'; bytes: number; firstByteMs?: number }
  | { kind: 'busy' }
  | { kind: 'failed' }

function smooth(previous: number, sample: number): number {
  return previous <= 0 ? sample : previous * 0.7 + sample * 0.3
}
