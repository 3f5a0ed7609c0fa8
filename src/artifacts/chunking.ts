import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { DEFAULT_CHUNK_SIZE } from './constants.js'

export interface FileDigest {
  sha256: string
  size: number
  chunkSize: number
  /** sha256 of each chunkSize slice, in order. */
  chunks: string[]
}

/** Hashes a file in one streaming pass: the whole-file digest and one digest per chunk. */
export async function digestFile(path: string, chunkSize = DEFAULT_CHUNK_SIZE): Promise<FileDigest> {
  const whole = createHash('sha256')
  const chunks: string[] = []
  let chunk = createHash('sha256')
  let inChunk = 0
  let size = 0
  for await (const data of createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
    whole.update(data)
    size += data.length
    let offset = 0
    while (offset < data.length) {
      const take = Math.min(chunkSize - inChunk, data.length - offset)
      chunk.update(data.subarray(offset, offset + take))
      inChunk += take
      offset += take
      if (inChunk === chunkSize) {
        chunks.push(chunk.digest('hex'))
        chunk = createHash('sha256')
        inChunk = 0
      }
    }
  }
  if (inChunk > 0) chunks.push(chunk.digest('hex'))
  return { sha256: whole.digest('hex'), size, chunkSize, chunks }
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
