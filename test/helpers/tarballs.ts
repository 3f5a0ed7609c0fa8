import * as tar from 'tar'

export interface RawEntry {
  path: string
  type?: tar.HeaderData['type']
  body?: string
  /** The size the header claims; the body's length unless given. */
  size?: number
  linkpath?: string
  mode?: number
  uid?: number
  /** A raw typeflag byte, for types tar cannot encode. */
  typeflag?: string
}

/**
 * A tarball written header by header. tar.create sanitises paths, so the
 * malicious archives are built here from raw 512-byte blocks.
 */
export function rawTar(entries: RawEntry[], { endMarker = true } = {}): Buffer {
  const blocks: Buffer[] = []
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '')
    const header = new tar.Header({
      path: entry.path,
      type: entry.type ?? 'File',
      size: entry.size ?? body.length,
      linkpath: entry.linkpath,
      mode: entry.mode ?? (entry.type === 'Directory' ? 0o755 : 0o644),
      uid: entry.uid ?? 0,
      gid: entry.uid ?? 0,
      mtime: new Date('2026-01-01T00:00:00Z'),
    })
    header.encode()
    const block = header.block!
    if (entry.typeflag) retype(block, entry.typeflag)
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  if (endMarker) blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

/** Rewrites a header's typeflag and its checksum. */
function retype(block: Buffer, typeflag: string): void {
  block.write(typeflag, 156, 1, 'ascii')
  block.fill(' ', 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii')
}
