import { Agent, type AgentHooks, type AgentOptions } from '../../../src/bootstrap/index.js'
import { createLogger, type LogLevel } from '../../../src/shared/logger.js'
import type { TestCluster } from '../../helpers/cluster.js'

/** An agent of `cluster` whose log lines (at `level` and above) are kept in `lines`. */
export interface LoggedAgent {
  agent: Agent
  lines: string[]
}

/**
 * Starts an agent the way TestCluster.start does (loopback, test preset, no
 * mDNS, joining through the cluster's first agent) but with a logger that
 * keeps its lines; the cluster's cleanup stops it.
 */
export async function startLogged(
  cluster: TestCluster,
  options: Partial<AgentOptions> = {},
  level: LogLevel = 'info',
  hooks: AgentHooks = {},
): Promise<LoggedAgent> {
  const lines: string[] = []
  const first = cluster.agents[0]
  const agent = await Agent.start(
    {
      cluster: cluster.cluster,
      dataDir: options.dataDir ?? (await cluster.dataDir()),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      api: '127.0.0.1:0',
      mdns: false,
      preset: 'test',
      bootstrap: first == null ? [] : [first.membership.self.addrs[0]!],
      ...options,
    },
    createLogger({ level, write: (line) => lines.push(line) }),
    hooks,
  )
  cluster.agents.push(agent)
  return { agent, lines }
}
