import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, openSync } from 'node:fs'
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../../shared/index.js'
import { messageOf } from '../../shared/index.js'
import { OsgiBundleError, OsgiUnavailableError } from '../errors.js'
import { type BundleStep, planBundles, type WantedBundle } from './bundle-plan.js'
import { type BundleInfo, ManagementClient, type ServiceInfo } from './management-client.js'

/** Apache Felix's launcher jar (Debian's felix-main), or SHOAL_FELIX_JAR. */
const FELIX_JAR = process.env.SHOAL_FELIX_JAR ?? '/usr/share/felix-framework/bin/felix.jar'
/** The management agent bundle built from osgi/agent by `npm run build` (scripts/build-osgi.mjs). */
const AGENT_JAR_CANDIDATES = [
  '../../../osgi/shoal-management-agent.jar',
  '../../../dist/osgi/shoal-management-agent.jar',
]
/** How long the framework may take to start and open the management socket. */
const START_TIMEOUT_MS = 60_000
/** How often bundle states are read while the framework runs (bundles may stop by themselves). */
const POLL_MS = 2_000

export interface OsgiHostInit {
  /** Where the framework keeps its cache and configuration (`<data>/osgi`). */
  dir: string
  /** Environment of the framework process (the runtime's mark, so a restarted agent can reap it). */
  env: Record<string, string>
  /** Where the framework's output goes. */
  logFile: string
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

/** Why this node cannot run osgi components, or null when it can. */
export function osgiUnavailableReason(): string | null {
  if (!existsSync(FELIX_JAR)) return `Apache Felix is not installed (${FELIX_JAR}; Debian: felix-main)`
  if (agentJar() == null) return 'the OSGi management agent was not built (needs a JDK at build time)'
  try {
    execFileSync(
      process.env.JAVA_HOME == null ? 'java' : join(process.env.JAVA_HOME, 'bin', 'java'),
      ['-version'],
      {
        stdio: 'ignore',
      },
    )
  } catch {
    return 'no Java runtime (java) is installed'
  }
  return null
}

function agentJar(): string | null {
  const here = fileURLToPath(new URL('.', import.meta.url))
  return AGENT_JAR_CANDIDATES.map((p) => join(here, p)).find((p) => existsSync(p)) ?? null
}

/**
 * The node's one Apache Felix framework, run as a child process with Shoal's
 * management agent bundle, and the osgi components installed in it as bundles.
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
  private errors = new Map<string, string>()
  private poller: NodeJS.Timeout | undefined
  private readonly listeners = new Set<() => void>()

  constructor(
    private readonly init: OsgiHostInit,
    private readonly log: Logger,
  ) {}

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
    const client = await this.framework()
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

  /** Bundle states and registered services for member metadata (small: ours only). */
  metadata(): { bundles: Array<Record<string, unknown>>; services: Array<Record<string, unknown>> } | null {
    if (this.wanted.length === 0) return null
    const ours = new Map([...this.installed].map(([name, b]) => [b.id, name]))
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
    }
  }

  /** Every bundle and service in the framework (`GET /api/osgi`). */
  frameworkView(): { running: boolean; pid: number | null; bundles: BundleInfo[]; services: ServiceInfo[] } {
    return {
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

  private framework(): Promise<ManagementClient> {
    if (this.client != null) return Promise.resolve(this.client)
    this.starting ??= this.launch().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async launch(): Promise<ManagementClient> {
    const unavailable = osgiUnavailableReason()
    if (unavailable != null)
      throw new OsgiUnavailableError(`this node cannot run osgi components: ${unavailable}`)
    const deploy = join(this.init.dir, 'deploy')
    await mkdir(deploy, { recursive: true })
    await copyFile(agentJar()!, join(deploy, 'shoal-management-agent.jar'))
    const portFile = join(this.init.dir, 'agent.port')
    await rm(portFile, { force: true })
    const config = join(this.init.dir, 'config.properties')
    // The framework's cache is rebuilt at each start: Shoal's store is the source of truth.
    await writeFile(
      config,
      [
        `org.osgi.framework.storage=${join(this.init.dir, 'cache')}`,
        'org.osgi.framework.storage.clean=onFirstInit',
        `felix.auto.deploy.dir=${deploy}`,
        'felix.auto.deploy.action=install,start',
        'org.osgi.framework.startlevel.beginning=100',
        // Felix 4's URL handler proxies fail on JDK 17; bundles come as streams, no URL handler is needed.
        'felix.service.urlhandlers=false',
        'shoal.agent.port=0',
        `shoal.agent.portfile=${portFile}`,
        '',
      ].join('\n'),
    )
    const java = process.env.JAVA_HOME == null ? 'java' : join(process.env.JAVA_HOME, 'bin', 'java')
    const out = openSync(this.init.logFile, 'a')
    const child = spawn(
      java,
      [
        // Felix's boot delegation reaches into java.base (JDK 9+ modules).
        '--add-opens=java.base/java.security=ALL-UNNAMED',
        '--add-opens=java.base/java.lang=ALL-UNNAMED',
        `-Dfelix.config.properties=file:${config}`,
        '-jar',
        FELIX_JAR,
      ],
      { cwd: this.init.dir, env: { ...process.env, ...this.init.env }, stdio: ['ignore', out, out] },
    )
    this.child = child
    if (child.pid != null) this.init.spawned(child.pid)
    child.once('exit', (code, signal) => this.exited(child, code, signal))
    const deadline = Date.now() + START_TIMEOUT_MS
    let port: number | null = null
    while (port == null) {
      if (child.exitCode != null || child.signalCode != null)
        throw new OsgiUnavailableError(`the OSGi framework exited at start; see ${this.init.logFile}`)
      if (Date.now() > deadline)
        throw new OsgiUnavailableError(`the OSGi framework did not start; see ${this.init.logFile}`)
      port = Number(await readFile(portFile, 'utf8').catch(() => '')) || null
      if (port == null) await sleep(50)
    }
    const client = await ManagementClient.connect(port)
    this.client = client
    this.installed.clear()
    this.log.info('OSGi framework started', { pid: child.pid, port })
    clearInterval(this.poller)
    this.poller = setInterval(() => void this.refreshStates(), POLL_MS)
    this.poller.unref()
    return client
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
      this.errors.set(name, messageOf(err))
      throw new Error(`${step.op} of bundle ${name} failed: ${messageOf(err)}`)
    }
  }

  private async refreshStates(): Promise<void> {
    const client = this.client
    if (client == null) return
    try {
      const [bundles, services] = await Promise.all([client.bundles(), client.services()])
      const changed =
        JSON.stringify(bundles) !== JSON.stringify(this.bundles) ||
        JSON.stringify(services) !== JSON.stringify(this.services)
      this.bundles = bundles
      this.services = services
      if (changed) this.emit()
    } catch (err) {
      this.log.debug('could not read bundle states', { error: messageOf(err) })
    }
  }

  private emit(): void {
    for (const listener of this.listeners) listener()
  }
}
