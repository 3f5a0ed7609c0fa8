import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Listens on `host:port` (0: the OS picks); rejects with the listen error (EADDRINUSE, …). */
export async function listenHttp(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Closes at once: open connections, idle or not, are cut (for listeners nobody drains). */
export async function closeHttpNow(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** The address `server` is bound to, with the host it was asked to listen on; `what` names it in the error. */
export function boundAddress(
  server: Server | undefined,
  host: string,
  what: string,
): { host: string; port: number } {
  const info = server?.address() as AddressInfo | null | undefined
  if (info == null) throw new Error(`${what} is not listening`)
  return { host, port: info.port }
}

/** "HOST" a listener there is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
