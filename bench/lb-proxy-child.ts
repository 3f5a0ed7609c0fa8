/**
 * The built-in proxy alone in its own process, over a fixed backend list (what
 * `shoal lb` builds from membership), for the throughput comparison with HAProxy.
 * argv: PORT, JSON array of backend ports on 127.0.0.1. Prints "ready" once listening.
 */
import { HttpProxy } from '../src/loadbalancer/index.js'
import { silentLogger } from '../src/shared/logger.js'

const port = Number(process.argv[2])
const ports = JSON.parse(process.argv[3] ?? '[]') as number[]
const proxy = new HttpProxy(
  {
    host: '127.0.0.1',
    port,
    service: 'bench',
    strategy: 'round-robin',
    ejectMs: 5000,
    connectTimeoutMs: 2000,
    requestTimeoutMs: 60_000,
    maxRetries: 2,
  },
  silentLogger,
)
await proxy.start()
proxy.setBackends(
  ports.map((p, i) => ({
    key: `node${i}/web`,
    node: `node${i}`,
    component: 'web',
    version: '1',
    endpoint: `http://127.0.0.1:${p}`,
    host: '127.0.0.1',
    port: p,
    state: 'ready' as const,
    weight: 100,
  })),
)
console.log('ready')
// A clean exit on SIGTERM/SIGINT, so `node --cpu-prof` can write its profile.
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.once(signal, () => {
    void proxy.stop().finally(() => process.exit(0))
  })
