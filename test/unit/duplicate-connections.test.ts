import { describe, expect, it } from 'vitest'
import {
  type ConnectionAge,
  connectionToKeep,
  DIAL_RACE_MS,
} from '../../src/bootstrap/duplicate-connections.js'

const conn = (direction: ConnectionAge['direction'], open: number, name: string) => ({
  direction,
  timeline: { open },
  name,
})

describe('which of two connections to one peer is kept', () => {
  it('keeps the one the smaller peer id dialled when both sides dialled at once, and both sides agree', () => {
    // The same pair as the dialler (smaller id) and as the other side see it.
    const mine = [conn('outbound', 1_000, 'a→b'), conn('inbound', 1_020, 'b→a')]
    const theirs = [conn('inbound', 1_005, 'a→b'), conn('outbound', 1_010, 'b→a')]
    expect(connectionToKeep(mine, true).name).toBe('a→b')
    expect(connectionToKeep(theirs, false).name).toBe('a→b')
  })

  it('keeps the newer one when the older was open long before: the other side dropped it as stale', () => {
    // After a healed split, b dialled afresh; a still holds the connection it dialled before the cut.
    const onA = [conn('outbound', 1_000, 'before the cut'), conn('inbound', 1_000 + 30_000, 'after the heal')]
    expect(connectionToKeep(onA, true).name).toBe('after the heal')
    expect(connectionToKeep(onA, false).name).toBe('after the heal')
  })

  it('draws the line at DIAL_RACE_MS, and among three keeps the racing pair’s preferred one', () => {
    const justApart = [conn('outbound', 0, 'old'), conn('inbound', DIAL_RACE_MS, 'new')]
    expect(connectionToKeep(justApart, true).name).toBe('new')
    const justRacing = [conn('outbound', 0, 'old'), conn('inbound', DIAL_RACE_MS - 1, 'new')]
    expect(connectionToKeep(justRacing, true).name).toBe('old')
    const three = [
      conn('outbound', 0, 'stale'),
      conn('inbound', 60_000, 'theirs'),
      conn('outbound', 60_010, 'ours'),
    ]
    expect(connectionToKeep(three, true).name).toBe('ours')
    expect(connectionToKeep(three, false).name).toBe('theirs')
  })
})
