import { createReadStream } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open, rename, rm, stat } from 'node:fs/promises'
import type { Logger } from '../shared/index.js'
import { TypedEvents } from '../shared/index.js'

export interface LogFileEvents {
  /** Text appended to the log (what `--follow` streams). */
  'log:data': string
}

/**
 * A component's output, appended to `<name>.log` and rotated by size into
 * `<name>.log.1` … `.log.<keep>`, so a chatty or crash-looping component cannot
 * fill the disk. Writes are serialised; the tail is read back from the files.
 */
export class LogFile {
  readonly events: TypedEvents<LogFileEvents>
  private handle: FileHandle | undefined
  private size = 0
  private queue: Promise<void> = Promise.resolve()

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
    log: Logger,
  ) {
    this.events = new TypedEvents(log)
  }

  async open(): Promise<void> {
    this.handle = await open(this.path, 'a')
    this.size = (await stat(this.path)).size
  }

  /** Appends text (a line prefix is the caller's business); never throws. */
  write(text: string): void {
    if (text.length === 0) return
    this.events.emit('log:data', text)
    this.queue = this.queue.then(() => this.append(text)).catch(() => {})
  }

  /** The last `lines` lines across the current and rotated files. */
  async tail(lines: number): Promise<string[]> {
    await this.queue
    const found: string[] = []
    for (let i = 0; i <= this.keep && found.length < lines; i++) {
      const file = i === 0 ? this.path : `${this.path}.${i}`
      const text = await readTailOf(file, 256 * 1024).catch(() => '')
      const fileLines = text.split('\n')
      if (fileLines.at(-1) === '') fileLines.pop()
      found.unshift(...fileLines.slice(-(lines - found.length)))
    }
    return found.slice(-lines)
  }

  async close(): Promise<void> {
    await this.queue
    await this.handle?.close()
    this.handle = undefined
  }

  private async append(text: string): Promise<void> {
    if (this.handle == null) return
    const bytes = Buffer.from(text)
    if (this.size + bytes.length > this.maxBytes && this.size > 0) await this.rotate()
    await this.handle.write(bytes)
    this.size += bytes.length
  }

  private async rotate(): Promise<void> {
    await this.handle?.close()
    await rm(`${this.path}.${this.keep}`, { force: true })
    for (let i = this.keep - 1; i >= 1; i--)
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => {})
    await rename(this.path, `${this.path}.1`)
    this.handle = await open(this.path, 'a')
    this.size = 0
  }
}

async function readTailOf(file: string, maxBytes: number): Promise<string> {
  const { size } = await stat(file)
  const start = Math.max(0, size - maxBytes)
  const chunks: Buffer[] = []
  for await (const chunk of createReadStream(file, { start })) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  // A cut in the middle of a line would show half a line: drop it.
  return start > 0 ? text.slice(text.indexOf('\n') + 1) : text
}
