/** examples/educa/build, where `node examples/educa/build.mjs` writes by default. */
export declare const DEFAULT_OUT: string

/** Share of real requests 1.2 answers with 500 unless told otherwise: 0.1. */
export declare const DEFAULT_FAILURE_RATE: number

/** Milliseconds 1.2-slow adds to each real request unless told otherwise: 150. */
export declare const DEFAULT_DELAY_MS: number

/**
 * The versions buildEduca writes: 1.0 and 1.1 are good; 1.2 passes its health
 * check but answers a share of real requests with 500; 1.2-slow answers every
 * request correctly but late.
 */
export type EducaVersion = '1.0' | '1.1' | '1.2' | '1.2-slow'

/** Every version buildEduca writes, in order. */
export declare const EDUCA_VERSIONS: readonly EducaVersion[]

/** The config written into the bad versions' distribution.json (what their web component reads). */
export interface EducaOptions {
  /** `config.failureRate` of 1.2: the share (0 to 1) of real requests answered with 500. Default 0.1. */
  failureRate?: number
  /** `config.delayMs` of 1.2-slow: the delay added to each real request, 0 to 60000. Default 150. */
  delayMs?: number
}

/**
 * Writes OUT/educa-1.0, educa-1.1, educa-1.2 and educa-1.2-slow (ready for
 * `shoal publish`) and returns their absolute paths by version.
 */
export declare function buildEduca(
  outDir?: string,
  options?: EducaOptions,
): Promise<Record<EducaVersion, string>>
