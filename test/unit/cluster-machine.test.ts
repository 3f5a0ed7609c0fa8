/**
 * The manager's replicated state machine (consensus/cluster-machine.ts): a
 * compare-and-set change applies only at the version it was decided on, a
 * request id applies once (its copies get the first answer), entries that are no
 * command (or cannot be read) only move lastIndex, rollout records are upserted
 * newest first and trimmed to the history length, a snapshot carries everything
 * (sessions included), and diff() says exactly what changed.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type ClusterChange,
  ClusterMachine,
  type CommandAnswer,
  encodeChange,
} from '../../src/manager/consensus/cluster-machine.js'
import { AUDIT_LENGTH, HISTORY_LENGTH } from '../../src/manager/constants.js'
import { type Entry, genesisSnapshot, type RequestId, type Snapshot } from '../../src/manager/raft/index.js'
import type { ClusterState, RolloutRecord } from '../../src/manager/record.js'
import { rolloutRecord } from '../helpers/rollout-record.js'

const change = (base: number, fields: Partial<ClusterChange> = {}): ClusterChange => ({
  v: 1,
  base,
  set: {},
  rollouts: [],
  answer: null,
  ...fields,
})

const command = (
  index: number,
  data: ClusterChange | Uint8Array,
  request: RequestId | null = null,
  term = 1,
): Entry => ({
  kind: 'command',
  index,
  term,
  request,
  data: data instanceof Uint8Array ? data : encodeChange(data),
})

const termStart = (index: number, term = 1): Entry => ({
  kind: 'term-start',
  index,
  term,
  certificate: { term, leader: 'a', votes: [] },
})

const snapshotOf = (machine: ClusterMachine): Snapshot => ({
  meta: { ...genesisSnapshot(['a']).meta, index: machine.lastIndex, term: 1 },
  data: machine.encode(),
})

const rollout = (id: string, overrides: Partial<RolloutRecord> = {}) => rolloutRecord({ id, ...overrides })

/** Everything the machine holds, as comparable data. */
const everything = (m: ClusterMachine) => ({
  version: m.version,
  lastIndex: m.lastIndex,
  state: m.state(),
  encoded: new TextDecoder().decode(m.encode()),
})

describe('applying a change', () => {
  it('at the current version: sets its fields, moves the version and answers', () => {
    const m = new ClusterMachine()
    const outcome = m.apply(
      command(
        1,
        change(0, {
          set: { defaultTarget: 'app@1', targets: { n1: 'app@2' } },
          answer: { rollout: 'r1' },
        }),
      ),
    )
    expect(outcome).toEqual({ status: 'applied', answer: { rollout: 'r1' } })
    expect(m.version).toBe(1)
    expect(m.lastIndex).toBe(1)
    const state = m.state()
    expect(state.defaultTarget).toBe('app@1')
    expect(state.targets).toEqual({ n1: 'app@2' })
    // Fields the change did not name keep their values.
    expect(state.placement).toEqual({})
    expect(state.unplaced).toEqual([])
    // Another change on top of it, decided on version 1.
    expect(m.apply(command(2, change(1, { set: { placementFrom: 'app@1' } })))).toEqual({
      status: 'applied',
      answer: null,
    })
    expect(m.state()).toMatchObject({ defaultTarget: 'app@1', placementFrom: 'app@1' })
    expect(m.version).toBe(2)
  })

  it('decided on a stale version: conflict, nothing changes but lastIndex', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { set: { defaultTarget: 'app@1' } })))
    const before = m.state()
    const outcome = m.apply(
      command(2, change(0, { set: { defaultTarget: 'app@9' }, rollouts: [rollout('r9')] }), {
        client: 'c',
        seq: 1,
      }),
    )
    expect(outcome).toEqual({ status: 'conflict' })
    expect(m.state()).toEqual(before)
    expect(m.version).toBe(1)
    expect(m.lastIndex).toBe(2)
    // A conflict records no session: the same request decided again applies.
    expect(m.answered({ client: 'c', seq: 1 })).toBeNull()
    const retry = m.apply(
      command(3, change(1, { set: { defaultTarget: 'app@9' }, answer: { rollout: 'r9' } }), {
        client: 'c',
        seq: 1,
      }),
    )
    expect(retry).toEqual({ status: 'applied', answer: { rollout: 'r9' } })
    expect(m.state().defaultTarget).toBe('app@9')
  })

  it('a version from the future conflicts as well', () => {
    const m = new ClusterMachine()
    expect(m.apply(command(1, change(5, { set: { defaultTarget: 'x@1' } })))).toEqual({ status: 'conflict' })
    expect(m.version).toBe(0)
    expect(m.state().defaultTarget).toBeNull()
  })
})

