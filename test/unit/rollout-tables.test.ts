import { describe, expect, it } from 'vitest'
import { formatRollout } from '../../src/cli/rollout.js'
import { formatAuditTrail, type HistoryEntry } from '../../src/cli/views.js'
import { type RolloutRecord, rolloutView } from '../../src/manager/index.js'
import { rolloutRecord } from '../helpers/rollout-record.js'

const NODE_A = `12D3KooW${'A'.repeat(44)}`
const NODE_B = `12D3KooW${'B'.repeat(44)}`

/** The cells of a table row under each header, read by the header's columns. */
function cells(text: string, headerStart: string, rowStart: string): Record<string, string> {
  const lines = text.split('\n')
  const header = lines.find((line) => line.startsWith(headerStart))!
  const row = lines.find((line) => line.startsWith(rowStart))
  if (row == null) throw new Error(`no row starting with ${rowStart} in\n${text}`)
  const names = header.split(/\s+/)
  const starts = names.map((name, i) => header.indexOf(name, i === 0 ? 0 : header.indexOf(names[i - 1]!) + 1))
  return Object.fromEntries(
    names.map((name, i) => [
      name,
      row.slice(starts[i], i + 1 < names.length ? starts[i + 1] : undefined).trim(),
    ]),
  )
}

function record(overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return rolloutRecord({
    id: 'r7',
    distribution: 'hello@5.0',
    from: 'hello@4.0',
    state: 'rolled-back',
    requestedBy: 'alice (admin)',
    requestedAt: '2025-01-01T10:00:00.000Z',
    finishedAt: '2025-01-01T10:01:00.000Z',
    reason: '1 node(s) failed (threshold 1)',
    ...overrides,
  })
}

describe('shoal history: the audit trail table', () => {
  const version = (id: string, rollouts: HistoryEntry['rollouts']): HistoryEntry => ({
    id,
    name: id.split('@')[0]!,
    version: id.split('@')[1]!,
    complete: true,
    artifacts: 1,
    bytes: 100,
    publisher: 'ed25519:abcd',
    createdAt: '2025-01-01T09:00:00.000Z',
    supersedes: null,
    digest: 'sha256:00',
    holders: [NODE_A],
    progress: { chunks: 1, total: 1 },
    transfer: null,
    rollouts,
  })
  const rollout = (
    id: string,
    requestedBy: string,
    actions: Array<{ op: string; by: string; at: string }> = [],
  ) => ({
    id,
    kind: 'rollout',
    from: 'hello@4.0',
    strategy: 'rolling',
    state: 'done',
    reason: null,
    requestedBy,
    requestedAt: `2025-01-01T10:0${id.slice(1)}:00.000Z`,
    finishedAt: null,
    actions,
  })

  it('prints a token holder in BY whole, however long, for the rollout and each of its actions', () => {
    const long = 'alice-of-the-release-engineering-team (admin)'
    const text = formatAuditTrail([
      version('hello@5.0', [
        rollout('r1', long, [
          { op: 'pause', by: 'bob-the-night-shift-operator (admin)', at: '2025-01-01T10:01:30.000Z' },
          { op: 'resume', by: long, at: '2025-01-01T10:02:30.000Z' },
        ]),
      ]),
    ])
    expect(cells(text, 'ROLLOUT', 'r1  ')).toMatchObject({ ROLLOUT: 'r1', KIND: 'rollout', BY: long })
    const lines = text.split('\n')
    const header = lines[0]!
    const by = (line: string) => line.slice(header.indexOf('BY'), header.indexOf(' AT') + 1).trim()
    expect(lines.slice(1).map((line) => [line.split(/\s+/)[1], by(line)])).toEqual([
      ['rollout', long],
      ['pause', 'bob-the-night-shift-operator (admin)'],
      ['resume', long],
    ])
    expect(text).not.toMatch(/(^|\s)lice/)
  })

  it("shortens an agent's peer id (a request made without tokens), as every table does", () => {
    const text = formatAuditTrail([version('hello@5.0', [rollout('r1', NODE_A)])])
    const by = cells(text, 'ROLLOUT', 'r1  ').BY
    expect(by).toBe('12D3KooW…AAAAAA')
  })
})

describe('shoal rollout status ID: the node table', () => {
  it("shows each failed node's error whole in its ERROR column, and none for a node that did not fail", () => {
    const error =
      'web failed: crash loop: 5 failed runs in a row; last run: exit code 1: cannot reach the database: db down'
    const view = rolloutView(
      record({ progress: { [NODE_A]: 'reverted', [NODE_B]: 'done' }, failures: { [NODE_A]: error } }),
      [],
    )
    expect(view.nodes).toMatchObject({ total: 2, failed: 1, reverted: 1, done: 1 })
    const text = formatRollout(view)
    expect(cells(text, 'ROLLOUT', 'r7 ')).toMatchObject({
      TO: 'hello@5.0',
      STATE: 'rolled-back (1 node(s) failed (threshold 1))',
      NODES: '1/2 done, 1 failed',
    })
    expect(cells(text, 'NODE', '12D3KooW…AAAAAA')).toEqual({
      NODE: '12D3KooW…AAAAAA',
      PROGRESS: 'reverted',
      RUNS: '-',
      PHASE: '-',
      ERROR: error,
    })
    expect(cells(text, 'NODE', '12D3KooW…BBBBBB')).toMatchObject({ PROGRESS: 'done', ERROR: '' })
  })

  it("shows a node's error that the progress deadline gave it", () => {
    const error = 'not done within the progress deadline (600 s): switching: web not healthy within 60000 ms'
    const view = rolloutView(
      record({
        state: 'failed',
        from: null,
        progress: { [NODE_A]: 'failed' },
        failures: { [NODE_A]: error },
      }),
      [],
    )
    expect(cells(formatRollout(view), 'NODE', '12D3KooW…AAAAAA')).toMatchObject({
      PROGRESS: 'failed',
      ERROR: error,
    })
  })
})
