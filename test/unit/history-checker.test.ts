import { describe, expect, it } from 'vitest'
import {
  type Command,
  checkHistory,
  classify,
  type ObservedRollout,
  type Operation,
} from '../../bench/chaos/history-checker.js'

const T0 = Date.parse('2026-01-01T00:00:00.000Z')
const iso = (ms: number) => new Date(T0 + ms).toISOString()

/** A command sent at T0+from, answered at T0+to. */
function op(
  marker: string,
  command: Command,
  from: number,
  to: number,
  outcome: Operation['outcome'],
  extra: Partial<Operation> = {},
): Operation {
  return {
    marker,
    client: 'c1',
    agent: 'n1',
    command,
    invokedAt: T0 + from,
    completedAt: T0 + to,
    outcome,
    ...extra,
  }
}

function rollout(
  id: string,
  by: string,
  at: number,
  distribution: string,
  actions: Array<[string, string, number]> = [],
): ObservedRollout {
  return {
    id,
    distribution,
    state: 'running',
    requestedBy: `${by} (admin)`,
    requestedAt: iso(at),
    actions: actions.map(([o, b, t]) => ({ op: o, by: `${b} (admin)`, at: iso(t) })),
  }
}

const roll = (distribution: string): Command => ({ op: 'rollout', distribution })
const control = (o: 'pause' | 'resume' | 'abort' | 'approve', id: string): Command => ({ op: o, id })

/** A history every check passes, and the state it left on three agents. */
function clean() {
  const history: Operation[] = [
    op('m1', roll('app@1'), 0, 100, 'ok', { rollout: 'r2' }),
    op('m2', control('pause', 'r2'), 200, 300, 'ok', { rollout: 'r2' }),
    op('m3', control('resume', 'r1'), 250, 320, 'fail', { status: 409, code: 'ERR_ROLLOUT_FINISHED' }),
    op('m4', roll('app@2'), 400, 5400, 'unknown', { status: 503, code: 'ERR_NO_QUORUM' }),
    op('m5', roll('app@1'), 500, 5500, 'unknown', { code: 'TIMEOUT' }),
    op('m6', control('resume', 'r2'), 350, 450, 'ok', { rollout: 'r2' }),
  ]
  const state = [
    rollout('r3', 'm4', 1000, 'app@2'),
    rollout('r2', 'm1', 50, 'app@1', [
      ['pause', 'm2', 250],
      ['resume', 'm6', 400],
    ]),
    rollout('r1', 'setup', -1000, 'app@2'),
  ]
  return { history, states: { n1: state, n2: structuredClone(state), n3: structuredClone(state) } }
}

const kinds = (result: ReturnType<typeof checkHistory>) => result.violations.map((v) => v.kind)

