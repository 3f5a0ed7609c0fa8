import { describe, expect, it } from 'vitest'
import { ConnectionBudget, type TrimRules } from '../../src/membership/connection-budget.js'

const conn = (peer: string, open: number, protocols: string[] = ['/meshsub/1.1.0']) => ({
  remotePeer: { toString: () => peer },
  timeline: { open },
  streams: protocols.map((protocol) => ({ protocol })),
})
const rules = (keep: string[] = []): TrimRules => ({
  keep: new Set(keep),
  background: (p) => p.startsWith('/meshsub/') || p.startsWith('/shoal/c/membership/'),
})

describe('the connection budget', () => {
  it('closes nothing within the budget', () => {
    const budget = new ConnectionBudget(3, 1_000, () => 100_000)
    expect(budget.excess([conn('a', 0), conn('b', 0), conn('c', 0)], rules())).toEqual([])
  })

  it('closes the least recently used beyond the budget, counting both its opening and its last use', () => {
    let now = 0
    const budget = new ConnectionBudget(2, 1_000, () => now)
    const connections = [conn('a', 0), conn('b', 10), conn('c', 20), conn('d', 30)]
    now = 5_000
    budget.touch('a')
    now = 10_000
    const closed = budget.excess(connections, rules()).map((c) => c.remotePeer.toString())
    expect(closed).toEqual(['b', 'c'])
  })

  it('keeps ring neighbours and mesh peers, connections in use by another subsystem, and recently used ones', () => {
    let now = 0
    const budget = new ConnectionBudget(1, 1_000, () => now)
    const connections = [
      conn('neighbour', 0),
      conn('raft', 0, ['/meshsub/1.1.0', '/shoal/c/raft/1.0.0']),
      conn('fresh', 0),
      conn('idle', 0, ['/meshsub/1.1.0', '/shoal/c/membership/sync/1.0.0']),
      conn('new', 9_500),
    ]
    now = 9_800
    budget.touch('fresh')
    now = 10_000
    const closed = budget.excess(connections, rules(['neighbour'])).map((c) => c.remotePeer.toString())
    // Four over the budget, but only one may go.
    expect(closed).toEqual(['idle'])
  })
})
