import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../shared/index.js'
import { messageOf } from '../shared/index.js'
import { EXPOSITION_CONTENT_TYPE, startProcessMetrics } from './exposition.js'

export interface MetricsServerInit {
  host: string
  port: number
  /** The text to answer `GET /metrics` with. */
  render: () => Promise<string>
}

/**
 * A listener that answers only `GET /metrics`: for processes whose main port
 * belongs to someone else (the load balancer's proxy port carries the
 * application's own paths, `/metrics` among them).
 */
export class MetricsServer {
  private server: Server | undefined

  constructor(
    private readonly init: MetricsServerInit,
    private readonly log: Logger,
  ) {}

  async start(): Promise<{ host: string; port: number }> {
    if (this.server != null) return this.address()
    // Sampled from now, so the first scrape already shows the event loop and CPU.
    startProcessMetrics()
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n')
        return
      }
      this.init
        .render()
        .then((text) => res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE }).end(text))
        .catch((err: unknown) => {
          this.log.warn('rendering metrics failed', { error: messageOf(err) })
          res.writeHead(500, { 'content-type': 'text/plain' }).end('rendering metrics failed\n')
        })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port, this.init.host, () => resolve())
    })
    this.server = server
    return this.address()
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server == null) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  address(): { host: string; port: number } {
    const info = this.server?.address() as AddressInfo | null | undefined
    if (info == null) throw new Error('the metrics listener is not listening')
    return { host: this.init.host, port: info.port }
  }
}
