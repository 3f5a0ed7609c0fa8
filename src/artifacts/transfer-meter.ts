/** Window over which a download's rate and its sources are measured (ms). */
export const METER_WINDOW_MS = 5_000

/** A download in progress as the CLI, the API and the dashboard show it. */
export interface TransferView {
  /** Bytes per second received over the last METER_WINDOW_MS. */
  rate: number
  /** Peers that sent verified chunks over the last METER_WINDOW_MS. */
  sources: number
  /** Seconds left at the current rate; null while nothing arrives. */
  eta: number | null
  /** Bytes of the version this node holds (verified chunks), and in all. */
  bytesDone: number
  bytesTotal: number
  /** Why the download waits, when it does (`ERR_DISK_FULL`: the disk is full), else null. */
  paused: { code: string; message: string } | null
}

interface Sample {
  at: number
  bytes: number
  peer: string
}

/**
 * Verified bytes received per version, kept for METER_WINDOW_MS: the rate, the
 * sources and the ETA a watcher sees. Cheap: one sample per chunk.
 */
export class TransferMeter {
  private readonly samples = new Map<string, Sample[]>()

  constructor(private readonly now: () => number = Date.now) {}

  record(version: string, peer: string, bytes: number): void {
    const list = this.samples.get(version) ?? []
    list.push({ at: this.now(), bytes, peer })
    this.samples.set(version, list)
    this.trim(list)
  }

  forget(version: string): void {
    this.samples.delete(version)
  }

  view(
    version: string,
    progress: { bytesDone: number; bytesTotal: number },
    paused: TransferView['paused'],
  ): TransferView {
    const list = this.samples.get(version) ?? []
    this.trim(list)
    const bytes = list.reduce((sum, s) => sum + s.bytes, 0)
    // The window is shorter while the download is younger than it.
    const span = list.length === 0 ? METER_WINDOW_MS : Math.max(1_000, this.now() - list[0]!.at)
    const rate = Math.round((bytes * 1000) / Math.min(span, METER_WINDOW_MS))
    const left = Math.max(0, progress.bytesTotal - progress.bytesDone)
    return {
      rate,
      sources: new Set(list.map((s) => s.peer)).size,
      eta: rate > 0 && paused == null ? Math.ceil(left / rate) : null,
      ...progress,
      paused,
    }
  }

  private trim(list: Sample[]): void {
    const horizon = this.now() - METER_WINDOW_MS
    let drop = 0
    while (drop < list.length && list[drop]!.at < horizon) drop++
    if (drop > 0) list.splice(0, drop)
  }
}
