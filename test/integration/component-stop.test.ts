import { afterEach, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'
import { oneAgent } from '../helpers/one-agent.js'
import { waitFor } from '../helpers/wait.js'

const SERVER = `
import { createServer } from 'node:http'
createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), process.env.HOST)
process.on('SIGTERM', () => process.exit(0))
`

describe('a component that exits while the agent stops', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  // systemd's default KillMode signals every process of the service at once: a component may
  // exit before its agent drains it. That is the end of it, not a crash to restart.
  it('is not restarted once the agent has begun to stop', async () => {
    cluster = new TestCluster()
    const { agent, publishWeb, rollout } = await oneAgent(cluster)
    await publishWeb('1', SERVER)
    await rollout('1')
    const web = () => agent.runtime.status().components.find((c) => c.name === 'web')
    const { pid } = await waitFor('web ready', () => (web()?.state === 'ready' ? web() : null))

    agent.runtime.beginShutdown()
    process.kill(pid!, 'SIGTERM')
    await waitFor('the exit noted', async () =>
      (await agent.runtime.logTail('web', 20)).some((line) =>
        line.includes('exited while stopping; not restarted'),
      ),
    )
    expect(web()).toMatchObject({ state: 'stopped', pid: null, restarts: 0 })
    expect((await agent.runtime.logTail('web', 20)).some((line) => line.includes('restarting'))).toBe(false)
  })
})