describe('client sessions', () => {
  const request = { client: 'agent-1', seq: 4 }

  it('a duplicate request gets the first answer and applies nothing', () => {
    const m = new ClusterMachine()
    const first = change(0, {
      set: { defaultTarget: 'app@2' },
      rollouts: [rollout('r1')],
      answer: { rollout: 'r1' },
    })
    expect(m.apply(command(1, first, request))).toEqual({ status: 'applied', answer: { rollout: 'r1' } })
    const after = everything(m)
    // The retried copy, decided again on the newer version (it would apply without the session).
    const copy = change(1, {
      set: { defaultTarget: 'app@3' },
      rollouts: [rollout('r2')],
      answer: { rollout: 'r2' },
    })
    expect(m.apply(command(2, copy, request))).toEqual({ status: 'duplicate', answer: { rollout: 'r1' } })
    expect(m.version).toBe(1)
    expect(m.lastIndex).toBe(2)
    expect(m.state()).toEqual(after.state)
    expect(m.answered(request)).toEqual({ rollout: 'r1' })
  })

  it('an older request of a client that moved on is stale: nothing applies', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { answer: { rollout: 'r1' } }), { client: 'c', seq: 2 }))
    const before = m.state()
    const outcome = m.apply(
      command(2, change(1, { set: { defaultTarget: 'old@1' }, answer: { rollout: 'r0' } }), {
        client: 'c',
        seq: 1,
      }),
    )
    expect(outcome).toEqual({ status: 'stale' })
    expect(m.state()).toEqual(before)
    expect(m.version).toBe(1)
    expect(m.lastIndex).toBe(2)
    expect(m.answered({ client: 'c', seq: 1 })).toBeNull()
    // A newer request of the same client applies.
    expect(
      m.apply(command(3, change(1, { answer: { rollout: 'r3' } }), { client: 'c', seq: 3 })).status,
    ).toBe('applied')
    expect(m.answered({ client: 'c', seq: 3 })).toEqual({ rollout: 'r3' })
  })

  it('sessions are per client', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { answer: { rollout: 'r1' } }), { client: 'a', seq: 1 }))
    expect(m.apply(command(2, change(1, { answer: { rollout: 'r2' } }), { client: 'b', seq: 1 }))).toEqual({
      status: 'applied',
      answer: { rollout: 'r2' },
    })
    expect(m.answered({ client: 'a', seq: 1 })).toEqual({ rollout: 'r1' })
    expect(m.answered({ client: 'b', seq: 1 })).toEqual({ rollout: 'r2' })
  })

  it('an unpublish answer is kept like a rollout answer', () => {
    const m = new ClusterMachine()
    const entry = { id: 'app@1', by: 'ops', at: new Date(0).toISOString() }
    const answer: CommandAnswer = { unpublished: { result: 'unpublished', entry } }
    m.apply(command(1, change(0, { set: { unpublished: [entry] }, answer }), { client: 'c', seq: 1 }))
    expect(m.state().unpublished).toEqual([entry])
    expect(m.apply(command(2, change(1, { answer }), { client: 'c', seq: 1 }))).toEqual({
      status: 'duplicate',
      answer,
    })
  })
})

