import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { ConfigError } from '../shared/errors.js'
import type { Logger } from '../shared/logger.js'
import type { Provider } from './provider.js'
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
  shoalVersion: z.string().min(1),
  npmPackage: z.string().optional(),
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

/** Reads and checks a providers file; a bad one stops the agent at start with a clear error. */
export async function loadProviders(
  file: string,
  launchedBy: string,
  log: Logger,
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
    // The AWS SDK loads only for agents configured with it.
    const { Ec2Provider } = await import('./ec2.js')
    providers.push(new Ec2Provider({ ...config.ec2, launchedBy }, log.child('ec2-provider')))
  }
  if (config.default !== 'local' && !providers.some((p) => p.name === config.default))
    throw new ConfigError(`providers file ${file}: default provider "${config.default}" is not configured`)
  return { providers, defaultProvider: config.default }
}
