import type { DistributionView } from '../artifacts/index.js'

/** The download under way on the addressed agent (`transfer` of a distribution view). */
export type Transfer = NonNullable<DistributionView['transfer']>

/** Without a terminal, `distributions --watch` logs one line per version this often at most (ms). */
export const PROGRESS_LOG_MS = 5_000

const SI = ['B', 'kB', 'MB', 'GB', 'TB']

/**
 * Bytes in decimal units: 38_200_000 → "38.2 MB". Transfers speak the units of
 * link speeds and of docs/benchmarks.md, so a rate here compares with theirs.
 */
export function formatSize(bytes: number): string {
  let value = bytes
  let unit = 0
  while (value >= 999.95 && unit < SI.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${Math.round(bytes)} B` : `${value.toFixed(1)} ${SI[unit]}`
}

/** 38_200_000 → "38.2 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatSize(bytesPerSecond)}/s`
}

/** Seconds left: 12 → "eta 12s", 125 → "eta 2m05s", 3720 → "eta 1h02m", unknown → "eta –". */
export function formatEta(seconds: number | null): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return 'eta –'
  const s = Math.ceil(seconds)
  if (s < 60) return `eta ${s}s`
  if (s < 3600) return `eta ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  const minutes = Math.floor(s / 60)
  return `eta ${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`
}

const sources = (n: number) => `${n} source${n === 1 ? '' : 's'}`

/** "38.2 MB/s · 3 sources · eta 12s", or "paused: MESSAGE" while the download waits (a full disk). */
export function describeTransfer(transfer: Transfer): string {
  if (transfer.paused != null) return `paused: ${transfer.paused.message}`
  return `${formatRate(transfer.rate)} · ${sources(transfer.sources)} · ${formatEta(transfer.eta)}`
}

/**
 * Width of a `--watch` bar on a terminal `columns` wide (80 when unknown), for
 * ids `idWidth` long: what the rest of the line needs ("[] 42% of 100.0 MB · "
 * and a status of up to 37 characters) is kept, the bar gets the rest, 10 to 40.
 */
export function barSize(columns: number | undefined, idWidth: number): number {
  const rest = idWidth + ' [] 100% of 100.0 MB · '.length + '999.9 MB/s · 12 sources · eta 59m59s'.length
  return Math.max(10, Math.min(40, (columns ?? 80) - 1 - rest))
}

/** Bytes of the version the agent holds: the meter's count while it downloads, else from the chunks. */
export function bytesHeld(d: DistributionView): number {
  if (d.complete) return d.bytes
  if (d.transfer != null) return d.transfer.bytesDone
  return Math.floor((d.bytes * d.progress.chunks) / Math.max(1, d.progress.total))
}

/** Percent held, rounded down: 100 only once the agent holds every byte. */
export function percentHeld(d: DistributionView): number {
  if (d.complete) return 100
  const total = d.transfer?.bytesTotal ?? d.bytes
  return total === 0 ? 0 : Math.min(99, Math.floor((100 * bytesHeld(d)) / total))
}

/**
 * What a version's bar says after the bar: the transfer, "held" once complete,
 * "waiting" while the agent is not fetching it (between retries, or not started).
 */
export function transferStatus(d: DistributionView): string {
  if (d.complete) return 'held'
  return d.transfer == null ? 'waiting' : describeTransfer(d.transfer)
}

/**
 * One log line for a version (`distributions --watch` without a terminal):
 * "educa@1.1 42% of 100.0 MB · 38.2 MB/s · 3 sources · eta 12s".
 */
export function progressLine(d: DistributionView): string {
  return `${d.id} ${percentHeld(d)}% of ${formatSize(d.bytes)} · ${transferStatus(d)}`
}

/**
 * The COMPLETE cell of `shoal distributions` for a version not held: chunks,
 * then the transfer if one is under way. Paused shows the code only, so one
 * long message does not widen the whole table (--watch and --json show it).
 */
export function completeCell(d: DistributionView): string {
  if (d.complete) return 'yes'
  const chunks = `${d.progress.chunks}/${d.progress.total} chunks`
  const t = d.transfer
  if (t == null) return chunks
  if (t.paused != null) return `${chunks} · paused (${t.paused.code})`
  return `${chunks} · ${formatRate(t.rate)} · ${formatEta(t.eta)}`
}

/**
 * Progress for logs: each version not held gets a line at most every `everyMs`,
 * the first at once; a version logged before gets a last line when it is held.
 * Versions held before the watch began say nothing.
 */
export class ProgressLog {
  private readonly logged = new Map<string, number>()

  constructor(private readonly everyMs: number = PROGRESS_LOG_MS) {}

  lines(list: DistributionView[], now: number): string[] {
    const out: string[] = []
    for (const d of list) {
      const last = this.logged.get(d.id)
      if (d.complete) {
        if (last == null) continue
        this.logged.delete(d.id)
        out.push(progressLine(d))
      } else if (last == null || now - last >= this.everyMs) {
        this.logged.set(d.id, now)
        out.push(progressLine(d))
      }
    }
    return out
  }
}
