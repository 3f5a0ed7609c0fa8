import { afterAll, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'

describe('founding: a node that founded a cluster alone joins the one it meets', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  // Was issue 18's "a freshly started node can found a one-voter cluster of its own when
  // its join is slow". It still founds (it cannot know), but a lone founding that decided
  // nothing gives way when it meets another cluster of the same name.
  it('two agents that each founded a cluster alone end in one cluster with one leader', async () => {
    const a = await cluster.start()
    await waitFor('a to lead its own cluster', () => a.manager.status().acting)
    const b = await cluster.start({ bootstrap: [] })
    await waitFor('b to lead a cluster of its own', () => b.manager.status().acting)
    expect(a.clusterState.current().manager).toBe(a.id)
    expect(b.clusterState.current().manager).toBe(b.id)
    // A third agent knows both: the memberships merge, and so must the clusters.
    const c = await cluster.start({ bootstrap: [a.membership.self.addrs[0]!, b.membership.self.addrs[0]!] })
    const agents = [a, b, c]
    await cluster.waitForConvergence(agents)
    const leader = await waitFor(
      'one leader that every agent follows',
      () => {
        const views = agents.map((x) => x.manager.status())
        const leaders = agents.filter((x) => x.manager.status().acting)
        if (leaders.length !== 1) return null
        return views.every((v) => v.manager === leaders[0]!.id && v.quorum) ? leaders[0]! : null
      },
      { timeout: 60_000 },
    )
    await waitFor('every agent to hold the leader’s state', () =>
      agents.every((x) => x.clusterState.current().manager === leader.id),
    )
    await waitFor('three voters', () => leader.manager.status().voters.length === 3, { timeout: 60_000 })
  })

  it('a lone founder gives way to a grown cluster whatever their ids (it used to wait for the larger id to give way)', async () => {
    const grown = new TestCluster()
    try {
      const first = await grown.startMany(3)
      await grown.waitForConvergence(first)
      const leader = await waitFor(
        'a leader of three voters',
        () => first.find((x) => x.manager.status().acting && x.manager.status().voters.length === 3),
        { timeout: 60_000 },
      )
      // A lone founder whose id is smaller than the leader's: by ids alone, it would wait for
      // the leader to give way, which a cluster of three voters never does.
      let lone = await grown.start({ bootstrap: [] })
      while (lone.id > leader.id) {
        await lone.stop({ leave: false })
        lone = await grown.start({ bootstrap: [] })
      }
      await waitFor('the lone node to lead a cluster of its own', () => lone.manager.status().acting)
      expect(lone.manager.status().voters).toEqual([lone.id])
      const bridge = await grown.start({
        bootstrap: [leader.membership.self.addrs[0]!, lone.membership.self.addrs[0]!],
      })
      const agents = [...first, lone, bridge]
      await waitFor(
        'every agent to follow the grown cluster’s leader',
        () =>
          agents.every((x) => x.manager.status().manager === leader.id && x.manager.status().quorum) &&
          !lone.manager.status().acting,
        { timeout: 60_000 },
      )
      expect(lone.clusterState.current().manager).toBe(leader.id)
    } finally {
      await grown.cleanup()
    }
  })
})
