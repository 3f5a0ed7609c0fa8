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

/** How long one request may take (a bundle start runs its activator). */
const REQUEST_TIMEOUT_MS = 30_000

/**
 * Talks to Shoal's management agent bundle inside the Felix framework over a
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

  setConfig(config: unknown): Promise<null> {
    return this.request('config', JSON.stringify(config))
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
