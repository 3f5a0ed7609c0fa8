import { createServer, type Server } from 'node:http'
import type { Logger } from '../shared/index.js'
import { boundAddress, closeHttpNow, listenHttp, messageOf } from '../shared/index.js'
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
    await listenHttp(server, this.init.host, this.init.port)
    this.server = server
    return this.address()
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server != null) await closeHttpNow(server)
  }

  address(): { host: string; port: number } {
    return boundAddress(this.server, this.init.host, 'the metrics listener')
  }
}
