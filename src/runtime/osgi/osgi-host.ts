import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, openSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../../shared/index.js'
import { messageOf } from '../../shared/index.js'
import { DEFAULT_OSGI_FRAMEWORK, OSGI_FRAMEWORKS, type OsgiFramework } from '../constants.js'
import { OsgiBundleError, OsgiUnavailableError } from '../errors.js'
import { type BundleStep, planBundles, type WantedBundle } from './bundle-plan.js'
import {
  type BundleInfo,
  type DsComponentInfo,
  ManagementClient,
  type ServiceInfo,
} from './management-client.js'
import { applyOsgiConfig, osgiConfigOf } from './osgi-config.js'
import { type DsComponentStatus, dsComponentMetadata, dsComponentStatuses } from './osgi-ds.js'

/** Where Shoal's OSGi jars are, built by `npm run build` (scripts/build-osgi.mjs): dist/osgi/ seen from dist/src/runtime/osgi or src/runtime/osgi. */
const BUILT_JAR_DIRS = ['../../../osgi', '../../../dist/osgi']
/** The launcher main class (osgi/launcher): starts the framework on its class path through the standard launching API. */
const LAUNCHER_CLASS = 'io.shoal.osgi.Launcher'
/** How long the framework may take to start and open the management socket. */
const START_TIMEOUT_MS = 60_000
/** How often bundle states are read while the framework runs (bundles may stop by themselves). */
const POLL_MS = 2_000

export type { OsgiFramework } from '../constants.js'

export interface OsgiHostInit {
  /** Where the framework keeps its cache and configuration (`<data>/osgi`). */
  dir: string
  /** Environment of the framework process (the runtime's mark, so a restarted agent can reap it). */
  env: Record<string, string>
  /** Where the framework's output goes. */
  logFile: string
  /** Which framework runs the bundles; default: SHOAL_OSGI_FRAMEWORK, else `equinox`. */
  framework?: OsgiFramework
  spawned(pid: number): void
  exited(pid: number): void
}

/** One osgi component as the runtime shows it. */
export interface OsgiComponentState {
  name: string
  version: string
  distribution: string
  state: 'starting' | 'ready' | 'failed' | 'stopped'
  bundle: BundleInfo | null
  error: string | null
}

/** A bundle the node provides to every distribution, installed and started before theirs (docs/osgi.md). */
export interface PlatformBundle {
  /** What it is, for messages. */
  name: string
  path: string
  /** Where it comes from when it is missing. */
  hint: string
}

/** The framework a node runs when it is not told: SHOAL_OSGI_FRAMEWORK, else Equinox. */
export function defaultOsgiFramework(): OsgiFramework {
  const env = process.env.SHOAL_OSGI_FRAMEWORK
  return OSGI_FRAMEWORKS.find((f) => f === env) ?? DEFAULT_OSGI_FRAMEWORK
}

/** The framework's jar: Debian's, or SHOAL_EQUINOX_JAR / SHOAL_FELIX_JAR. */
export function frameworkJar(framework: OsgiFramework): string {
  return framework === 'felix'
    ? (process.env.SHOAL_FELIX_JAR ?? '/usr/share/felix-framework/bin/felix.jar')
    : (process.env.SHOAL_EQUINOX_JAR ?? '/usr/share/java/eclipse-osgi.jar')
}

/**
 * The platform bundles for `framework`, in start order: the Compendium API bundle
 * Shoal builds, Equinox's Configuration Admin and, on Equinox, Felix SCR
 * (Declarative Services; Debian's needs an R7 framework, so not on Felix 4.6.1).
 * SHOAL_OSGI_CMPN_JAR, SHOAL_CM_JAR and SHOAL_SCR_JAR replace a path; set empty, they leave the bundle out.
 */
