/** examples/educa-osgi/build, where `node examples/educa-osgi/build.mjs` writes by default. */
export declare const DEFAULT_OUT: string

/** The OSGi API jars the bundles compile against (and the Debian package holding each). */
export declare const OSGI_API_JARS: readonly { path: string; debian: string }[]

/** The versions buildEducaOsgi writes: 1.1 adds a level to each course (and a fourth course). */
export type EducaOsgiVersion = '1.0' | '1.1'

/** Every version buildEducaOsgi writes, in order. */
export declare const EDUCA_OSGI_VERSIONS: readonly EducaOsgiVersion[]

/**
 * Compiles the bundles (javac --release 11) and writes OUT/educa-osgi-1.0 and
 * OUT/educa-osgi-1.1, each holding educa.api.jar, educa.catalog.jar, educa.web.jar
 * and distribution.json (ready for `shoal publish`); returns their absolute paths
 * by version. Deterministic: building again gives the same bytes, and both versions
 * hold the same educa.api.jar. Rejects, saying what is missing, without a JDK 11+
 * (JAVA_HOME or the PATH) or the OSGi API jars.
 */
export declare function buildEducaOsgi(outDir?: string): Promise<Record<EducaOsgiVersion, string>>
