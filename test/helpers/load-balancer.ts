import type { Agent } from '../../src/bootstrap/index.js'
import { Observer } from '../../src/bootstrap/index.js'
import { LoadBalancer } from '../../src/loadbalancer/index.js'
import { silentLogger } from '../../src/shared/logger.js'
import type { TestCluster } from './cluster.js'

/**
 * `shoal lb` in this process, as the CLI assembles it: an observer member joined
 * through every agent, the built-in proxy in front of `service` on 127.0.0.1, and
 * its per-version traffic figures served to the cluster. `stop` stops both.
 */
export async function startLoadBalancer(
  cluster: TestCluster,
  agents: readonly Agent[],
  service = 'web',
): Promise<{ url: string; admin: string; stop: () => Promise<void> }> {
  const observer = await Observer.start(
    {
      cluster: cluster.cluster,
      roles: ['lb'],
      dataDir: await cluster.dataDir(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: agents.map((a) => a.membership.self.addrs[0]!),
      mdns: false,
      preset: 'test',
    },
    silentLogger,
  )
  const lb = new LoadBalancer(
    {
      service,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, authorize: null },
      strategy: 'round-robin',
      ejectMs: 2000,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 10_000,
      maxRetries: 2,
    },
    {
      membership: observer.membership,
      traffic: { network: observer.node, cluster: cluster.cluster },
      logger: silentLogger,
    },
  )
  try {
    const { port, admin } = await lb.start()
    return {
      url: `http://127.0.0.1:${port}`,
      admin: `http://127.0.0.1:${admin.port}`,
      stop: async () => {
        await lb.stop().catch(() => {})
        await observer.stop()
      },
    }
  } catch (err) {
    await observer.stop()
    throw err
  }
}