describe('the manager history checker', () => {
  it('passes a history whose every effect is where it must be, and counts the outcomes', () => {
    const { history, states } = clean()
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(result.violations).toEqual([])
    expect(result.ok).toBe(true)
    expect(result.stats).toMatchObject({
      ops: 6,
      ok: 3,
      fail: 1,
      unknown: 2,
      unknownApplied: 1,
      unknownAbsent: 1,
      rollouts: 3,
      actions: 2,
      agents: 3,
    })
    expect(result.stats.byCode.ERR_NO_QUORUM).toEqual({ count: 1, applied: 1 })
    expect(result.absent.sort()).toEqual(['m3', 'm5'])
  })

  it('fails on a lost acknowledged rollout', () => {
    const { history, states } = clean()
    for (const s of Object.values(states)) s.splice(1, 1, rollout('r2', 'setup', 50, 'app@1'))
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(result.ok).toBe(false)
    expect(kinds(result)).toContain('lost')
    expect(result.violations.find((v) => v.kind === 'lost')?.markers).toEqual(['m1'])
  })

  it('fails on an acknowledged control command whose action is absent', () => {
    const { history, states } = clean()
    for (const s of Object.values(states)) s[1]!.actions = s[1]!.actions!.filter((a) => a.op !== 'pause')
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(kinds(result)).toEqual(['lost'])
    expect(result.violations[0]!.markers).toEqual(['m2'])
  })

  it('fails on a command applied twice (an acknowledged rollout, an unknown one, an action)', () => {
    const { history, states } = clean()
    const twice = structuredClone(states)
    for (const s of Object.values(twice)) s.unshift(rollout('r4', 'm1', 90, 'app@1'))
    expect(kinds(checkHistory(history, twice, { ignore: ['setup'] }))).toContain('duplicated')

    const unknownTwice = structuredClone(states)
    for (const s of Object.values(unknownTwice)) s.unshift(rollout('r4', 'm4', 1200, 'app@2'))
    const result = checkHistory(history, unknownTwice, { ignore: ['setup'] })
    expect(kinds(result)).toEqual(['duplicated'])
    expect(result.violations[0]!.markers).toEqual(['m4'])

    const actionTwice = structuredClone(states)
    for (const s of Object.values(actionTwice))
      s[1]!.actions!.push({ op: 'pause', by: 'm2 (admin)', at: iso(260) })
    expect(kinds(checkHistory(history, actionTwice, { ignore: ['setup'] }))).toContain('duplicated')
  })

  it('fails on a definitely refused command that took effect', () => {
    const { history, states } = clean()
    for (const s of Object.values(states)) s[2]!.actions = [{ op: 'resume', by: 'm3 (admin)', at: iso(300) }]
    expect(kinds(checkHistory(history, states, { ignore: ['setup'] }))).toEqual(['failed-applied'])
  })

  it('fails on an acknowledged rollout present under another id than its answer, or of another version', () => {
    const { history, states } = clean()
    history[0] = { ...history[0]!, rollout: 'r3' }
    expect(kinds(checkHistory(history, states, { ignore: ['setup'] }))).toContain('wrong-effect')
    const other = clean()
    other.history[0] = { ...other.history[0]!, command: roll('app@2') }
    expect(kinds(checkHistory(other.history, other.states, { ignore: ['setup'] }))).toEqual(['wrong-effect'])
  })

  it('fails on rollout ids against real time', () => {
    const { history, states } = clean()
    history.push(op('m7', roll('app@2'), 120, 150, 'ok', { rollout: 'r4' }))
    for (const s of Object.values(states)) s.unshift(rollout('r4', 'm7', 130, 'app@2'))
    // m7 answered at 150, m4 sent at 400 and took r3 < r4.
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(kinds(result)).toEqual(['order'])
    expect(result.violations[0]!.markers).toEqual(['m7', 'm4'])
  })

  it('fails on actions of one rollout against real time', () => {
    const { history, states } = clean()
    for (const s of Object.values(states)) s[1]!.actions!.reverse()
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(kinds(result)).toEqual(['order'])
  })

  it('fails when agents disagree, naming them', () => {
    const { history, states } = clean()
    states.n3[0] = { ...states.n3[0]!, state: 'done' }
    const result = checkHistory(history, states, { ignore: ['setup'] })
    expect(kinds(result)).toEqual(['disagree'])
    expect(result.violations[0]!.detail).toMatch(/^n3 and n1 differ at rollout #0/)
  })

  it('fails on an effect no command carried, and on one stamped outside its command', () => {
    const { history, states } = clean()
    expect(kinds(checkHistory(history, states))).toEqual(['foreign'])
    for (const s of Object.values(states)) s[1]!.requestedAt = iso(200)
    const late = checkHistory(history, states, { ignore: ['setup'] })
    expect(kinds(late)).toEqual(['time'])
    expect(late.violations[0]!.detail).toMatch(/after it was answered/)
  })

  it('fails on an effect an earlier check found absent', () => {
    const { history, states } = clean()
    const result = checkHistory(history, states, { ignore: ['setup'], previouslyAbsent: ['m4'] })
    expect(kinds(result)).toEqual(['late'])
  })

  it('does not count as lost what the bounded state dropped', () => {
    const { history, states } = clean()
    history.unshift(op('m0', roll('app@2'), -500, -400, 'ok', { rollout: 'r0' }))
    expect(kinds(checkHistory(history, states, { ignore: ['setup'] }))).toEqual(['lost'])
    const result = checkHistory(history, states, { ignore: ['setup'], historyLength: 3 })
    expect(result.ok).toBe(true)
    expect(result.stats.evicted).toBe(1)
  })

  it('classifies answers: 2xx ok; a coded 4xx or a refused connection definite; the rest unknown', () => {
    expect(classify({ status: 202 })).toBe('ok')
    expect(classify({ status: 200 })).toBe('ok')
    expect(classify({ status: 409, code: 'ERR_ROLLOUT_FINISHED' })).toBe('fail')
    expect(classify({ status: 409, code: 'ERR_NOT_PAUSED' })).toBe('fail')
    expect(classify({ status: 404, code: 'ERR_UNKNOWN_DISTRIBUTION' })).toBe('fail')
    expect(classify({ code: 'ECONNREFUSED' })).toBe('fail')
    expect(classify({ status: 503, code: 'ERR_NO_QUORUM' })).toBe('unknown')
    expect(classify({ status: 503, code: 'ERR_NO_MANAGER' })).toBe('unknown')
    expect(classify({ status: 504, code: 'ERR_TIMEOUT' })).toBe('unknown')
    expect(classify({ status: 502, code: 'ERR_STREAM_CLOSED' })).toBe('unknown')
    expect(classify({ status: 500 })).toBe('unknown')
    expect(classify({ status: 404 })).toBe('unknown')
    expect(classify({ status: 400, code: 'ERR_BAD_FRAME' })).toBe('unknown')
    expect(classify({ code: 'ECONNRESET' })).toBe('unknown')
    expect(classify({ code: 'TIMEOUT' })).toBe('unknown')
  })
})