describe('entries that are no change', () => {
  it('a term start or a configuration moves lastIndex only', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { set: { defaultTarget: 'app@1' } })))
    const before = m.state()
    expect(m.apply(termStart(2, 2))).toEqual({ status: 'none' })
    expect(
      m.apply({
        kind: 'config',
        index: 3,
        term: 2,
        config: { voters: ['a', 'b'], learners: [] },
        change: { op: 'add-voter', node: 'b' },
        certificate: { term: 2, leader: 'a', votes: [] },
        signature: new Uint8Array(8),
      }),
    ).toEqual({ status: 'none' })
    expect(m.lastIndex).toBe(3)
    expect(m.version).toBe(1)
    expect(m.state()).toEqual(before)
    // A change decided on version 1 still applies after them.
    expect(m.apply(command(4, change(1, { set: { defaultTarget: 'app@2' } }))).status).toBe('applied')
    expect(m.version).toBe(4)
  })

  it.each([
    ['not JSON', new TextEncoder().encode('{not json')],
    ['empty', new Uint8Array()],
    ['a newer format', new TextEncoder().encode(JSON.stringify({ ...change(0), v: 2 }))],
    ['an unknown key', new TextEncoder().encode(JSON.stringify({ ...change(0), extra: 1 }))],
    ['a field of the wrong type', new TextEncoder().encode(JSON.stringify(change(0, { base: -1 })))],
    [
      'a key no entry may set',
      new TextEncoder().encode(JSON.stringify({ ...change(0), set: { manager: 'evil' } })),
    ],
  ])('a malformed command (%s) is skipped alike: lastIndex only, no session', (_, data) => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { set: { defaultTarget: 'app@1' } })))
    const before = m.state()
    expect(m.apply(command(2, data, { client: 'c', seq: 1 }))).toEqual({ status: 'none' })
    expect(m.lastIndex).toBe(2)
    expect(m.version).toBe(1)
    expect(m.state()).toEqual(before)
    expect(m.answered({ client: 'c', seq: 1 })).toBeNull()
  })
})

describe('rollout records', () => {
  it('a new one goes first, a known one is replaced where it is', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { rollouts: [rollout('r1')] })))
    m.apply(command(2, change(1, { rollouts: [rollout('r2')] })))
    expect(m.state().rollouts.map((r) => r.id)).toEqual(['r2', 'r1'])
    m.apply(command(3, change(2, { rollouts: [rollout('r1', { state: 'done', reason: 'finished' })] })))
    const rollouts = m.state().rollouts
    expect(rollouts.map((r) => r.id)).toEqual(['r2', 'r1'])
    expect(rollouts[1]).toMatchObject({ id: 'r1', state: 'done', reason: 'finished' })
    expect(rollouts[0]?.state).toBe('running')
  })

  it('several added by one change keep the newest-first order of the state that was diffed', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { rollouts: [rollout('r1')] })))
    const next = m.state()
    next.rollouts = [rollout('r4'), rollout('r3'), rollout('r2', { state: 'superseded' }), ...next.rollouts]
    const diff = m.diff(next, null)!
    // Oldest first on the wire, so that adding each in front ends newest first.
    expect(diff.rollouts.map((r) => r.id)).toEqual(['r2', 'r3', 'r4'])
    expect(m.apply(command(2, diff)).status).toBe('applied')
    expect(m.state().rollouts.map((r) => r.id)).toEqual(['r4', 'r3', 'r2', 'r1'])
    expect(m.state().rollouts).toEqual(next.rollouts)
  })

  it('a new one and a changed one in one change', () => {
    const m = new ClusterMachine()
    m.apply(command(1, change(0, { rollouts: [rollout('r1')] })))
    const next = m.state()
    next.rollouts = [rollout('r2'), rollout('r1', { state: 'superseded' })]
    const diff = m.diff(next, { rollout: 'r2' })!
    m.apply(command(2, diff))
    expect(m.state().rollouts).toEqual(next.rollouts)
  })

  it(`the audit trail keeps ${AUDIT_LENGTH} rollouts, the newest ${HISTORY_LENGTH} with their per-node maps`, () => {
    const m = new ClusterMachine()
    let index = 0
    const detailed = (id: string) => rollout(id, { progress: { n1: 'done' }, baseTargets: { n1: 'app@1' } })
    for (let i = 1; i <= AUDIT_LENGTH; i++) {
      index++
      m.apply(command(index, change(m.version, { rollouts: [detailed(`r${i}`)] })))
    }
    expect(m.state().rollouts).toHaveLength(AUDIT_LENGTH)
    index++
    m.apply(command(index, change(m.version, { rollouts: [detailed('new-1'), detailed('new-2')] })))
    const kept = m.state().rollouts
    const ids = kept.map((r) => r.id)
    expect(ids).toHaveLength(AUDIT_LENGTH)
    expect(ids.slice(0, 3)).toEqual(['new-2', 'new-1', `r${AUDIT_LENGTH}`])
    // The two oldest went.
    expect(ids).not.toContain('r1')
    expect(ids).not.toContain('r2')
    expect(ids.at(-1)).toBe('r3')
    // Past the newest HISTORY_LENGTH: what was asked and how it ended, no per-node maps.
    expect(kept[HISTORY_LENGTH - 1]!.progress).toEqual({ n1: 'done' })
    expect(kept[HISTORY_LENGTH]).toMatchObject({
      id: `r${AUDIT_LENGTH - HISTORY_LENGTH + 2}`,
      progress: {},
      baseTargets: {},
    })
    expect(kept[HISTORY_LENGTH]!.distribution).toBe(rollout('x').distribution)
  })
})

