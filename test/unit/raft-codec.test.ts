import { describe, expect, it } from 'vitest'
import { RaftMessageError } from '../../src/manager/consensus/errors.js'
import {
  certificateFromJson,
  certificateToJson,
  configRecordFromJson,
  configRecordToJson,
  decodeMessage,
  encodeMessage,
  MAX_CHAIN,
  MAX_ENTRIES,
  MAX_VOTES,
} from '../../src/manager/consensus/raft-codec.js'
import type { Certificate, ConfigRecord, Entry, Message } from '../../src/manager/raft/index.js'

const A = '12D3KooWA1111111111111111111111111111111111111111111'
const B = '12D3KooWB2222222222222222222222222222222222222222222'
const C = '12D3KooWC3333333333333333333333333333333333333333333'

const sig = (seed: number, length = 64) => Uint8Array.from({ length }, (_, i) => (seed * 31 + i * 7) & 0xff)

const certificate: Certificate = {
  term: 3,
  leader: A,
  votes: [
    { voter: A, signature: sig(1) },
    { voter: B, signature: sig(2) },
  ],
}
const genesis: ConfigRecord = {
  index: 0,
  term: 0,
  config: { voters: [A, B, C], learners: [] },
  certificate: null,
  signature: null,
}
const record: ConfigRecord = {
  index: 7,
  term: 3,
  config: { voters: [A, B], learners: [C] },
  certificate,
  signature: sig(3),
}
const entries: Entry[] = [
  { kind: 'term-start', index: 5, term: 3, certificate },
  { kind: 'command', index: 6, term: 3, request: { client: `${B}/1`, seq: 9 }, data: sig(4, 300) },
  {
    kind: 'config',
    index: 7,
    term: 3,
    config: record.config,
    change: { op: 'demote', node: C },
    certificate,
    signature: sig(3),
  },
  { kind: 'command', index: 8, term: 3, request: null, data: new Uint8Array() },
]
const leader = { from: A, to: B, term: 3, certificate, sentAt: 42 }

/** One message of every type (and every entry kind and nullable field both ways). */
const messages: Message[] = [
  { type: 'pre-vote', from: B, to: A, term: 4, lastLogIndex: 8, lastLogTerm: 3, chain: [genesis, record] },
  { type: 'pre-vote-response', from: A, to: B, term: 3, granted: true },
  { type: 'vote', from: B, to: A, term: 4, lastLogIndex: 8, lastLogTerm: 3, chain: [], transfer: true },
  { type: 'vote-response', from: A, to: B, term: 4, granted: true, signature: sig(5) },
  { type: 'vote-response', from: C, to: B, term: 4, granted: false, signature: null },
  { type: 'append', ...leader, chain: null, prevLogIndex: 4, prevLogTerm: 2, entries, commit: 4 },
  { type: 'append', ...leader, chain: [record], prevLogIndex: 8, prevLogTerm: 3, entries: [], commit: 8 },
  { type: 'append-response', from: B, to: A, term: 3, success: true, index: 8, hint: null, sentAt: 42 },
  {
    type: 'append-response',
    from: B,
    to: A,
    term: 3,
    success: false,
    index: 4,
    hint: { conflictIndex: 2, conflictTerm: null },
    sentAt: 42,
  },
  { type: 'heartbeat', ...leader, chain: null, commit: 6 },
  { type: 'heartbeat-response', from: B, to: A, term: 3, sentAt: 42 },
  {
    type: 'snapshot',
    ...leader,
    chain: null,
    snapshot: {
      meta: { index: 7, term: 3, config: record, history: [genesis] },
      data: Uint8Array.from({ length: 70_000 }, (_, i) => (i * 131) % 256),
    },
  },
  { type: 'timeout-now', ...leader, chain: [record] },
  { type: 'unverified', from: B, to: A, term: 3, configIndex: 0 },
]

/** A valid message's JSON, changed by `edit`, as a frame. */
function frame(message: Message, edit: (json: Record<string, unknown>) => void): Uint8Array {
  const json = JSON.parse(new TextDecoder().decode(encodeMessage(message))) as Record<string, unknown>
  edit(json)
  return new TextEncoder().encode(JSON.stringify(json))
}

