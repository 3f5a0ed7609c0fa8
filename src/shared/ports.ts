import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Ports below the kernel's ephemeral range: a port picked here and bound a moment
 * later cannot meanwhile be handed to someone's outgoing connection or `listen(0)`,
 * which is what happened to ports the OS picked (an agent then failed with
 * ERR_PORT_IN_USE while another test ran beside it).
 */
const STABLE_LOW = 20_000
const handedOut = new Set<number>()

/**
 * A TCP port free on `host` right now: `preferred` when it is, else a random free
 * one below the ephemeral range (never the same twice in this process), else one
 * the OS picks.
 */
export async function freePort(host = '127.0.0.1', preferred?: number): Promise<number> {
  if (preferred != null) {
    const port = await tryListen(host, preferred).catch(() => null)
    if (port != null) return remember(port)
  }
  const high = ephemeralLow() - 1
  if (high - STABLE_LOW >= 1000)
    for (let attempt = 0; attempt < 40; attempt++) {
      const candidate = STABLE_LOW + Math.floor(Math.random() * (high - STABLE_LOW + 1))
      if (handedOut.has(candidate)) continue
      const port = await tryListen(host, candidate).catch(() => null)
      if (port != null) return remember(port)
    }
  return remember(await tryListen(host, 0))
}

function remember(port: number): number {
  // A long-lived agent asks for a port at every component start: remember the recent ones only.
  if (handedOut.size >= 4096) handedOut.clear()
  handedOut.add(port)
  return port
}

/** The first port of the kernel's ephemeral range (Linux), or 32768 where it cannot be read. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 0 ? low : 32_768
  } catch {
    return 32_768
  }
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
