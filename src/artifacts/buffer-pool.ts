/**
 * Chunk-sized buffers handed out and taken back, so receiving a blob allocates
 * almost nothing per chunk: a fresh 1 MiB buffer per chunk made V8 run a full
 * garbage collection every ~100 ms (it counts external memory towards its limit).
 * Keeps at most `keep` buffers, of the size last asked for.
 */
export class BufferPool {
  private free: Buffer[] = []

  constructor(private readonly keep: number) {}

  take(size: number): Buffer {
    const buffer = this.free.pop()
    if (buffer != null && buffer.byteLength === size) return buffer
    if (buffer != null) this.free = [] // another chunk size now: the old buffers go
    return Buffer.allocUnsafe(size)
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buffer)
  }
}
