import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { BlobLayout } from '../../src/artifacts/blob-store.js'
import { ChunkMap } from '../../src/artifacts/chunk-map.js'
import { type HaveChannel, type HaveNotice, HaveTracker } from '../../src/artifacts/have-tracker.js'

const layout: BlobLayout = {
  sha256: 'a'.repeat(64),
  size: 4 * 16_384,
  chunkSize: 16_384,
  chunks: ['', '', '', ''],
}

describe('HaveTracker', () => {
  it('follows pushed notices, polls while the push channel is down, and subscribes again', async () => {
    const watches: Array<{ notify: (n: HaveNotice) => void; end: (err?: Error) => void }> = []
    let polls = 0
    const channel: HaveChannel = {
      watch: (_peer, _layout, onNotice, onEnd) => {
        watches.push({ notify: onNotice, end: onEnd })
        return () => {}
      },
      ask: async () => {
        polls++
        const map = new ChunkMap(4)
        map.add(3)
        return map
      },
    }
    const tracker = new HaveTracker(channel)
    let changes = 0
    tracker.onChange(() => changes++)
    expect(tracker.maps(layout, ['p']).size).toBe(0)
    expect(watches).toHaveLength(1)
    watches[0]!.notify({ t: 'map', size: layout.size, bitmap: null })
    expect(tracker.maps(layout, ['p']).get('p')?.complete).toBe(true)
    watches[0]!.notify({ t: 'none' })
    watches[0]!.notify({ t: 'have', index: 1 })
    expect(tracker.maps(layout, ['p']).get('p')?.has(1)).toBe(true)
    expect(changes).toBe(3)
    expect(polls).toBe(0)

    // The connection dropped: a poll at once, and no new subscription before RESUBSCRIBE_MS.
    watches[0]!.end(new Error('connection lost'))
    tracker.maps(layout, ['p'])
    await sleep(10)
    expect(polls).toBe(1)
    expect(tracker.maps(layout, ['p']).get('p')?.has(3)).toBe(true)
    expect(watches).toHaveLength(1)
    await sleep(2_100)
    tracker.maps(layout, ['p'])
    expect(watches).toHaveLength(2)
    tracker.stop()
  })

  it('polls a peer without a data plane at most every HAVE_POLL_MS', async () => {
    let polls = 0
    const tracker = new HaveTracker({
      watch: () => null,
      ask: async () => {
        polls++
        return null
      },
    })
    for (let i = 0; i < 20; i++) {
      tracker.maps(layout, ['q'])
      await sleep(5)
    }
    expect(polls).toBe(1)
    tracker.stop()
  })
})
