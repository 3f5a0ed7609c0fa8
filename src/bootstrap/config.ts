import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { isLoopback } from '../api/index.js'
import { type ArtifactsConfig, DEFAULT_ARTIFACTS_CONFIG } from '../artifacts/index.js'
import { hasObserverRole, type MembershipTimers, MetadataError, resolveTimers } from '../membership/index.js'
import { DEFAULT_RUNTIME_LIMITS, type RuntimeConfig } from '../runtime/index.js'
import type { LogLevel } from '../shared/index.js'
import {
  ConfigError,
  DEFAULT_PRESET,
  isTimerPreset,
  messageOf,
  OptionError,
  presetTimers,
  TIMER_PRESETS,
  type TimerPreset,
} from '../shared/index.js'
import { MEMBER_METADATA } from './announcements.js'
import { CLUSTER_NAME, DEFAULT_API, DEFAULT_LISTEN } from './constants.js'
import { BadBootstrapError } from './errors.js'

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
  /** Timer preset (src/shared/presets.ts): membership, manager, runtime and mDNS timers. Default `lan`. */
  preset: TimerPreset
  /** Membership's timers: the preset's, with `AgentOptions.timers` on top. */
  timers: MembershipTimers
  artifacts: ArtifactsConfig
  /** Supervision, unpacking and log limits of the component runtime: the preset's timers, with `AgentOptions.runtime` on top. */
  runtime: RuntimeConfig
  /** Host peers reach this node's components through (default: from --listen). */
  advertiseHost: string | null
  /**
   * Where the data plane (bulk bytes of artifacts, docs/protocol.md) listens; null:
   * off, peers fetch from this node over libp2p. Default: the --listen host, any port.
   */
  dataListen: { host: string; port: number } | null
  /** Largest Raft voter set the leader keeps: 3 or 5 (docs/manager.md). Default 5. */
  maxVoters: 3 | 5
  logLevel: LogLevel
  /** How this node was launched (by a provider) and what it is, announced in member metadata. */
  node: NodeIdentity
  /** JSON file configuring the static and ec2 providers (docs/providers.md); null: only `local`. */
  providersFile: string | null
  /** Find members at start among EC2 instances tagged with the cluster (a cloud's discovery source). */
  discoverEc2: { region: string; endpoint?: string } | null
  /** The OSGi framework osgi components run in (docs/osgi.md): `--osgi-framework`, else SHOAL_OSGI_FRAMEWORK, else `equinox`. */
  osgiFramework: OsgiFrameworkName
}

/** The OSGi frameworks a node can run (the runtime's OSGI_FRAMEWORKS, src/runtime/constants.ts). */
const OSGI_FRAMEWORK_NAMES = ['equinox', 'felix'] as const
export type OsgiFrameworkName = (typeof OSGI_FRAMEWORK_NAMES)[number]

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
  /** `HOST:PORT`, `:PORT`, or `off`. */
  dataListen?: string | null
  maxVoters?: number
  logLevel?: LogLevel
  node?: Partial<NodeIdentity>
  providersFile?: string | null
  discoverEc2?: { region: string; endpoint?: string } | null
  osgiFramework?: string
}

/**
 * Applies the documented defaults and validates once, with a clear error, before
 * anything is made or started: a malformed option is an `OptionError` (the CLI
 * exits 2), the bootstrap list's a `BadBootstrapError` (ERR_BAD_BOOTSTRAP).
 */
