/** ms between two samples of the transfer counters, for the current transfer rate. */
export const RATE_SAMPLE_MS = 1000

/**
 * ms the current transfer rate averages over: long enough to smooth the bursts of
 * chunk-sized writes, short enough that a stalled download shows as 0 within seconds.
 */
export const RATE_WINDOW_MS = 10_000
