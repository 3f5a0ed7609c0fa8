import { z } from 'zod'
import type { ManagementClient, OsgiPropertyValue } from './management-client.js'

/**
 * Configuration the OSGi way (docs/osgi.md, "Configuration Admin"): the
 * distribution's `config.osgi` maps a PID to its properties, and the management
 * agent hands each PID to Configuration Admin (or, without one, to the
 * ManagedServices registered with that PID).
 */

/** A PID: `name`, or `factory~name` for a named factory configuration. No tabs or line breaks (the wire). */
const pid = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\t\n\r~]+(~[^\t\n\r~]+)?$/, 'a PID is "name" or "factory~name"')

const scalar = z.union([z.string(), z.number(), z.boolean()])
const value = z.union([
  scalar,
  z.null(),
  z.array(z.string()),
  z.array(z.number()),
  z.array(z.boolean()),
]) satisfies z.ZodType<OsgiPropertyValue>

/** Names Configuration Admin sets itself (case-insensitive, as its keys are). */
const RESERVED = new Set(['service.pid', 'service.factorypid', 'service.bundlelocation'])

const properties = z.record(z.string().min(1).max(256), value).superRefine((props, ctx) => {
  const seen = new Set<string>()
  for (const key of Object.keys(props)) {
    const folded = key.toLowerCase()
    if (RESERVED.has(folded))
      ctx.addIssue({ code: 'custom', message: `${key} is set by Configuration Admin`, path: [key] })
    if (seen.has(folded))
      ctx.addIssue({ code: 'custom', message: `${key} twice (property names ignore case)`, path: [key] })
    seen.add(folded)
  }
})

/**
 * `config.osgi` of a distribution: PID → properties. Values are strings, numbers,
 * booleans or arrays of one of these (Configuration Admin holds no nested
 * objects); null leaves a key out. For checking a manifest at publish time too.
 */
export const osgiConfigSchema = z.record(pid, properties)
export type OsgiConfig = z.output<typeof osgiConfigSchema>

/** The PIDs to configure from a distribution's config (with what the runtime adds, e.g. shoal.http.port): `config.osgi`, checked. */
export function osgiConfigOf(config: unknown): OsgiConfig {
  const osgi = config != null && typeof config === 'object' ? (config as { osgi?: unknown }).osgi : undefined
  if (osgi == null) return {}
  const parsed = osgiConfigSchema.safeParse(osgi)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = `config.osgi${issue.path.map((p) => `[${JSON.stringify(p)}]`).join('')}`
    // zod's own words ("Invalid key in record", "Invalid input") do not say what would do.
    const message =
      issue.code === 'invalid_key'
        ? issue.path.length <= 1
          ? 'a PID is "name" or "factory~name" (at most 256 characters, no tab or line break)'
          : 'a property name has 1 to 256 characters'
        : issue.code === 'invalid_union'
          ? 'a value is a string, number, boolean, null or an array of strings, of numbers or of booleans (Configuration Admin holds no nested objects)'
          : issue.code === 'invalid_type' && issue.path.length === 1
            ? 'the properties of a PID are a JSON object'
            : issue.message
    throw new Error(`${where}: ${message}`)
  }
  return parsed.data
}

/** What applyOsgiConfig did. */
export interface OsgiConfigChange {
  /** PIDs created or whose properties changed. */
  changed: string[]
  /** PIDs deleted: configured before, absent now. */
  removed: string[]
  /** Delivered through Configuration Admin (false: the agent's own ManagedService delivery). */
  configurationAdmin: boolean
}

/**
 * Brings the framework's configurations to `wanted`: deletes the PIDs Shoal set
 * before that `wanted` no longer has, then creates or updates every PID (the
 * agent leaves a PID whose properties are the same untouched, so a component that
 * stays is not modified for nothing). Run before the version's bundles start, so
 * a DS component's activate gets its configuration; components that stay get
 * theirs updated in place (their `modified`, or a reactivation). The framework
 * keeps nothing across a restart: a new framework starts with none, and this puts
 * them all back.
 */
export async function applyOsgiConfig(
  client: ManagementClient,
  wanted: OsgiConfig,
): Promise<OsgiConfigChange> {
  const held = await client.configurations()
  const removed: string[] = []
  for (const pid of held.pids) {
    if (Object.hasOwn(wanted, pid)) continue
    await client.unconfigure(pid)
    removed.push(pid)
  }
  const changed: string[] = []
  for (const [pid, props] of Object.entries(wanted)) {
    const result = await client.configure(pid, props)
    if (result.changed) changed.push(pid)
  }
  return { changed, removed, configurationAdmin: held.configurationAdmin }
}