export function resolveAgentConfig(options: AgentOptions): AgentConfig {
  const cluster = options.cluster
  if (typeof cluster !== 'string' || !CLUSTER_NAME.test(cluster)) {
    throw new OptionError(
      `cluster name "${cluster}" is not valid: use 1-40 lowercase letters, digits and dashes, starting and ending with a letter or digit`,
    )
  }
  const listen = options.listen?.length ? options.listen : [DEFAULT_LISTEN]
  const bootstrap = options.bootstrap ?? []
  for (const addr of listen) checkListen(addr)
  for (const addr of bootstrap) checkBootstrap(addr)
  const preset = options.preset ?? DEFAULT_PRESET
  if (!isTimerPreset(preset))
    throw new ConfigError(
      `unknown timer preset "${preset}" (${TIMER_PRESETS.slice(0, -1).join(', ')} or ${TIMER_PRESETS.at(-1)})`,
    )
  const presetValues = presetTimers(preset)
  const maxVoters = options.maxVoters ?? 5
  if (maxVoters !== 3 && maxVoters !== 5)
    throw new OptionError(
      `--voters must be 3 or 5 (got ${maxVoters}): an odd set, small enough to commit fast`,
    )
  checkAnnounced(options.node)
  // Announced in the `data` key (at most 60 characters with its port).
  if (options.advertiseHost != null && !/^[0-9A-Za-z.:[\]-]{1,54}$/.test(options.advertiseHost))
    throw new OptionError(
      `--advertise-host "${options.advertiseHost}" is not an IP address or host name of at most 54 characters`,
    )
  const api = parseHostPort(options.api ?? DEFAULT_API, '--api')
  const tokensFile = options.tokensFile == null ? null : resolve(options.tokensFile)
  if (tokensFile == null && !isLoopback(api.host))
    throw new OptionError(
      `without --tokens the API listens on loopback only (got --api ${options.api}); pass --tokens FILE or use 127.0.0.1`,
    )
  const osgiFramework = resolveOsgiFramework(options.osgiFramework)
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
    timers: resolveTimers(presetValues.membership, options.timers),
    artifacts: resolveArtifacts(options.artifacts),
    runtime: { ...presetValues.runtime, ...DEFAULT_RUNTIME_LIMITS, ...options.runtime },
    advertiseHost: options.advertiseHost ?? null,
    dataListen: resolveDataListen(options.dataListen, listen[0]!),
    maxVoters,
    logLevel: options.logLevel ?? 'info',
    providersFile: options.providersFile == null ? null : resolve(options.providersFile),
    discoverEc2: options.discoverEc2 ?? null,
    osgiFramework,
    node: {
      provider: options.node?.provider ?? null,
      handle: options.node?.handle ?? null,
      roles: options.node?.roles ?? [],
      tags: options.node?.tags ?? {},
    },
  }
}

/**
 * `--role` and `--tag` go into member metadata: checked against the contract now,
 * so a bad one is a usage error rather than a failed start. Observer roles are an
 * agent's to refuse: it would get no vote and no placement and not count as a node.
 */
function checkAnnounced(node: Partial<NodeIdentity> = {}): void {
  const observerRole = node.roles?.find((role) => hasObserverRole([role]))
  if (observerRole != null)
    throw new OptionError(
      `--role ${observerRole} is an observer's role (shoal lb): an agent announcing it would get no vote and no placement and not count as a node; choose another name`,
    )
  try {
    MEMBER_METADATA.checkOwn({ roles: node.roles, tags: node.tags })
  } catch (err) {
    const flag = err instanceof MetadataError && err.key === 'tags' ? '--tag' : '--role'
    throw new OptionError(`${flag}: ${messageOf(err)}`)
  }
}

/** `--osgi-framework`, else SHOAL_OSGI_FRAMEWORK, else Equinox (the default: Declarative Services run on it). */
function resolveOsgiFramework(value: string | undefined): OsgiFrameworkName {
  const env = process.env.SHOAL_OSGI_FRAMEWORK
  const chosen = value ?? (env == null || env === '' ? 'equinox' : env)
  const framework = OSGI_FRAMEWORK_NAMES.find((name) => name === chosen)
  if (framework == null)
    throw new OptionError(
      `${value == null ? 'SHOAL_OSGI_FRAMEWORK' : '--osgi-framework'} "${chosen}" is not an OSGi framework Shoal runs: equinox (the default) or felix`,
    )
  return framework
}

/** "HOST:PORT", ":PORT" or "PORT" (host defaults to loopback); `flag` names the option in the error. */
export function parseHostPort(value: string, flag?: string): { host: string; port: number } {
  const match = /^(?:(.*):)?(\d{1,5})$/.exec(value.trim())
  const port = Number(match?.[2])
  if (match == null || port > 65535)
    throw new OptionError(
      `${flag == null ? '' : `${flag} `}"${value}" is not HOST:PORT (for example 127.0.0.1:7070, or port 0 for any free port)`,
    )
  const host = (match[1] ?? '').replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  return { host, port }
}

