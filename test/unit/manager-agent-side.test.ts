import { describe, expect, it } from 'vitest'
import { CommandClient, desiredOf, versionsInUse } from '../../src/manager/index.js'
import { type ClusterState, emptyState, type RolloutRecord } from '../../src/manager/record.js'
import type { Member, MemberMetadata } from '../../src/membership/index.js'
import { rolloutRecord } from '../helpers/rollout-record.js'

/** What moved out of the agent into the manager: the prepare-ahead rule, retention, the command waits. */

function rollout(patch: Partial<RolloutRecord>): RolloutRecord {
  return rolloutRecord({ progress: { n1: 'done', n2: 'pending' }, ...patch })
}

const state = (patch: Partial<ClusterState>): ClusterState => ({ ...emptyState(), ...patch })

function member(id: string, meta: MemberMetadata, self = false): Member {
  return { id, addrs: [], incarnation: 1, state: 'alive', meta, self, since: 0 }
}

describe('desiredOf: what the cluster state wants of a node', () => {
  it('nothing before the cluster wants a version', () => {
    expect(desiredOf(emptyState(), 'n1')).toBeNull()
  })

  it('its target (per node before the default), and which components run there', () => {
    const s = state({ defaultTarget: 'app@1', targets: { n2: 'app@0' }, placement: { db: ['n2'] } })
    const n1 = desiredOf(s, 'n1')!
    expect(n1.distribution).toBe('app@1')
    expect([n1.runs?.('db'), n1.runs?.('web')]).toEqual([false, true])
    expect(desiredOf(s, 'n2')?.distribution).toBe('app@0')
  })

  it.each([
    ['running', 'n2', 'app@2'],
    ['waiting-approval', 'n2', 'app@2'],
    ['paused', 'n2', 'app@2'],
    ['running', 'n1', null], // its turn has come and gone
    ['done', 'n2', null],
    ['aborted', 'n2', null],
  ] as const)('prepare-ahead: rollout %s, node %s unpacks %s', (rolloutState, node, prepare) => {
    const s = state({ defaultTarget: 'app@1', rollouts: [rollout({ state: rolloutState })] })
    expect(desiredOf(s, node)?.prepare).toBe(prepare)
  })
})

describe('versionsInUse: what retention keeps whatever its age', () => {
  it('what members run, what this node moves to, what the cluster wants, both ends of the newest rollouts', () => {
    const s = state({
      defaultTarget: 'app@5',
      targets: { n3: 'app@4' },
      rollouts: [
        rollout({ id: 'r4', distribution: 'app@5', from: 'app@3' }),
        rollout({ id: 'r3', distribution: 'app@3', from: 'app@2' }),
        rollout({ id: 'r2', distribution: 'app@2', from: 'app@1' }),
        rollout({ id: 'r1', distribution: 'app@1', from: 'app@0' }),
      ],
    })
    const members = [
      member(
        'n1',
        { distribution: 'web@1', runtime: { target: 'web@2', phase: 'fetching', error: null } },
        true,
      ),
      member('n2', { distribution: 'web@0', runtime: { target: 'web@9', phase: 'fetching', error: null } }),
    ]
    expect([...versionsInUse(s, members)].sort()).toEqual(
      ['app@1', 'app@2', 'app@3', 'app@4', 'app@5', 'web@0', 'web@1', 'web@2'].sort(),
    )
  })
})

describe('CommandClient: commands answered once this agent can show them', () => {
  it('waits for the state that holds the rollout, and for an unpublished version to be dropped here', async () => {
    let current = emptyState()
    let known = new Set(['app@2'])
    const record = rollout({ id: 'rx' })
    const client = new CommandClient({
      manager: {
        commandAt: async (command) => {
          expect(command).toMatchObject({
            op: 'rollout',
            distribution: 'app@2',
            requestedBy: 'alice (admin)',
          })
          setTimeout(() => (current = state({ rollouts: [record], seq: 7 })), 50)
          return { rollout: record, index: 7 }
        },
        unpublish: async ({ id }) => {
          setTimeout(() => (known = new Set()), 50)
          return { result: 'unpublished', entry: { id, by: 'bob', at: new Date(0).toISOString() } }
        },
      },
      store: { current: () => current },
      members: () => [],
      versions: { known: (id) => known.has(id), check: () => {} },
    })
    const view = await client.rollout({ distribution: 'app@2' }, 'alice (admin)')
    expect(view.id).toBe('rx')
    expect(current.rollouts).toHaveLength(1)
    await client.unpublish('app@2', 'bob')
    expect(known.size).toBe(0)
  })

  it('answers a command on a rollout this agent already holds only once it holds the decision (read-your-writes)', async () => {
    const record = rollout({ id: 'rx' })
    let current = state({ rollouts: [record], seq: 7 })
    const paused = { ...record, state: 'paused' as const }
    const client = new CommandClient({
      manager: {
        commandAt: async () => {
          setTimeout(() => (current = state({ rollouts: [paused], seq: 8 })), 50)
          return { rollout: paused, index: 8 }
        },
        unpublish: () => Promise.reject(new Error('not reached')),
      },
      store: { current: () => current },
      members: () => [],
      versions: { known: () => true, check: () => {} },
    })
    await client.command({ op: 'pause', id: 'rx' }, 'alice (admin)')
    expect(current.seq).toBe(8)
    expect(current.rollouts[0]?.state).toBe('paused')
  })

  it('refuses a rollout without NAME@VERSION, and one the version check refuses', async () => {
    const client = new CommandClient({
      manager: {
        commandAt: () => Promise.reject(new Error('not reached')),
        unpublish: () => Promise.reject(new Error('not reached')),
      },
      store: { current: emptyState },
      members: () => [],
      versions: {
        known: () => true,
        check: (id) => {
          throw new Error(`${id} breaks a rule`)
        },
      },
    })
    await expect(client.rollout({ distribution: 'app' }, 'x')).rejects.toMatchObject({
      code: 'ERR_BAD_REQUEST',
    })
    await expect(client.rollout({ distribution: 'app@1' }, 'x')).rejects.toThrow('app@1 breaks a rule')
  })
})
