import { join } from 'node:path'
import type { Agent } from '../../src/bootstrap/index.js'
import { ApiClient } from '../../src/cli/client.js'
import { publish } from '../../src/cli/publish.js'
import type { RolloutView } from '../../src/manager/index.js'
import type { TestCluster } from './cluster.js'
import { makeComponentDistribution } from './components.js'
import { makeKey } from './distribution.js'

/**
 * One agent (test preset) that trusts a fresh publisher key, with the steps the
 * runtime tests repeat: publish a version of `app` made of one component `web`
 * (an HTTP server whose source is given), roll a version out, list web's instances.
 */
export async function oneAgent(cluster: TestCluster) {
  const dir = await cluster.dataDir()
  const keys = await makeKey(dir)
  const [agent] = (await cluster.startMany(1, { trust: [keys.pub] })) as [Agent]
  const client = new ApiClient(agent.apiUrl)
  /** Publishes app@VERSION: `web` runs `server` (server.mjs) with HTTP, plus `descriptor`. */
  const publishWeb = async (version: string, server: string, descriptor: Record<string, unknown> = {}) => {
    const content = await makeComponentDistribution(join(dir, `v${version}`), {
      web: {
        files: { 'server.mjs': server },
        descriptor: { start: { node: 'server.mjs' }, http: true, ...descriptor },
      },
    })
    await publish(client, { dir: content, name: 'app', version, keyFile: keys.key, progress: false })
  }
  const rollout = (version: string, options: Record<string, unknown> = {}) =>
    client.post<RolloutView>('/api/rollouts', { json: { distribution: `app@${version}`, ...options } })
  const webs = () => agent.runtime.status().components.filter((c) => c.name === 'web')
  return { dir, agent, client, publishWeb, rollout, webs }
}

/** Whether a process still runs. */
export function isRunning(pid: number | null): boolean {
  if (pid == null) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
