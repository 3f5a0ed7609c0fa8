import { z } from 'zod'
import { DescriptorError } from './errors.js'

/** Component and service names: short, lower case, safe in paths and env values. */
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

const name = z.string().regex(NAME, 'lower-case letters, digits, ".", "_" or "-", at most 63')

/** Text handed to spawn (paths, arguments, environment): a NUL byte makes it throw on every node. */
const spawnText = z.string().refine((s) => !s.includes('\u0000'), 'may not contain a NUL byte')

const insidePackage = (p: string) =>
  !p.startsWith('/') && !p.includes('\\') && p.split('/').every((s) => s !== '..' && s !== '')

/** A path inside the unpacked package: relative, no `..`, no backslashes. */
const packagePath = spawnText.min(1).refine(insidePackage, 'a relative path inside the package')

/** An executable: a bare name looked up on PATH, an absolute path, or a path inside the package. */
const executable = spawnText
  .min(1)
  .refine(
    (p) => !p.includes('/') || p.startsWith('/') || insidePackage(p),
    'a command name, an absolute path or a relative path inside the package',
  )

const requirement = z.union([
  name.transform((service) => ({ service, hard: false })),
  z.strictObject({ service: name, hard: z.boolean().default(false) }),
])

const health = z
  .strictObject({
    /** HTTP path probed on the component's PORT. */
    http: z.string().startsWith('/').optional(),
    /** Status the HTTP check expects. */
    status: z.number().int().min(100).max(599).default(200),
    /** A command run in the component's folder; exit 0 means healthy. */
    command: z.array(spawnText.min(1)).min(1).optional(),
    intervalMs: z.number().int().min(50).max(600_000).default(1000),
    timeoutMs: z.number().int().min(50).max(600_000).default(2000),
  })
  .refine((h) => (h.http == null) !== (h.command == null), 'exactly one of "http" or "command"')

/**
 * What a component package needs to run: how to start it, whether it serves
 * HTTP, how to tell it is healthy, how long to wait, and which services it
 * provides to and requires from the cluster. It travels in the signed manifest
 * (`artifacts[].descriptor`), next to the package's hash.
 */
export const componentDescriptorSchema = z
  .strictObject({
    name,
    /** Defaults to the distribution's version. */
    version: z.string().min(1).max(64).optional(),
    start: z.union([
      /** A JavaScript entry point run with the agent's own Node.js. */
      z.strictObject({ node: packagePath, args: z.array(spawnText).default([]) }),
      /** An executable: a path inside the package, or a command on the PATH. */
      z.strictObject({ exec: executable, args: z.array(spawnText).default([]) }),
      /** An OSGi bundle (the artifact is its jar), started in the node's framework at this start level. */
      z.strictObject({
        osgi: z.strictObject({
          startLevel: z.number().int().min(1).max(99).default(10),
          /** The Configuration Admin PID its configuration (and, with `http`, its port) goes to; default: its name. */
          pid: z
            .string()
            .regex(/^[A-Za-z0-9_.~-]{1,128}$/, 'a PID: letters, digits, ".", "_", "~" and "-"')
            .optional(),
        }),
      }),
    ]),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), spawnText).default({}),
    /** Serves HTTP: the agent assigns a port through PORT and publishes the endpoint. */
    http: z.boolean().default(false),
    /** Without a health check the component is ready once it has run for readyDelayMs (at least 1 s). */
    health: health.optional(),
    /**
     * A start that is not healthy this long after spawn counts as a crash (and a ready
     * component unhealthy this long is restarted). Default: the agent's (60 s).
     */
    startTimeoutMs: z.number().int().min(1000).max(3_600_000).optional(),
    /** Wait this long after start before the first health check counts. */
    readyDelayMs: z.number().int().min(0).max(600_000).default(0),
    /**
     * Never runs twice on one node (it binds a fixed port, holds a lock): a switch
     * stops the old version before it starts this one, instead of starting this one
     * beside it, and an all-at-once rollout keeps one node on the old version until
     * another is ready on the new one.
     */
    exclusive: z.boolean().default(false),
    /** After SIGTERM, wait this long before SIGKILL. */
    stopTimeoutMs: z.number().int().min(0).max(600_000).default(5000),
    /** Services this component offers (default: its own name). */
    provides: z.array(name).optional(),
    /** Services it uses; a hard requirement delays the start until one is ready somewhere. */
    requires: z.array(requirement).default([]),
  })
  // A bundle has no process: no health command and no environment of its own. It may serve
  // HTTP: the port reaches it through its configuration (docs/osgi.md, "Serving HTTP").
  .refine(
    (d) =>
      !('osgi' in d.start) ||
      ((d.health == null || (d.http && d.health.http != null)) && Object.keys(d.env).length === 0),
    'an osgi component takes no "env", and a "health" check only over HTTP with "http": true',
  )
  .transform((d) => ({ ...d, provides: d.provides ?? [d.name] }))

export type ComponentDescriptor = z.output<typeof componentDescriptorSchema>

/** Parses a descriptor, or throws ERR_MANIFEST_INVALID naming the artifact and the field. */
export function parseDescriptor(artifact: string, raw: unknown): ComponentDescriptor {
  const parsed = componentDescriptorSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new DescriptorError(artifact, `${where}${issue.message}`)
  }
  return parsed.data
}

interface ArtifactLike {
  name: string
  kind: string
  descriptor?: Record<string, unknown> | undefined
}

/**
 * Checks every component of a manifest: each has a valid descriptor and no two
 * share a name. Returns the descriptors by component name.
 */
export function componentsOf(artifacts: readonly ArtifactLike[]): Map<string, ComponentDescriptor> {
  const found = new Map<string, ComponentDescriptor>()
  for (const [i, artifact] of artifacts.entries()) {
    // Also called on raw request bodies: what is not even an object is no component (the schema refuses it).
    if (typeof artifact !== 'object' || artifact == null || artifact.kind !== 'component') continue
    // Named in messages; a raw body's name may be any JSON value.
    const label = typeof artifact.name === 'string' ? artifact.name : `artifacts.${i}`
    if (artifact.descriptor == null) throw new DescriptorError(label, 'has no descriptor')
    const descriptor = parseDescriptor(label, artifact.descriptor)
    if (found.has(descriptor.name))
      throw new DescriptorError(label, `another component is also named "${descriptor.name}"`)
    found.set(descriptor.name, descriptor)
  }
  return found
}