describe('snapshots', () => {
  const build = () => {
    const m = new ClusterMachine()
    const entry = { id: 'old@1', by: 'ops', at: new Date(0).toISOString() }
    m.apply(
      command(
        1,
        change(0, {
          set: {
            defaultTarget: 'app@1',
            targets: { n2: 'app@2' },
            placement: { db: ['n1'] },
            placementFrom: 'app@1',
            unplaced: ['cache'],
            unpublished: [entry],
          },
          rollouts: [rollout('r1'), rollout('r2')],
          answer: { rollout: 'r2' },
        }),
        { client: 'c1', seq: 7 },
      ),
    )
    m.apply(termStart(2, 2))
    m.apply(
      command(
        3,
        change(1, { answer: { unpublished: { result: 'already-unpublished', entry } } }),
        { client: 'c2', seq: 1 },
        2,
      ),
    )
    m.apply(termStart(4, 3))
    return m
  }

  it('restore(encode()) gives back the same machine', () => {
    const m = build()
    const copy = new ClusterMachine()
    copy.restore(snapshotOf(m))
    expect(everything(copy)).toEqual(everything(m))
    expect(copy.version).toBe(3)
    expect(copy.lastIndex).toBe(4)
  })

  it('sessions survive it: a duplicate after a restore still gets its answer, a stale copy nothing', () => {
    const m = build()
    const copy = new ClusterMachine()
    copy.restore(snapshotOf(m))
    expect(copy.answered({ client: 'c1', seq: 7 })).toEqual({ rollout: 'r2' })
    const before = copy.state()
    expect(
      copy.apply(
        command(5, change(3, { set: { defaultTarget: 'again@1' }, answer: { rollout: 'x' } }), {
          client: 'c1',
          seq: 7,
        }),
      ),
    ).toEqual({ status: 'duplicate', answer: { rollout: 'r2' } })
    expect(copy.apply(command(6, change(3, { answer: { rollout: 'y' } }), { client: 'c1', seq: 6 }))).toEqual(
      {
        status: 'stale',
      },
    )
    expect(copy.state()).toEqual(before)
    expect(copy.lastIndex).toBe(6)
    expect(copy.version).toBe(3)
    // And the next change applies at the restored version.
    expect(copy.apply(command(7, change(3, { set: { defaultTarget: 'app@3' } }))).status).toBe('applied')
  })

  it('an empty snapshot (genesis) starts from the empty state', () => {
    const m = build()
    m.restore(genesisSnapshot(['a']))
    expect(m.version).toBe(0)
    expect(m.lastIndex).toBe(0)
    expect(m.state()).toEqual(new ClusterMachine().state())
    expect(m.answered({ client: 'c1', seq: 7 })).toBeNull()
  })

  it('an empty snapshot at an index (a reset) keeps the index as lastIndex', () => {
    const m = build()
    m.restore({ meta: { ...genesisSnapshot(['a']).meta, index: 9, term: 3 }, data: new Uint8Array() })
    expect(m.lastIndex).toBe(9)
    expect(m.version).toBe(0)
    expect(m.state().rollouts).toEqual([])
  })

  it('state() hands out copies: changing one does not change the machine', () => {
    const m = build()
    const state = m.state()
    state.targets.n9 = 'evil@1'
    state.rollouts[0]!.state = 'aborted'
    expect(m.state().targets).toEqual({ n2: 'app@2' })
    expect(m.state().rollouts[0]!.state).toBe('running')
  })
})

