/**
 * Chunk-sized buffers handed out and taken back, so receiving a blob allocates
 * almost nothing per chunk: a fresh 1 MiB buffer per chunk made V8 run a full
 * garbage collection every ~100 ms (it counts external memory towards its limit).
 * Keeps at most `keep` buffers.
 */
export class BufferPool {
  /** Free buffers by size (chunk sizes differ between blobs downloaded at once). */
  private readonly free = new Map<number, Buffer[]>()
  private count = 0

  constructor(private readonly keep: number) {}

  take(size: number): Buffer {
    const buffer = this.free.get(size)?.pop()
    if (buffer != null) {
      this.count--
      return buffer
    }
    // Never a slice of Node's shared pool: the buffer is reused whole.
    return Buffer.allocUnsafeSlow(size)
  }

  give(buffer: Buffer): void {
    if (this.count >= this.keep) return
    const list = this.free.get(buffer.byteLength) ?? []
    list.push(buffer)
    this.free.set(buffer.byteLength, list)
    this.count++
  }
}