/**
 * `--data-listen`: `off`, `HOST:PORT` or `:PORT` (the libp2p listen host). Without
 * it the data plane listens on the libp2p host, on any free port (announced).
 */
function resolveDataListen(
  value: string | null | undefined,
  listen: string,
): { host: string; port: number } | null {
  if (value === 'off') return null
  const listenHost = /^\/ip[46]\/([^/]+)/.exec(listen)?.[1] ?? '0.0.0.0'
  if (value == null) return { host: listenHost, port: 0 }
  const trimmed = value.trim()
  const { host, port } = parseHostPort(trimmed, '--data-listen')
  return { host: trimmed.startsWith(':') || /^\d+$/.test(trimmed) ? listenHost : host, port }
}

function resolveArtifacts(overrides: Partial<ArtifactsConfig> = {}): ArtifactsConfig {
  const config = { ...DEFAULT_ARTIFACTS_CONFIG, ...overrides }
  for (const [key, value] of Object.entries(config)) {
    if (!Number.isInteger(value) || value < 0)
      throw new ConfigError(`artifacts setting ${key} must be a whole number >= 0`)
  }
  if (config.retention < 1) throw new ConfigError('retention must keep at least one version')
  if (config.parallelChunks < 1) throw new ConfigError('parallelChunks must be at least 1')
  if (config.uploadSlots < 1) throw new ConfigError('uploadSlots must be at least 1')
  return config
}

/** The protocol names of a multiaddr (`['ip4', 'tcp', 'p2p']`), or the parser's complaint. */
function protocols(addr: string): string[] | Error {
  try {
    return multiaddr(addr).protoNames()
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err))
  }
}

const IP = ['ip4', 'ip6']
const HOST = [...IP, 'dns', 'dns4', 'dns6']

/** Listen addresses are what libp2p's TCP transport (the only one) can bind: an IP and a TCP port. */
function checkListen(addr: string): void {
  const names = protocols(addr)
  if (Array.isArray(names) && names.length === 2 && IP.includes(names[0]!) && names[1] === 'tcp') return
  throw new OptionError(
    `libp2p listen address "${addr}" is not /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT${
      names instanceof Error ? ` (${messageOf(names)})` : ''
    }; for example ${DEFAULT_LISTEN}, or port 0 for any free port`,
  )
}

/**
 * A bootstrap address must be one this node can dial over TCP: /ip4, /ip6 or
 * /dns* with a TCP port, or /dnsaddr; `/p2p/PEER_ID` at the end is optional (the
 * peer's id is then learnt in the handshake) but must be a valid id when given.
 */
function checkBootstrap(addr: string): void {
  const hint =
    'give a peer\'s address as /ip4/HOST/tcp/PORT, optionally ending in /p2p/PEER_ID (the "addrs" an agent prints when it starts)'
  const fail = (problem: string) => new BadBootstrapError(addr, problem)
  const names = protocols(addr)
  if (names instanceof Error) {
    const hostPort = /^\[?([^/\s\]]+)\]?:(\d{1,5})$/.exec(addr.trim())
    if (hostPort != null) {
      const [, host, port] = hostPort
      const kind = /^[\d.]+$/.test(host!) ? 'ip4' : host!.includes(':') ? 'ip6' : 'dns'
      throw fail(`is HOST:PORT, not a multiaddr: write /${kind}/${host}/tcp/${port}`)
    }
    throw fail(`is not a multiaddr (${messageOf(names)}); ${hint}`)
  }
  const route = names.at(-1) === 'p2p' ? names.slice(0, -1) : names
  const dialable =
    (route.length === 2 && HOST.includes(route[0]!) && route[1] === 'tcp') ||
    (route.length === 1 && route[0] === 'dnsaddr')
  if (!dialable)
    throw fail(`is not an address this node can dial (an IP or DNS name and a TCP port); ${hint}`)
  if (route.length < names.length) {
    const id = /\/p2p\/([^/]*)\/?$/.exec(addr)?.[1] ?? ''
    try {
      peerIdFromString(id)
    } catch {
      throw fail(
        `ends in /p2p/${id}, which is not a peer id; copy the address from the peer's start line, or leave /p2p/… out`,
      )
    }
  }
}
