/** Which chunks of a blob are present: a bitmap, serializable as base64. */
export class ChunkMap {
  private readonly bits: Uint8Array
  private present = 0

  constructor(
    readonly count: number,
    bits?: Uint8Array,
  ) {
    this.bits = new Uint8Array(Math.ceil(count / 8))
    if (bits != null) {
      this.bits.set(bits.subarray(0, this.bits.length))
      for (let i = 0; i < count; i++) if (this.has(i)) this.present++
    }
  }

  static full(count: number): ChunkMap {
    const map = new ChunkMap(count)
    map.bits.fill(0xff)
    // Bits past `count` in the last byte stay clear, so toBase64 matches a map filled one by one.
    if (count % 8 !== 0) map.bits[map.bits.length - 1] = (1 << (count % 8)) - 1
    map.present = count
    return map
  }

  static fromBase64(count: number, text: string): ChunkMap {
    return new ChunkMap(count, Buffer.from(text, 'base64'))
  }

  has(index: number): boolean {
    return index >= 0 && index < this.count && (this.bits[index >> 3]! & (1 << (index & 7))) !== 0
  }

  add(index: number): void {
    if (index < 0 || index >= this.count || this.has(index)) return
    this.bits[index >> 3]! |= 1 << (index & 7)
    this.present++
  }

  delete(index: number): void {
    if (!this.has(index)) return
    this.bits[index >> 3]! &= ~(1 << (index & 7))
    this.present--
  }

  get size(): number {
    return this.present
  }

  get complete(): boolean {
    return this.present === this.count
  }

  missing(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.count; i++) if (!this.has(i)) out.push(i)
    return out
  }

  toBase64(): string {
    return Buffer.from(this.bits).toString('base64')
  }
}
