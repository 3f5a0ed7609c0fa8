import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, type AgentHooks, type AgentOptions } from '../../src/bootstrap/index.js'
import type { MemberState } from '../../src/membership/index.js'
import { createLogger, isLogLevel } from '../../src/shared/logger.js'
import { waitFor } from './wait.js'

const level = process.env.SHOAL_TEST_LOG ?? 'silent'
const logger = createLogger({ level: isLogLevel(level) ? level : 'silent' })

/**
 * Real agents on 127.0.0.1 in this process, with the test timer preset. Every
 * agent gets its own data folder; `cleanup()` stops them all and removes folders.
 */
export class TestCluster {
  readonly agents: Agent[] = []
  private readonly dirs: string[] = []

  constructor(readonly cluster = `test-${Math.random().toString(36).slice(2, 8)}`) {}

  async dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-test-'))
    this.dirs.push(dir)
    return dir
  }

  /** Starts an agent joining through `bootstrap` (default: the first agent's address). */
  async start(options: Partial<AgentOptions> = {}, hooks: AgentHooks = {}): Promise<Agent> {
    const first = this.agents[0]
    const agent = await Agent.start(
      {
        cluster: this.cluster,
        dataDir: options.dataDir ?? (await this.dataDir()),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        api: '127.0.0.1:0',
        mdns: false,
        preset: 'test',
        bootstrap: first == null ? [] : [first.membership.self.addrs[0]!],
        ...options,
      },
      logger,
      hooks,
    )
    this.agents.push(agent)
    return agent
  }

  async startMany(n: number, options: Partial<AgentOptions> = {}): Promise<Agent[]> {
    if (this.agents.length === 0) await this.start(options)
    const rest = Array.from({ length: n - 1 }, () => this.start(options))
    return [this.agents[0]!, ...(await Promise.all(rest))]
  }

  /** Waits until every agent in `agents` sees `id` in `state`. */
  async waitForState(agents: Agent[], id: string, state: MemberState, timeout = 60_000): Promise<void> {
    await waitFor(
      `${agents.length} agents to see ${id.slice(-6)} ${state}`,
      () => agents.every((agent) => agent.membership.get(id)?.state === state),
      { timeout },
    )
  }

  /** Waits until each agent lists exactly the given agents, all alive. */
  async waitForConvergence(agents: Agent[] = this.agents, timeout = 60_000): Promise<void> {
    const ids = agents.map((a) => a.id).sort()
    await waitFor(
      `${agents.length} agents to converge`,
      () =>
        agents.every((agent) => {
          const alive = agent.membership
            .members()
            .filter((m) => m.state === 'alive')
            .map((m) => m.id)
          return JSON.stringify(alive.sort()) === JSON.stringify(ids)
        }),
      { timeout },
    )
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.agents.map((agent) => agent.stop({ leave: false })))
    this.agents.length = 0
    await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })))
    this.dirs.length = 0
  }
}
