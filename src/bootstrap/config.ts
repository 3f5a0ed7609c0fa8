import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { isLoopback } from '../api/index.js'
import { type ArtifactsConfig, DEFAULT_ARTIFACTS_CONFIG } from '../artifacts/index.js'
import { type MembershipTimers, resolveTimers, type TimerPreset } from '../membership/index.js'
import { DEFAULT_RUNTIME_CONFIG, type RuntimeConfig, TEST_RUNTIME_CONFIG } from '../runtime/index.js'
import { ConfigError } from '../shared/errors.js'
import type { LogLevel } from '../shared/logger.js'
import { CLUSTER_NAME, DEFAULT_API, DEFAULT_LISTEN } from './constants.js'

/** Everything an agent is started with: plain data, printable by `shoal status --json`. */
export interface AgentConfig {
  cluster: string
  /** Data folder: identity, durable state, later blobs. Default ~/.shoal/CLUSTER. */
  dataDir: string
  /** libp2p listen multiaddrs. Default /ip4/0.0.0.0/tcp/7946. */
  listen: string[]
  /** Admin API address. Default 127.0.0.1:7070; a non-loopback host needs `tokensFile`. */
  api: { host: string; port: number }
  /** JSON file mapping API tokens to roles (docs/operations.md); null: no authentication, loopback only. */
  tokensFile: string | null
  /** Multiaddrs of peers to join through (with or without /p2p/ID). */
  bootstrap: string[]
  /** Pre-shared key file closing the cluster (libp2p private network); null = open cluster. */
  secretFile: string | null
  /** Public key files of trusted publishers. */
  trust: string[]
  mdns: boolean
  preset: TimerPreset
  timers: MembershipTimers
  artifacts: ArtifactsConfig
  /** Supervision, unpacking and log limits of the component runtime. */
  runtime: RuntimeConfig
  /** Host peers reach this node's components through (default: from --listen). */
  advertiseHost: string | null
  logLevel: LogLevel
  /** How this node was launched (by a provider) and what it is, announced in member metadata. */
  node: NodeIdentity
  /** JSON file configuring the static and ec2 providers (docs/providers.md); null: only `local`. */
  providersFile: string | null
  /** Find members at start among EC2 instances tagged with the cluster (a cloud's discovery source). */
  discoverEc2: { region: string; endpoint?: string } | null
}

export interface NodeIdentity {
  /** The provider that launched it and its handle there (null: started by hand). */
  provider: string | null
  handle: string | null
  roles: string[]
  tags: Record<string, string>
}

export interface AgentOptions {
  cluster: string
  dataDir?: string
  listen?: string[]
  api?: string
  tokensFile?: string | null
  bootstrap?: string[]
  secretFile?: string | null
  trust?: string[]
  mdns?: boolean
  preset?: TimerPreset
  timers?: Partial<MembershipTimers>
  artifacts?: Partial<ArtifactsConfig>
  runtime?: Partial<RuntimeConfig>
  advertiseHost?: string | null
  logLevel?: LogLevel
  node?: Partial<NodeIdentity>
  providersFile?: string | null
  discoverEc2?: { region: string; endpoint?: string } | null
}

/** Applies the documented defaults and validates once, with a clear error. */
export function resolveAgentConfig(options: AgentOptions): AgentConfig {
  const cluster = options.cluster
  if (typeof cluster !== 'string' || !CLUSTER_NAME.test(cluster)) {
    throw new ConfigError(
      `cluster name "${cluster}" is not valid: use 1-40 lowercase letters, digits and dashes, starting and ending with a letter or digit`,
    )
  }
  const listen = options.listen?.length ? options.listen : [DEFAULT_LISTEN]
  const bootstrap = options.bootstrap ?? []
  for (const addr of [...listen, ...bootstrap]) checkMultiaddr(addr)
  const preset = options.preset ?? 'lan'
  const api = parseHostPort(options.api ?? DEFAULT_API)
  const tokensFile = options.tokensFile == null ? null : resolve(options.tokensFile)
  if (tokensFile == null && !isLoopback(api.host))
    throw new ConfigError(
      `without --tokens the API listens on loopback only (got --api ${options.api}); pass --tokens FILE or use 127.0.0.1`,
    )
  return {
    cluster,
    dataDir: resolve(options.dataDir ?? join(homedir(), '.shoal', cluster)),
    listen,
    api,
    tokensFile,
    bootstrap,
    secretFile: options.secretFile == null ? null : resolve(options.secretFile),
    trust: (options.trust ?? []).map((file) => resolve(file)),
    mdns: options.mdns ?? true,
    preset,
    timers: resolveTimers(preset, options.timers),
    artifacts: resolveArtifacts(options.artifacts),
    runtime: { ...(preset === 'test' ? TEST_RUNTIME_CONFIG : DEFAULT_RUNTIME_CONFIG), ...options.runtime },
    advertiseHost: options.advertiseHost ?? null,
    logLevel: options.logLevel ?? 'info',
    providersFile: options.providersFile == null ? null : resolve(options.providersFile),
    discoverEc2: options.discoverEc2 ?? null,
    node: {
      provider: options.node?.provider ?? null,
      handle: options.node?.handle ?? null,
      roles: options.node?.roles ?? [],
      tags: options.node?.tags ?? {},
    },
  }
}

/** "HOST:PORT", ":PORT" or "PORT" (host defaults to loopback). */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:(.*):)?(\d{1,5})$/.exec(value.trim())
  const port = Number(match?.[2])
  if (match == null || port > 65535) throw new ConfigError(`"${value}" is not HOST:PORT`)
  const host = (match[1] ?? '').replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  return { host, port }
}

function resolveArtifacts(overrides: Partial<ArtifactsConfig> = {}): ArtifactsConfig {
  const config = { ...DEFAULT_ARTIFACTS_CONFIG, ...overrides }
  for (const [key, value] of Object.entries(config)) {
    if (!Number.isInteger(value) || value < 0)
      throw new ConfigError(`artifacts setting ${key} must be a whole number >= 0`)
  }
  if (config.retention < 1) throw new ConfigError('retention must keep at least one version')
  if (config.parallelChunks < 1) throw new ConfigError('parallelChunks must be at least 1')
  return config
}

function checkMultiaddr(addr: string): void {
  try {
    multiaddr(addr)
  } catch {
    throw new ConfigError(`"${addr}" is not a multiaddr (for example /ip4/10.0.0.5/tcp/7946)`)
  }
}
