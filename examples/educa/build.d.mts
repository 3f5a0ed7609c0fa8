/** examples/educa/build, where `node examples/educa/build.mjs` writes by default. */
export declare const DEFAULT_OUT: string

/** Writes OUT/educa-1.0 and OUT/educa-1.1 (ready for `shoal publish`) and returns their absolute paths. */
export declare function buildEduca(outDir?: string): Promise<{ '1.0': string; '1.1': string }>
