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
 *   prints `{"ready":true,"port":P}`.
 * - `tcp-fetch HOST PORT`: reads one connection to its end, discarding; prints `{bytes, ms}`.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer as createHttpServer, get as httpGet } from 'node:http'
import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import { basename, join } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'

const [role, ...args] = process.argv.slice(2)
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
  const server = createTcpServer(async (socket: Socket) => {
    try {
      for (const file of files) {
        await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), socket, { end: false })
      }
      socket.end()
    } catch {
      socket.destroy()
    }
  })
  server.listen(port, host, () => {
    const address = server.address()
    say({ ready: true, port: typeof address === 'object' && address != null ? address.port : port })
  })
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
  case 'tcp-fetch':
    tcpFetch(args[0]!, Number(args[1]))
    break
  default:
    console.error(`artifacts-child: unknown role ${role}`)
    process.exit(2)
}