function refusal(bytes: Uint8Array): RaftMessageError {
  try {
    decodeMessage(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(RaftMessageError)
    expect((err as RaftMessageError).code).toBe('ERR_RAFT_MESSAGE')
    return err as RaftMessageError
  }
  throw new Error('decoded a frame it should have refused')
}

describe('raft codec', () => {
  it.each(messages.map((m) => [m.type, m] as const))('%s survives a round trip', (_, message) => {
    const decoded = decodeMessage(encodeMessage(message))
    expect(decoded).toEqual(message)
  })

  it('every message type is covered', () => {
    expect(new Set(messages.map((m) => m.type)).size).toBe(11)
  })

  it('byte fields travel as base64, a Buffer included', () => {
    const message: Message = {
      type: 'vote-response',
      from: A,
      to: B,
      term: 1,
      granted: true,
      signature: Buffer.from([1, 2, 3]),
    }
    const json = JSON.parse(new TextDecoder().decode(encodeMessage(message)))
    expect(json.signature).toBe('AQID')
    const decoded = decodeMessage(encodeMessage(message))
    expect(decoded.type === 'vote-response' && [...(decoded.signature ?? [])]).toEqual([1, 2, 3])
  })

  it('a snapshot keeps its binary data byte for byte', () => {
    const snapshot = messages.find((m) => m.type === 'snapshot')!
    const decoded = decodeMessage(encodeMessage(snapshot))
    if (decoded.type !== 'snapshot' || snapshot.type !== 'snapshot') throw new Error('not a snapshot')
    expect(Buffer.from(decoded.snapshot.data).equals(Buffer.from(snapshot.snapshot.data))).toBe(true)
  })

  const append = messages.find((m) => m.type === 'append')!
  const refusals: Array<[string, Message, (json: Record<string, unknown>) => void, RegExp]> = [
    ['an unknown type', messages[1]!, (j) => (j.type = 'install'), /type/],
    ['a missing type', messages[1]!, (j) => delete j.type, /type/],
    ['a string term', messages[1]!, (j) => (j.term = '3'), /term/],
    ['a negative index', append, (j) => (j.prevLogIndex = -1), /prevLogIndex/],
    ['a fractional term', messages[1]!, (j) => (j.term = 1.5), /term/],
    ['an unsafe integer', append, (j) => (j.commit = 2 ** 53), /commit/],
    ['a boolean as a number', messages[1]!, (j) => (j.granted = 1), /granted/],
    ['an unknown field', messages[1]!, (j) => (j.extra = true), /extra|Unrecognized/],
    ['a missing field', append, (j) => delete j.sentAt, /sentAt/],
    ['a node id over 100 characters', messages[1]!, (j) => (j.from = 'x'.repeat(101)), /from/],
    ['an empty node id', messages[1]!, (j) => (j.to = ''), /to/],
    ['bad base64', messages[3]!, (j) => (j.signature = 'not base64!'), /signature/],
    ['base64 without padding', messages[3]!, (j) => (j.signature = 'AQI'), /signature/],
    ['bytes as an array', messages[3]!, (j) => (j.signature = [1, 2]), /signature/],
    [
      'bad base64 deep in an entry',
      append,
      (j) => ((j.entries as Array<Record<string, unknown>>)[1]!.data = '@@@@'),
      /entries\.1\.data/,
    ],
    [
      'an unknown entry kind',
      append,
      (j) => ((j.entries as Array<Record<string, unknown>>)[0]!.kind = 'noop'),
      /entries\.0/,
    ],
    [
      'an unknown configuration change',
      append,
      (j) => ((j.entries as Array<Record<string, unknown>>)[2]!.change = { op: 'promote', node: C }),
      /change/,
    ],
    [
      `more than ${MAX_ENTRIES} entries`,
      append,
      (j) => (j.entries = Array.from({ length: MAX_ENTRIES + 1 }, () => (j.entries as unknown[])[3])),
      /entries/,
    ],
    [
      `more than ${MAX_VOTES} votes`,
      messages[9]!,
      (j) => {
        const cert = j.certificate as { votes: unknown[] }
        cert.votes = Array.from({ length: MAX_VOTES + 1 }, () => cert.votes[0])
      },
      /certificate\.votes/,
    ],
    [
      `a chain of more than ${MAX_CHAIN} records`,
      messages[0]!,
      (j) => (j.chain = Array.from({ length: MAX_CHAIN + 1 }, () => (j.chain as unknown[])[0])),
      /chain/,
    ],
    ['a null where an object goes', append, (j) => (j.certificate = null), /certificate/],
  ]

  it.each(refusals)('refuses %s with ERR_RAFT_MESSAGE', (_, message, edit, where) => {
    expect(refusal(frame(message, edit)).message).toMatch(where)
  })

  it('refuses what is not JSON, not an object, or too deep', () => {
    refusal(new TextEncoder().encode('{"type":'))
    refusal(Uint8Array.from([0xff, 0xfe, 0x7b, 0x7d]))
    refusal(new TextEncoder().encode('[]'))
    refusal(new TextEncoder().encode('null'))
    refusal(new TextEncoder().encode(`${'['.repeat(10_000)}${']'.repeat(10_000)}`))
  })

  it('refuses a frame over the size limit before parsing it', () => {
    const bytes = encodeMessage(messages[1]!)
    expect(() => decodeMessage(bytes, bytes.byteLength - 1)).toThrow(RaftMessageError)
    expect(decodeMessage(bytes, bytes.byteLength)).toEqual(messages[1])
  })
})

describe('configuration records and certificates as JSON', () => {
  it('round trip through JSON text', () => {
    for (const r of [genesis, record]) {
      const text = JSON.stringify(configRecordToJson(r))
      expect(configRecordFromJson(JSON.parse(text))).toEqual(r)
    }
    const text = JSON.stringify(certificateToJson(certificate))
    expect(certificateFromJson(JSON.parse(text))).toEqual(certificate)
    expect(certificateToJson(certificate).votes[0]!.signature).toMatch(/^[A-Za-z0-9+/]+=*$/)
  })

  it('refuse malformed values with ERR_RAFT_MESSAGE', () => {
    const json = configRecordToJson(record)
    for (const bad of [
      { ...json, signature: '***' },
      { ...json, index: -1 },
      { ...json, config: { voters: Array.from({ length: MAX_VOTES + 1 }, () => A), learners: [] } },
      { ...json, certificate: { ...certificateToJson(certificate), leader: 7 } },
      null,
    ])
      expect(() => configRecordFromJson(bad)).toThrow(RaftMessageError)
    expect(() => certificateFromJson({ term: 1, leader: A })).toThrow(RaftMessageError)
    expect(() => certificateFromJson({ term: 1, leader: A, votes: [{ voter: A, signature: '%' }] })).toThrow(
      /ERR_RAFT_MESSAGE|votes\.0\.signature/,
    )
  })
})
