export const FELIX_JAR: string
export function jdkTool(name: string): string | null
export function buildBundle(options: {
  sources: string
  manifest: string
  out: string
  classpath?: string[]
}): void
