import { createServer } from 'node:net'

/** A TCP port free on `host` right now: `preferred` when it is, else one the OS picks. */
export async function freePort(host = '127.0.0.1', preferred?: number): Promise<number> {
  if (preferred != null) {
    const port = await tryListen(host, preferred).catch(() => null)
    if (port != null) return port
  }
  return tryListen(host, 0)
}

function tryListen(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(port, host, () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address != null ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/**
 * True when something already listens on `host:port`. Any other listen error (an
 * address this machine lacks, a privileged port) is left for the real listen to report.
 */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'))
    server.listen(port, host, () => server.close(() => resolve(false)))
  })
}