describe('diff()', () => {
  const base = () => {
    const m = new ClusterMachine()
    m.apply(
      command(
        3,
        change(0, {
          set: { defaultTarget: 'app@1', targets: { n1: 'app@1' }, placement: { db: ['n1'] } },
          rollouts: [rollout('r1'), rollout('r0', { state: 'done' })],
        }),
      ),
    )
    return m
  }

  it('is null when the state it is given is the applied one', () => {
    const m = base()
    expect(m.diff(m.state(), null)).toBeNull()
    expect(new ClusterMachine().diff(new ClusterMachine().state(), null)).toBeNull()
  })

  it('ignores what is not replicated (the writer, term, seq, voters)', () => {
    const m = base()
    const next: ClusterState = { ...m.state(), term: 9, seq: 99, manager: 'x', voters: ['x'] }
    expect(m.diff(next, null)).toBeNull()
  })

  it('is a change with only an answer when the state did not change but an answer is due', () => {
    const m = base()
    expect(m.diff(m.state(), { rollout: 'r1' })).toEqual({
      v: 1,
      base: 3,
      set: {},
      rollouts: [],
      answer: { rollout: 'r1' },
    })
  })

  it('names only the fields and rollouts that changed, decided on the current version', () => {
    const m = base()
    const next = m.state()
    next.targets = { n1: 'app@2' }
    next.unplaced = ['cache']
    next.rollouts[0] = { ...next.rollouts[0]!, progress: { n1: 'updating' } }
    const diff = m.diff(next, null)
    expect(diff).toEqual({
      v: 1,
      base: 3,
      set: { targets: { n1: 'app@2' }, unplaced: ['cache'] },
      rollouts: [next.rollouts[0]],
      answer: null,
    })
    // What it says applies to exactly the state it was computed from.
    expect(m.apply(command(4, diff!)).status).toBe('applied')
    expect(m.state()).toEqual(next)
    expect(m.diff(next, null)).toBeNull()
  })

  it('a field set back to null is named', () => {
    const m = base()
    const next = m.state()
    next.defaultTarget = null
    expect(m.diff(next, null)?.set).toEqual({ defaultTarget: null })
  })
})

describe('determinism', () => {
  const requestArb = fc.option(
    fc.record({ client: fc.constantFrom('a', 'b', 'c'), seq: fc.integer({ min: 1, max: 4 }) }),
    { nil: null },
  )
  const changeArb = fc.record({
    /** Offset from the version at the time of feeding: mostly right, sometimes stale. */
    lag: fc.integer({ min: 0, max: 2 }),
    target: fc.option(fc.constantFrom('app@1', 'app@2', 'app@3'), { nil: null }),
    rollout: fc.option(fc.constantFrom('r1', 'r2', 'r3', 'r4'), { nil: null }),
    state: fc.constantFrom('running', 'done', 'aborted' as const),
    answer: fc.option(fc.constantFrom('r1', 'r2'), { nil: null }),
  })
  const entryArb = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ kind: fc.constant('change' as const), c: changeArb, request: requestArb }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'term-start' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'garbage' as const }) },
  )

  it('two machines fed the same entries end identical (also one restored from a snapshot midway)', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 40 }), fc.nat(), (plan, cut) => {
        // The entries are fixed up front (from one machine's versions), then fed to others.
        const author = new ClusterMachine()
        const entries: Entry[] = []
        plan.forEach((p, i) => {
          const index = i + 1
          let entry: Entry
          if (p.kind === 'term-start') entry = termStart(index)
          else if (p.kind === 'garbage') entry = command(index, new TextEncoder().encode('?'))
          else {
            const { lag, target, rollout: id, state, answer } = p.c
            entry = command(
              index,
              change(Math.max(0, author.version - lag), {
                set: target == null ? {} : { defaultTarget: target },
                rollouts: id == null ? [] : [rollout(id, { state })],
                answer: answer == null ? null : { rollout: answer },
              }),
              p.request,
            )
          }
          author.apply(entry)
          entries.push(entry)
        })
        const one = new ClusterMachine()
        const two = new ClusterMachine()
        const outcomesOne = entries.map((e) => one.apply(e))
        const outcomesTwo = entries.map((e) => two.apply(e))
        expect(outcomesTwo).toEqual(outcomesOne)
        expect(everything(two)).toEqual(everything(one))
        expect(everything(author)).toEqual(everything(one))
        // A third that joins from a snapshot taken midway ends identical too.
        const at = entries.length === 0 ? 0 : cut % (entries.length + 1)
        const early = new ClusterMachine()
        for (const e of entries.slice(0, at)) early.apply(e)
        const three = new ClusterMachine()
        three.restore(snapshotOf(early))
        const rest = entries.slice(at).map((e) => three.apply(e))
        expect(rest).toEqual(outcomesOne.slice(at))
        expect(everything(three)).toEqual(everything(one))
      }),
      { numRuns: 300 },
    )
  })
})
