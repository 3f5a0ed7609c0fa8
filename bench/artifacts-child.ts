/**
 * Small helper processes for the artifacts benchmark, run as
 * `node dist/bench/artifacts-child.js ROLE ARGS...` (inside a network namespace
 * when the benchmark says so). Each prints JSON lines on stdout.
 *
 * - `get URL...`: one line, the JSON bodies of the URLs (null for a failed one).
 * - `http-serve HOST PORT DIR`: serves the files of DIR (`GET /NAME`); prints `{"ready":true}`.
 * - `http-fetch URL...`: prints `{"ready":true}`, waits for a line on stdin, then
 *   downloads the URLs one after another, discarding the bytes; prints `{bytes, ms}`.
 * - `tcp-serve HOST PORT FILE...`: every connection gets the files, back to back;
 *   prints `{"ready":true,"port":P}`, then `{bytes, cpuS}` after each connection
 *   (the CPU seconds this process used while serving it).
 * - `tcp-source HOST PORT BYTES`: every connection gets BYTES random bytes from memory
 *   (no disk in the way: a link measurement); prints `{"ready":true,"port":P}`.
 * - `tcp-fetch HOST PORT`: reads one connection to its end, discarding; prints `{bytes, ms}`.
 * - `tcp-sink HOST PORT FILE`: the reference receiver: reads one connection to its end,
 *   hashing every byte with SHA-256 and writing it to FILE in writes of about 1 MiB, then
 *   fsyncs FILE; prints `{bytes, ms, cpuS, sha256}` (ms and cpuS from connect to fsync done).
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { createServer as createHttpServer, get as httpGet } from 'node:http'
import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import { basename, join } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'

const [role, ...args] = process.argv.slice(2)
const MiB = 1024 * 1024
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)

async function getJson(url: string): Promise<unknown> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    return await res.json()
  } catch {
    return null
  }
}

function httpServe(host: string, port: number, dir: string): void {
  const server = createHttpServer((req, res) => {
    const file = join(dir, basename(decodeURIComponent(req.url ?? '/')))
    stat(file).then(
      (info) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': info.size })
        pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), res).catch(() => res.destroy())
      },
      () => {
        res.writeHead(404).end()
      },
    )
  })
  server.listen(port, host, () => say({ ready: true }))
}

function httpDownload(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`${url}: HTTP ${res.statusCode}`))
        return
      }
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.byteLength
      })
      res.on('end', () => resolve(bytes))
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function httpFetch(urls: string[]): Promise<void> {
  say({ ready: true })
  const lines = createInterface({ input: process.stdin })
  await new Promise<void>((resolve) => lines.once('line', () => resolve()))
  lines.close()
  const since = performance.now()
  let bytes = 0
  try {
    for (const url of urls) bytes += await httpDownload(url)
    say({ bytes, ms: Math.round(performance.now() - since) })
  } catch (err) {
    say({ error: String(err), bytes })
  }
}

function tcpServe(host: string, port: number, files: string[]): void {
  listen(host, port, async (socket: Socket) => {
    const cpu = process.cpuUsage()
    let bytes = 0
    try {
      for (const file of files) {
        await pipeline(createReadStream(file, { highWaterMark: MiB }), socket, { end: false })
        bytes += (await stat(file)).size
      }
      socket.end()
      say({ bytes, cpuS: cpuSeconds(process.cpuUsage(cpu)) })
    } catch (err) {
      socket.destroy()
      say({ error: String(err), bytes })
    }
  })
}

function tcpSource(host: string, port: number, total: number): void {
  const block = randomBytes(MiB)
  listen(host, port, async (socket: Socket) => {
    try {
      for (let left = total; left > 0; left -= block.byteLength) {
        const piece = left >= block.byteLength ? block : block.subarray(0, left)
        if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve))
      }
      socket.end()
    } catch {
      socket.destroy()
    }
  })
}

function listen(host: string, port: number, serve: (socket: Socket) => Promise<void>): void {
  const server = createTcpServer((socket) => void serve(socket))
  server.listen(port, host, () => {
    const address = server.address()
    say({ ready: true, port: typeof address === 'object' && address != null ? address.port : port })
  })
}

/** What a receiver that keeps the bytes must at least do: hash each byte once, write it once, fsync. */
async function tcpSink(host: string, port: number, path: string): Promise<void> {
  const file = await open(path, 'w')
  const hash = createHash('sha256')
  let bytes = 0
  const since = performance.now()
  const cpu = process.cpuUsage()
  try {
    const socket = connect(port, host)
    let batch: Buffer[] = []
    let batched = 0
    for await (const chunk of socket as AsyncIterable<Buffer>) {
      hash.update(chunk)
      bytes += chunk.byteLength
      batch.push(chunk)
      batched += chunk.byteLength
      if (batched >= MiB) {
        await file.writev(batch)
        batch = []
        batched = 0
      }
    }
    if (batch.length > 0) await file.writev(batch)
    await file.sync()
    say({
      bytes,
      ms: round(performance.now() - since),
      cpuS: cpuSeconds(process.cpuUsage(cpu)),
      sha256: hash.digest('hex'),
    })
  } catch (err) {
    say({ error: String(err), bytes })
  } finally {
    await file.close()
  }
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return Math.round((usage.user + usage.system) / 1e3) / 1e3
}

function tcpFetch(host: string, port: number): void {
  const since = performance.now()
  let bytes = 0
  const socket = connect(port, host)
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength
  })
  socket.on('end', () => say({ bytes, ms: round(performance.now() - since) }))
  socket.on('error', (err) => say({ error: String(err), bytes }))
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}

switch (role) {
  case 'get':
    say(await Promise.all(args.map(getJson)))
    break
  case 'http-serve':
    httpServe(args[0]!, Number(args[1]), args[2]!)
    break
  case 'http-fetch':
    await httpFetch(args)
    break
  case 'tcp-serve':
    tcpServe(args[0]!, Number(args[1]), args.slice(2))
    break
  case 'tcp-source':
    tcpSource(args[0]!, Number(args[1]), Number(args[2]))
    break
  case 'tcp-fetch':
    tcpFetch(args[0]!, Number(args[1]))
    break
  case 'tcp-sink':
    await tcpSink(args[0]!, Number(args[1]), args[2]!)
    break
  default:
    console.error(`artifacts-child: unknown role ${role}`)
    process.exit(2)
}
