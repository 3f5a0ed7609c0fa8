import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import type { Logger } from '../shared/index.js'
import { ConfigError, isLoopback, VERSION } from '../shared/index.js'
import { MIN_RELEASE_URL_TTL_MS, RELEASE_CACHE_DIR, RELEASE_URL_TTL_MS } from './constants.js'
import type { Provider } from './provider.js'
import { Releases } from './releases.js'
import { StaticProvider } from './static.js'

const staticSchema = z.strictObject({
  hosts: z
    .array(
      z.strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).optional(),
        user: z.string().min(1),
        identityFile: z.string().min(1),
        address: z.string().optional(),
      }),
    )
    .min(1),
  shoalCommand: z.array(z.string().min(1)).min(1).default(['npx', 'shoal']),
  dataDir: z.string().min(1).default('~/.shoal-node'),
  startTimeoutMs: z.number().int().min(1000).default(60_000),
  stopTimeoutMs: z.number().int().min(0).default(30_000),
  knownHostsFile: z.string().optional(),
})

const ec2Schema = z.strictObject({
  region: z.string().min(1),
  endpoint: z.string().url().optional(),
  imageId: z.string().min(1),
  instanceType: z.string().min(1),
  subnetId: z.string().optional(),
  securityGroupIds: z.array(z.string()).optional(),
  keyName: z.string().optional(),
  iamInstanceProfile: z.string().optional(),
  shoalVersion: z.string().min(1).optional(),
  npmPackage: z.string().min(1).optional(),
  releaseUrl: z
    .string()
    .url()
    .refine((url) => /^https?:\/\//.test(url), 'must be an http:// or https:// URL')
    .optional(),
  releaseUrlTtlMs: z.number().int().min(MIN_RELEASE_URL_TTL_MS).default(RELEASE_URL_TTL_MS),
  requireImdsV2: z.boolean().optional(),
  pollMs: z.number().int().min(100).default(2000),
  startTimeoutMs: z.number().int().min(10_000).default(300_000),
})

/**
 * The `--providers FILE` of an agent (docs/providers.md): which providers it
 * has besides `local`, and which one `shoal node add` uses by default.
 */
const providersFileSchema = z.strictObject({
  default: z.enum(['local', 'static', 'ec2']).default('local'),
  static: staticSchema.optional(),
  ec2: ec2Schema.optional(),
})

export interface ConfiguredProviders {
  providers: Provider[]
  defaultProvider: string
}

export interface LoadProvidersOptions {
  /** The agent's data folder: the release it serves new ec2 nodes is cached in `<dataDir>/releases`. */
  dataDir?: string | null
}

/** Reads and checks a providers file; a bad one stops the agent at start with a clear error. */
export async function loadProviders(
  file: string,
  launchedBy: string,
  log: Logger,
  options: LoadProvidersOptions = {},
): Promise<ConfiguredProviders> {
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(`providers file ${file}: ${err instanceof Error ? err.message : String(err)}`)
  }
  const parsed = providersFileSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ConfigError(`providers file ${file}: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const config = parsed.data
  const providers: Provider[] = []
  if (config.static != null)
    providers.push(new StaticProvider({ ...config.static, launchedBy }, log.child('static-provider')))
  if (config.ec2 != null) {
    const { releaseUrlTtlMs, ...ec2 } = config.ec2
    checkEc2Install(file, ec2)
    const releases =
      ec2.npmPackage != null
        ? undefined
        : new Releases({
            cacheDir: options.dataDir == null ? null : join(options.dataDir, RELEASE_CACHE_DIR),
            urlTtlMs: releaseUrlTtlMs,
          })
    // The AWS SDK loads only for agents configured with it.
    const { Ec2Provider } = await import('./ec2.js')
    providers.push(
      new Ec2Provider(
        { ...ec2, launchedBy, ...(releases == null ? {} : { releases }) },
        log.child('ec2-provider'),
      ),
    )
  }
  if (config.default !== 'local' && !providers.some((p) => p.name === config.default))
    throw new ConfigError(`providers file ${file}: default provider "${config.default}" is not configured`)
  return { providers, defaultProvider: config.default }
}

/**
 * New instances install Shoal from this agent's release at `releaseUrl` (which
 * they must be able to reach) unless `npmPackage` names another source.
 */
function checkEc2Install(
  file: string,
  ec2: {
    npmPackage?: string | undefined
    releaseUrl?: string | undefined
    shoalVersion?: string | undefined
  },
): void {
  if (ec2.npmPackage != null) return
  if (ec2.releaseUrl == null)
    throw new ConfigError(
      `providers file ${file}: ec2.releaseUrl: set it to this agent's API as new instances reach it ` +
        '(e.g. http://10.0.1.5:7070, with the agent started with --api 0.0.0.0:7070 --tokens FILE), ' +
        'or set ec2.npmPackage to install Shoal from a package; the npm registry has no "shoal"',
    )
  const host = new URL(ec2.releaseUrl).hostname.replace(/^\[(.*)\]$/, '$1')
  if (isLoopback(host) || host === '0.0.0.0' || host === '::')
    throw new ConfigError(
      `providers file ${file}: ec2.releaseUrl ${ec2.releaseUrl} names this machine's loopback (or no) address, ` +
        "which a new instance cannot reach; give the address the instances reach this agent's API at " +
        '(an API on 127.0.0.1 only needs --api 0.0.0.0:PORT --tokens FILE, or a proxy)',
    )
  if (ec2.shoalVersion != null && ec2.shoalVersion !== VERSION)
    throw new ConfigError(
      `providers file ${file}: ec2.shoalVersion is ${ec2.shoalVersion} but this agent runs Shoal ${VERSION}, ` +
        'the release new instances get from it; remove shoalVersion, or set npmPackage to install another version',
    )
}
