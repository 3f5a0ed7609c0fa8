/** Builds the OSGi example's releases under `out` (1.0, 1.1, broken); returns their folders. */
export function buildOsgiGreeting(out: string): Record<'1.0' | '1.1' | 'broken', string>
