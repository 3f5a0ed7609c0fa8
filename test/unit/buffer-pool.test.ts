import { describe, expect, it } from 'vitest'
import { BufferPool } from '../../src/artifacts/buffer-pool.js'

describe('BufferPool', () => {
  it('hands out whole buffers of their own (never a slice of Node’s shared pool) and reuses them by size', () => {
    const pool = new BufferPool(2)
    const small = pool.take(1000)
    expect(small.byteOffset).toBe(0)
    expect(small.buffer.byteLength).toBe(1000)
    const big = pool.take(16_384)
    pool.give(small)
    pool.give(big)
    expect(pool.take(16_384)).toBe(big)
    expect(pool.take(1000)).toBe(small)
    // At most `keep` buffers are kept.
    for (const b of [pool.take(10), pool.take(10), pool.take(10)]) pool.give(b)
    const kept = [pool.take(10), pool.take(10), pool.take(10)]
    expect(new Set(kept).size).toBe(3)
  })
})
