import { afterAll, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'

describe('availability: a graceful leave does not take the cluster’s decisions away', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  // Was a bug: in a cluster of two voters, when the one that is not the manager left
  // gracefully (`shoal node remove`, SIGTERM), the manager lost quorum for good: quorum
  // counted the left voter (1 of 2 alive), and only a manager with quorum may remove it
  // from the voters. A voter that announced its own leave is not a split: it no longer
  // counts (src/manager/election.ts), and the manager drops it from the voters.
  it('one of two voters leaves: the other keeps acting as the manager', async () => {
    const agents = await cluster.startMany(2)
    await cluster.waitForConvergence(agents)
    const manager = await waitFor('a manager recording both voters', () =>
      agents.find((a) => a.manager.status().acting && a.manager.status().voters.length === 2),
    )
    await agents.find((a) => a !== manager)!.stop({ leave: true })
    await waitFor('the manager to act alone, the left voter dropped', () => {
      const status = manager.manager.status()
      return status.acting && status.voters.length === 1
    })
    expect(manager.manager.status()).toMatchObject({ acting: true, quorum: true, voters: [manager.id] })
  })
})
