import { createConnection, type Socket } from 'node:net'
import { createInterface, type Interface } from 'node:readline'
import { OsgiError } from '../errors.js'

/** A bundle as the management agent reports it. */
export interface BundleInfo {
  id: number
  symbolicName: string | null
  version: string
  state: 'INSTALLED' | 'RESOLVED' | 'STARTING' | 'STOPPING' | 'ACTIVE' | 'UNINSTALLED' | 'UNKNOWN'
  startLevel: number
  location: string
}

/** A registered OSGi service. */
export interface ServiceInfo {
  id: number
  bundle: number
  symbolicName: string | null
  objectClass: string[]
  properties: Record<string, string>
}

/** What Declarative Services says of a component (DsComponents.java), worst configuration first. */
export const DS_COMPONENT_STATES = [
  'active',
  'satisfied',
  'unsatisfied-reference',
  'unsatisfied-configuration',
  'failed-activation',
  'disabled',
  'unknown',
] as const
export type DsComponentState = (typeof DS_COMPONENT_STATES)[number]

/** A reference a component still waits for. */
export interface UnsatisfiedReference {
  name: string
  /** The service interface it needs (null if the runtime did not say). */
  interface: string | null
  /** Its target filter, if any. */
  target: string | null
}

/** A Declarative Services component as the framework's ServiceComponentRuntime reports it. */
export interface DsComponentInfo {
  name: string
  /** Id of the bundle that declares it. */
  bundle: number | null
  symbolicName: string | null
  state: DsComponentState
  enabled: boolean
  /** How many configurations it has (0 while a required configuration is missing). */
  configurations: number
  configurationPolicy: 'optional' | 'require' | 'ignore' | null
  configurationPid: string[]
  unsatisfied: UnsatisfiedReference[]
  /** Why its activation failed (state failed-activation). */
  failure: string | null
}

/** A configuration value as Configuration Admin holds it (a JSON null leaves the key out). */
export type OsgiPropertyValue = string | number | boolean | null | string[] | number[] | boolean[]

/** What `config PID JSON` did: `changed` is false when the PID already had these properties. */
export interface ConfigureResult {
  pid: string
  changed: boolean
  /** Through a registered ConfigurationAdmin, or the agent's own ManagedService delivery. */
  through: 'configuration-admin' | 'managed-service'
}

/** The PIDs Shoal configured since the framework started. */
export interface ConfigurationsInfo {
  configurationAdmin: boolean
  pids: string[]
}

/** How long one request may take (a bundle start runs its activator). */
const REQUEST_TIMEOUT_MS = 30_000

/**
 * Talks to Shoal's management agent bundle inside the OSGi framework over a
 * loopback socket: one tab-separated request per line, one JSON answer per line,
 * one request at a time.
 */
export class ManagementClient {
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly socket: Socket,
    private readonly lines: Interface,
  ) {}

  static connect(port: number): Promise<ManagementClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port })
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        socket.on('error', () => {})
        resolve(new ManagementClient(socket, createInterface({ input: socket })))
      })
    })
  }

  close(): void {
    this.lines.close()
    this.socket.destroy()
  }

  bundles(): Promise<BundleInfo[]> {
    return this.request('bundles')
  }

  services(): Promise<ServiceInfo[]> {
    return this.request('services')
  }

  install(name: string, path: string, startLevel: number): Promise<BundleInfo> {
    return this.request('install', name, path, String(startLevel))
  }

  update(id: number, path: string): Promise<BundleInfo> {
    return this.request('update', String(id), path)
  }

  start(id: number): Promise<BundleInfo> {
    return this.request('start', String(id))
  }

  stop(id: number): Promise<BundleInfo> {
    return this.request('stop', String(id))
  }

  uninstall(id: number): Promise<null> {
    return this.request('uninstall', String(id))
  }

  refresh(): Promise<null> {
    return this.request('refresh')
  }

  /** The distribution's whole config as the System property `shoal.config` (the pre-Config Admin way). */
  setConfig(config: unknown): Promise<null> {
    return this.request('config', JSON.stringify(config))
  }

  /** Declarative Services components (empty when no ServiceComponentRuntime is registered). */
  components(): Promise<DsComponentInfo[]> {
    return this.request('components')
  }

  /** Creates or updates the configuration of `pid` (`factory~name`: a named factory configuration). */
  configure(pid: string, properties: Readonly<Record<string, OsgiPropertyValue>>): Promise<ConfigureResult> {
    return this.request('config', pid, JSON.stringify(properties))
  }

  /** Deletes the configuration of `pid`. */
  unconfigure(pid: string): Promise<{ pid: string; deleted: boolean }> {
    return this.request('unconfig', pid)
  }

  configurations(): Promise<ConfigurationsInfo> {
    return this.request('configs')
  }

  private request<T>(...fields: string[]): Promise<T> {
    if (fields.some((f) => /[\t\n\r]/.test(f)))
      throw new OsgiError(`an OSGi request field holds a tab or a line break: ${fields[0]}`)
    const run = this.queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          const timer = setTimeout(() => {
            cleanup()
            reject(new OsgiError(`the OSGi framework did not answer "${fields[0]}" in time`))
          }, REQUEST_TIMEOUT_MS)
          const onLine = (line: string) => {
            cleanup()
            const answer = JSON.parse(line) as { ok: true; result: T } | { ok: false; error: string }
            if (answer.ok) resolve(answer.result)
            else reject(new OsgiError(answer.error))
          }
          const onClose = () => {
            cleanup()
            reject(new OsgiError('the OSGi framework closed the management connection'))
          }
          const cleanup = () => {
            clearTimeout(timer)
            this.lines.off('line', onLine)
            this.lines.off('close', onClose)
          }
          this.lines.once('line', onLine)
          this.lines.once('close', onClose)
          this.socket.write(`${fields.join('\t')}\n`)
        }),
    )
    this.queue = run.catch(() => {})
    return run
  }
}