export function platformBundles(framework: OsgiFramework): PlatformBundle[] {
  const bundles = [
    {
      name: 'shoal.osgi.cmpn (OSGi Compendium API)',
      path:
        process.env.SHOAL_OSGI_CMPN_JAR ?? builtJar('shoal-osgi-cmpn.jar') ?? 'dist/osgi/shoal-osgi-cmpn.jar',
      hint: 'built by npm run build from /usr/share/java/osgi.cmpn.jar (Debian: libosgi-compendium-java)',
    },
    {
      name: 'Configuration Admin (Equinox CM)',
      path: process.env.SHOAL_CM_JAR ?? '/usr/share/java/equinox-cm.jar',
      hint: 'Debian: libequinox-cm-java',
    },
  ]
  if (framework === 'equinox')
    bundles.push({
      name: 'Declarative Services (Felix SCR)',
      path: process.env.SHOAL_SCR_JAR ?? '/usr/share/java/org.apache.felix.scr.jar',
      hint: 'Debian: libfelix-scr-java',
    })
  return bundles
}

function javaCommand(): string {
  return process.env.JAVA_HOME == null ? 'java' : join(process.env.JAVA_HOME, 'bin', 'java')
}

/** Why this node cannot run osgi components in `framework`, in one line, or null when it can. */
export function osgiUnavailableReason(framework: OsgiFramework = defaultOsgiFramework()): string | null {
  const jar = frameworkJar(framework)
  if (!existsSync(jar))
    return framework === 'felix'
      ? `Apache Felix is not installed (${jar}; Debian: felix-main, or set SHOAL_FELIX_JAR)`
      : `Eclipse Equinox is not installed (${jar}; Debian: libeclipse-osgi-java, or set SHOAL_EQUINOX_JAR)`
  if (builtJar('shoal-management-agent.jar') == null || builtJar('shoal-osgi-launcher.jar') == null)
    return 'the OSGi management agent and launcher were not built (npm run build needs a JDK)'
  try {
    execFileSync(javaCommand(), ['-version'], { stdio: 'ignore' })
  } catch {
    return 'no Java runtime (java) is installed (JAVA_HOME or the PATH)'
  }
  return null
}

/** The file a bundle location names (the launcher installs from Java's `file:/path` URIs), or null. */
function filePathOf(location: string): string | null {
  if (!location.startsWith('file:')) return null
  return fileURLToPath(`file://${location.slice('file:'.length).replace(/^\/\//, '')}`)
}

function builtJar(name: string): string | null {
  const here = fileURLToPath(new URL('.', import.meta.url))
  return BUILT_JAR_DIRS.map((dir) => join(here, dir, name)).find((p) => existsSync(p)) ?? null
}

/**
 * The node's one OSGi framework (Equinox or Felix, started by Shoal's launcher),
 * run as a child process with the platform bundles and Shoal's management agent
 * bundle, and the osgi components installed in it as bundles.
 * `apply` moves the framework from the bundles it holds to the bundles wanted,
 * touching only what changed; if a bundle fails to resolve or start, it puts the
 * previous set back (and starts it) before reporting the failure.
 */
export class OsgiHost {
  private child: ChildProcess | undefined
  private client: ManagementClient | undefined
  private starting: Promise<ManagementClient> | undefined
  private stopping = false
  /** Our bundles in the framework: component name → bundle id and jar hash. */
  private installed = new Map<string, { id: number; sha256: string }>()
  private wanted: WantedBundle[] = []
  private config: unknown = {}
  private bundles: BundleInfo[] = []
  private services: ServiceInfo[] = []
  /** Declarative Services components in the framework (osgi-ds.ts). */
  private components: DsComponentInfo[] = []
  private errors = new Map<string, string>()
  private poller: NodeJS.Timeout | undefined
  private readonly listeners = new Set<() => void>()
  /** Which framework this node runs (fixed for the host's life). */
  readonly framework: OsgiFramework

