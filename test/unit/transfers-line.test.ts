import { describe, expect, it } from 'vitest'
import type { DistributionView } from '../../src/artifacts/index.js'
import {
  barSize,
  completeCell,
  describeTransfer,
  formatEta,
  formatRate,
  formatSize,
  ProgressLog,
  percentHeld,
  progressLine,
  type Transfer,
  transferStatus,
} from '../../src/cli/transfer-line.js'
import { formatDistributions } from '../../src/cli/views.js'

const MB = 1_000_000

function version(id: string, over: Partial<DistributionView> = {}): DistributionView {
  const [name = '', v = ''] = id.split('@')
  return {
    id,
    name,
    version: v,
    complete: false,
    artifacts: 2,
    bytes: 100 * MB,
    publisher: 'ed25519:ab12',
    createdAt: '2025-01-01T00:00:00.000Z',
    supersedes: null,
    digest: 'sha256:00',
    holders: [],
    progress: { chunks: 42, total: 100 },
    transfer: null,
    ...over,
  }
}

const moving: Transfer = {
  rate: 38_200_000,
  sources: 3,
  eta: 2,
  bytesDone: 42 * MB,
  bytesTotal: 100 * MB,
  paused: null,
}
const diskFull: Transfer = {
  ...moving,
  rate: 0,
  sources: 0,
  eta: null,
  paused: { code: 'ERR_DISK_FULL', message: 'disk full: 58.0 MB more needed in /var/lib/shoal' },
}

describe('transfer rate, size and ETA', () => {
  it('writes rates in decimal units, as link speeds and the benchmarks do', () => {
    expect(formatRate(38_200_000)).toBe('38.2 MB/s')
    expect(formatRate(0)).toBe('0 B/s')
    expect(formatRate(512)).toBe('512 B/s')
    expect(formatRate(1_500)).toBe('1.5 kB/s')
    expect(formatRate(999_999)).toBe('1.0 MB/s')
    expect(formatRate(1_250_000_000)).toBe('1.3 GB/s')
    expect(formatSize(100 * MB)).toBe('100.0 MB')
  })

  it('gives the ETA in seconds, minutes or hours, and a dash when unknown', () => {
    expect(formatEta(12)).toBe('eta 12s')
    expect(formatEta(0)).toBe('eta 0s')
    expect(formatEta(59)).toBe('eta 59s')
    expect(formatEta(60)).toBe('eta 1m00s')
    expect(formatEta(125)).toBe('eta 2m05s')
    expect(formatEta(3720)).toBe('eta 1h02m')
    expect(formatEta(null)).toBe('eta –')
  })
})

describe('a version in progress', () => {
  it('says rate, sources and ETA, or why it is paused', () => {
    expect(describeTransfer(moving)).toBe('38.2 MB/s · 3 sources · eta 2s')
    expect(describeTransfer({ ...moving, sources: 1, eta: null, rate: 0 })).toBe('0 B/s · 1 source · eta –')
    expect(describeTransfer(diskFull)).toBe('paused: disk full: 58.0 MB more needed in /var/lib/shoal')
  })

  it('says held once complete and waiting while nothing fetches it', () => {
    expect(transferStatus(version('a@1', { complete: true }))).toBe('held')
    expect(transferStatus(version('a@1'))).toBe('waiting')
    expect(transferStatus(version('a@1', { transfer: moving }))).toBe('38.2 MB/s · 3 sources · eta 2s')
  })

  it('counts percent in bytes, and 100 only once held', () => {
    expect(percentHeld(version('a@1', { transfer: moving }))).toBe(42)
    expect(percentHeld(version('a@1', { transfer: { ...moving, bytesDone: 100 * MB - 1 } }))).toBe(99)
    expect(percentHeld(version('a@1'))).toBe(42) // from chunks when no transfer is measured
    expect(percentHeld(version('a@1', { complete: true }))).toBe(100)
    expect(percentHeld(version('a@1', { bytes: 0, progress: { chunks: 0, total: 0 } }))).toBe(0)
  })

  it('makes one log line with id, percent, size, rate, sources and ETA', () => {
    expect(progressLine(version('educa@1.1', { transfer: moving }))).toBe(
      'educa@1.1 42% of 100.0 MB · 38.2 MB/s · 3 sources · eta 2s',
    )
    expect(progressLine(version('educa@1.1', { transfer: diskFull }))).toBe(
      'educa@1.1 42% of 100.0 MB · paused: disk full: 58.0 MB more needed in /var/lib/shoal',
    )
  })
})

describe('the bar on a terminal', () => {
  it('gives way so that rate, sources and ETA fit in the terminal, which crops lines', () => {
    expect(barSize(80, 9)).toBe(11)
    expect(barSize(undefined, 9)).toBe(11)
    expect(barSize(200, 9)).toBe(40)
    expect(barSize(60, 30)).toBe(10)
    const status = describeTransfer({ ...moving, rate: 999_900_000, sources: 12, eta: 3599 })
    const line = `${'educa@1.1'} [${'#'.repeat(barSize(80, 9))}] 100% of ${formatSize(100 * MB)} · ${status}`
    expect(line.length).toBeLessThan(80)
  })
})

describe('ProgressLog (distributions --watch without a terminal)', () => {
  it('logs each version at once, then at most every 5 s, and a last line when held', () => {
    const log = new ProgressLog(5_000)
    const a = version('a@1', { transfer: moving })
    const b = version('b@1', { transfer: diskFull })
    const held = version('old@1', { complete: true })
    expect(log.lines([held, a, b], 0)).toEqual([progressLine(a), progressLine(b)])
    expect(log.lines([held, a, b], 500)).toEqual([])
    expect(log.lines([held, a, b], 4_999)).toEqual([])
    expect(log.lines([held, a, b], 5_000)).toEqual([progressLine(a), progressLine(b)])
    const aDone = version('a@1', { complete: true })
    expect(log.lines([held, aDone, b], 5_500)).toEqual(['a@1 100% of 100.0 MB · held'])
    expect(log.lines([held, aDone, b], 6_000)).toEqual([])
    expect(log.lines([held, aDone, b], 10_000)).toEqual([progressLine(b)])
  })
})

describe('shoal distributions table', () => {
  it('adds rate and ETA to the COMPLETE cell of a version downloading, the code of a pause', () => {
    expect(completeCell(version('a@1', { complete: true }))).toBe('yes')
    expect(completeCell(version('a@1'))).toBe('42/100 chunks')
    expect(completeCell(version('a@1', { transfer: moving }))).toBe('42/100 chunks · 38.2 MB/s · eta 2s')
    expect(completeCell(version('a@1', { transfer: diskFull }))).toBe(
      '42/100 chunks · paused (ERR_DISK_FULL)',
    )
    const text = formatDistributions([
      version('a@1', { complete: true }),
      version('a@2', { transfer: moving }),
    ])
    expect(text.split('\n')[0]).toMatch(/^DISTRIBUTION\s+COMPLETE\s+ARTIFACTS/)
    expect(text).toContain('a@2           42/100 chunks · 38.2 MB/s · eta 2s')
  })
})
