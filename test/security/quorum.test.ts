import { afterAll, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'

describe('availability: a graceful leave does not take the cluster’s decisions away', () => {
  const cluster = new TestCluster()
  afterAll(() => cluster.cleanup())

  // Was a bug before the Raft log: of two voters, when the one that was not the manager left
  // gracefully, the manager lost quorum for good. Now a voter that left is removed from the
  // configuration at once by the leader (single-server change, committed by the voters that
  // remain), and a leader that leaves hands leadership over first (no election timeout).
  it('voters leave one by one, the leader last but one: the rest keep a leader that acts', async () => {
    const agents = await cluster.startMany(3)
    await cluster.waitForConvergence(agents)
    const leader = await waitFor('a leader with 3 voters', () =>
      agents.find((a) => a.manager.status().acting && a.manager.status().voters.length === 3),
    )
    const [follower, other] = agents.filter((a) => a !== leader)
    await follower!.stop({ leave: true })
    // Two agents left: one voter is enough (a second would add a way to lose quorum, not a spare).
    await waitFor('the leader to act with the left voter removed', () => {
      const status = leader.manager.status()
      return status.acting && !status.voters.includes(follower!.id)
    })
    // The leader, maybe the only voter, leaves: it brings the other agent in as a voter and
    // hands leadership over first; the new leader removes it and acts alone.
    await leader.stop({ leave: true })
    await waitFor('the last voter to lead alone', () => {
      const status = other!.manager.status()
      return status.acting && status.voters.length === 1
    })
    expect(other!.manager.status()).toMatchObject({ acting: true, quorum: true, voters: [other!.id] })
  })
})