  constructor(
    private readonly init: OsgiHostInit,
    private readonly log: Logger,
  ) {
    this.framework = init.framework ?? defaultOsgiFramework()
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Brings the framework to `wanted` (with the distribution's config). On a
   * failure it restores the previous bundles, then throws ERR_OSGI_BUNDLE naming
   * the bundle and the framework's reason.
   */
  async apply(wanted: WantedBundle[], config: unknown): Promise<void> {
    if (wanted.length === 0 && this.child == null) {
      this.wanted = []
      return
    }
    const previous = { wanted: this.wanted, config: this.config }
    const client = await this.connection()
    try {
      await this.reach(client, wanted, config)
    } catch (err) {
      const reason = messageOf(err)
      this.log.warn('bundles failed; restoring the previous set', { error: reason })
      try {
        await this.reach(client, previous.wanted, previous.config)
      } catch (restoreErr) {
        this.log.error('could not restore the previous bundles', { error: messageOf(restoreErr) })
      }
      await this.refreshStates()
      throw new OsgiBundleError(reason)
    }
    await this.refreshStates()
  }

  /** True when the framework already holds exactly these bundles (same names and jars). */
  holds(wanted: readonly WantedBundle[]): boolean {
    if (wanted.length !== this.wanted.length) return false
    return wanted.every((w) => this.wanted.some((x) => x.name === w.name && x.sha256 === w.sha256))
  }

  /** What the runtime shows for each wanted bundle. */
  states(): OsgiComponentState[] {
    return this.wanted.map((w) => {
      const id = this.installed.get(w.name)?.id
      const bundle = this.bundles.find((b) => b.id === id) ?? null
      const error = this.errors.get(w.name) ?? null
      const state =
        bundle?.state === 'ACTIVE'
          ? 'ready'
          : error != null || this.child == null
            ? 'failed'
            : bundle?.state === 'STARTING' || bundle == null
              ? 'starting'
              : 'failed'
      return { name: w.name, version: w.version, distribution: w.distribution, state, bundle, error }
    })
  }

  /** The DS components our bundles declare: state, satisfied, why not (`shoal components`). */
  dsComponents(): DsComponentStatus[] {
    return dsComponentStatuses(this.components, this.ours())
  }

  private ours(): Map<number, string> {
    return new Map([...this.installed].map(([name, b]) => [b.id, name]))
  }

  /** Bundle states, registered services and DS components for member metadata (small: ours only; fitOsgiAnnouncement trims). */
  metadata(): {
    bundles: Array<Record<string, unknown>>
    services: Array<Record<string, unknown>>
    components: Array<ReturnType<typeof dsComponentMetadata>>
  } | null {
    if (this.wanted.length === 0) return null
    const ours = this.ours()
    return {
      bundles: this.bundles
        .filter((b) => ours.has(b.id))
        .map((b) => ({
          component: ours.get(b.id),
          symbolicName: b.symbolicName,
          version: b.version,
          state: b.state,
        })),
      services: this.services
        .filter((s) => ours.has(s.bundle))
        .map((s) => ({
          component: ours.get(s.bundle),
          objectClass: s.objectClass,
          properties: s.properties,
        })),
      components: this.dsComponents().map((c) => dsComponentMetadata(c)),
    }
  }

  /** Every bundle and service in the framework (`GET /api/osgi`). */
  frameworkView(): {
    framework: OsgiFramework
    running: boolean
    pid: number | null
    bundles: BundleInfo[]
    services: ServiceInfo[]
  } {
    return {
      framework: this.framework,
      running: this.client != null,
      pid: this.child?.pid ?? null,
      bundles: this.bundles,
      services: this.services,
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    clearInterval(this.poller)
    this.client?.close()
    this.client = undefined
    const child = this.child
    if (child == null || child.exitCode != null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  // --- the framework process ----------------------------------------------------------

  private connection(): Promise<ManagementClient> {
    if (this.client != null) return Promise.resolve(this.client)
    this.starting ??= this.launch().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async launch(): Promise<ManagementClient> {
    const framework = this.framework
    const unavailable = osgiUnavailableReason(framework)
    if (unavailable != null)
      throw new OsgiUnavailableError(`this node cannot run osgi components: ${unavailable}`)
    await mkdir(this.init.dir, { recursive: true })
    const portFile = join(this.init.dir, 'agent.port')
    await rm(portFile, { force: true })
    const platform: PlatformBundle[] = []
    for (const bundle of platformBundles(framework)) {
      if (bundle.path === '') continue
      if (existsSync(bundle.path)) platform.push({ ...bundle, path: resolve(bundle.path) })
      else
        this.log.warn(
          `platform bundle ${bundle.name} not found at ${bundle.path} (${bundle.hint}); distributions that need it will not resolve`,
        )
    }
    const args = [
      // Felix 4's boot delegation reaches into java.base (JDK 9+ modules); Equinox needs nothing.
      ...(framework === 'felix'
        ? ['--add-opens=java.base/java.security=ALL-UNNAMED', '--add-opens=java.base/java.lang=ALL-UNNAMED']
        : []),
      '-cp',
      [builtJar('shoal-osgi-launcher.jar')!, resolve(frameworkJar(framework))].join(':'),
      LAUNCHER_CLASS,
      // The framework's cache is emptied at each start: Shoal's store is the source of truth.
      '--storage',
      join(this.init.dir, 'cache'),
      '--agent',
      builtJar('shoal-management-agent.jar')!,
      ...platform.flatMap((b) => ['--platform', b.path]),
      '--set',
      'shoal.agent.port=0',
      '--set',
      `shoal.agent.portfile=${portFile}`,
    ]
    const out = openSync(this.init.logFile, 'a')
    const child = spawn(javaCommand(), args, {
      cwd: this.init.dir,
      env: { ...process.env, ...this.init.env },
      stdio: ['ignore', out, out],
    })
    this.child = child
    if (child.pid != null) this.init.spawned(child.pid)
    child.once('exit', (code, signal) => this.exited(child, code, signal))
    const deadline = Date.now() + START_TIMEOUT_MS
    let port: number | null = null
    while (port == null) {
      if (child.exitCode != null || child.signalCode != null)
        throw new OsgiUnavailableError(
          `the OSGi framework (${framework}) exited at start: ${await this.launcherError()}; see ${this.init.logFile}`,
        )
      if (Date.now() > deadline)
        throw new OsgiUnavailableError(
          `the OSGi framework (${framework}) did not start; see ${this.init.logFile}`,
        )
      port = Number(await readFile(portFile, 'utf8').catch(() => '')) || null
      if (port == null) await sleep(50)
    }
    const client = await ManagementClient.connect(port)
    this.client = client
    this.installed.clear()
    await this.checkPlatform(client, platform)
    this.log.info('OSGi framework started', { framework, pid: child.pid, port })
    clearInterval(this.poller)
    this.poller = setInterval(() => void this.refreshStates(), POLL_MS)
    this.poller.unref()
    return client
  }

  /** The launcher's last complaint in the log (it prints `shoal-launcher: REASON` before it exits). */
  private async launcherError(): Promise<string> {
    const log = await readFile(this.init.logFile, 'utf8').catch(() => '')
    const line = log
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('shoal-launcher: ') || l.startsWith('Error: '))
    return line?.replace(/^shoal-launcher: /, '') ?? 'no reason given'
  }

  /** A platform bundle that is not active is worth a warning: what needs it will fail to resolve. */
  private async checkPlatform(client: ManagementClient, platform: readonly PlatformBundle[]): Promise<void> {
    const bundles = await client.bundles().catch(() => [])
    for (const p of platform) {
      const bundle = bundles.find((b) => filePathOf(b.location) === p.path)
      if (bundle?.state !== 'ACTIVE')
        this.log.warn(
          `platform bundle ${p.name} is ${bundle?.state ?? 'not installed'} in ${this.framework}; see ${this.init.logFile}`,
        )
    }
  }

  /** The framework died: its bundles are gone; start it again and put the wanted bundles back. */
  private exited(child: ChildProcess, code: number | null, signal: string | null): void {
    if (child.pid != null) this.init.exited(child.pid)
    if (this.child !== child) return
    this.child = undefined
    this.client?.close()
    this.client = undefined
    this.installed.clear()
    this.bundles = []
    this.services = []
    this.components = []
    clearInterval(this.poller)
    this.emit()
    if (this.stopping) return
    this.log.warn('the OSGi framework exited; starting it again', { code, signal })
    void sleep(1000).then(async () => {
      if (this.stopping || this.wanted.length === 0) return
      const wanted = this.wanted
      this.wanted = []
      await this.apply(wanted, this.config).catch((err: unknown) =>
        this.log.error('could not restore bundles after a framework restart', { error: messageOf(err) }),
      )
    })
  }

  // --- moving between bundle sets ---------------------------------------------------------

  private async reach(client: ManagementClient, wanted: WantedBundle[], config: unknown): Promise<void> {
    this.wanted = wanted
    this.config = config
    this.errors.clear()
    await client.setConfig(config)
    // Configuration Admin PIDs (config.osgi) before any bundle of the version starts, so DS activate gets them.
    await applyOsgiConfig(client, osgiConfigOf(config))
    const byName = new Map(wanted.map((w) => [w.name, w]))
    for (const step of planBundles(this.installed, wanted)) await this.run(client, step, byName)
    // A bundle whose activator ran but which is not ACTIVE (stopped itself, lazy) is a failure too.
    const states = await client.bundles()
    for (const w of wanted) {
      const bundle = states.find((b) => b.id === this.installed.get(w.name)?.id)
      if (bundle?.state !== 'ACTIVE')
        throw new Error(`bundle ${w.name} is ${bundle?.state ?? 'missing'} after its start`)
    }
  }

  private async run(
    client: ManagementClient,
    step: BundleStep,
    byName: Map<string, WantedBundle>,
  ): Promise<void> {
    try {
      if (step.op === 'uninstall') {
        await client.uninstall(step.id)
        this.installed.delete(step.name)
      } else if (step.op === 'install') {
        const bundle = await client.install(step.name, step.path, step.startLevel)
        this.installed.set(step.name, { id: bundle.id, sha256: byName.get(step.name)!.sha256 })
      } else if (step.op === 'update') {
        // Unknown until it succeeds: the new bytes may be in even if the restart after them failed.
        this.installed.set(step.name, { id: step.id, sha256: '' })
        await client.update(step.id, step.path)
        this.installed.set(step.name, { id: step.id, sha256: byName.get(step.name)!.sha256 })
      } else if (step.op === 'refresh') await client.refresh()
      else await client.start(this.installed.get(step.name)!.id)
    } catch (err) {
      const name = 'name' in step ? step.name : 'framework'
      // Equinox's resolver explains on several indented lines: one line reads better in a status or a rollout record.
      const reason = messageOf(err)
        .trim()
        .replace(/\s*\n\s*/g, '; ')
      this.errors.set(name, reason)
      throw new Error(`${step.op} of bundle ${name} failed: ${reason}`)
    }
  }

  private async refreshStates(): Promise<void> {
    const client = this.client
    if (client == null) return
    try {
      const [bundles, services, components] = await Promise.all([
        client.bundles(),
        client.services(),
        client.components(),
      ])
      const changed =
        JSON.stringify(bundles) !== JSON.stringify(this.bundles) ||
        JSON.stringify(services) !== JSON.stringify(this.services) ||
        JSON.stringify(components) !== JSON.stringify(this.components)
      this.bundles = bundles
      this.services = services
      this.components = components
      if (changed) this.emit()
    } catch (err) {
      this.log.debug('could not read bundle states', { error: messageOf(err) })
    }
  }

  private emit(): void {
    for (const listener of this.listeners) listener()
  }
}
