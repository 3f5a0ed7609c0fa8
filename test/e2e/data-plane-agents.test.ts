import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect as connectTcp, createServer, type Server, type Socket } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as connectTls } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MemberView, StatusView } from '../../src/api/index.js'
import { PREAMBLE } from '../../src/artifacts/data-plane/constants.js'
import { dataPlaneKey } from '../../src/artifacts/data-plane/index.js'
import { type DataRequest, encodeHeader } from '../../src/artifacts/data-plane/wire.js'
import type { DistributorStats } from '../../src/artifacts/index.js'
import { writeNewSecret } from '../../src/bootstrap/index.js'
import { EXIT } from '../../src/cli/exit-codes.js'
import { freePort, portInUse } from '../../src/shared/ports.js'
import { makeDistributionDir } from '../helpers/distribution.js'
import { type AgentProcess, type CliResult, runCli, spawnAgent } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/** ms after which a chunk the seed sent a fetcher is no longer answered `elsewhere` (1 s, and a margin). */
const FRESH_WAIT_MS = 1_500

/**
 * The data plane (issue 20) seen from outside, through real `shoal agent`
 * processes and the product's contract only (CLI and HTTP API): bulk bytes of a
 * published version travel over it, it is closed as tightly as the cluster (a
 * prober without the secret gets nothing from its port), transfers fall back to
 * libp2p when it is off or unreachable, an open cluster keeps it open, and a bad
 * `--data-listen` stops the agent with one line.
 */

/** `transfer` of GET /api/status. */
type TransferStats = DistributorStats
type DataPlaneStats = NonNullable<TransferStats['dataPlane']>

interface DistributionRow {
  id: string
  complete: boolean
  holders: string[]
  progress: { chunks: number; total: number }
}

interface ManifestArtifact {
  name: string
  sha256: string
  size: number
  chunkSize: number
}

/** 256 KiB chunks: a few MiB of artifacts is a few dozen chunks, fetched from several peers. */
const CHUNK_SIZE = 256 * 1024
const CHUNK_ARG = '256k'
/** A few MiB of random bytes, in files of sizes that end in a partial chunk. */
const FILES = { 'web.bin': 2 * 1024 * 1024 + 12_345, 'lib/core.bin': 1024 * 1024 + 7, 'app.json': 321 }
/** Chunks of the whole version. */
const CHUNKS = Object.values(FILES).reduce((sum, size) => sum + Math.ceil(size / CHUNK_SIZE), 0)

/** Only what the test can see from outside: the agent's API. */
async function api<T>(agent: AgentProcess, path: string): Promise<T> {
  const response = await fetch(`${agent.info.api}${path}`)
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status} ${await response.text()}`)
  return (await response.json()) as T
}
const status = (agent: AgentProcess) => api<StatusView>(agent, '/api/status')
const transfer = async (agent: AgentProcess): Promise<TransferStats> =>
  (await status(agent)).transfer as TransferStats

/** `shoal CMD ... --json --api AGENT`, which must succeed; its parsed stdout. */
async function cliJson<T>(agent: AgentProcess, ...args: string[]): Promise<T> {
  const result = await runCli([...args, '--json', '--api', agent.info.api])
  if (result.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}

/**
 * One cluster of agent processes on loopback, run as in production: `--preset
 * test`, no mDNS, every port from freePort(), and the cluster secret unless open.
 */
class Cluster {
  readonly agents: AgentProcess[] = []
  dir = ''
  secret: string | null = null
  key = ''
  private seedPort = 0
  private count = 0

  constructor(
    readonly name: string,
    private readonly closed: boolean,
  ) {}

  async init(): Promise<this> {
    this.dir = await mkdtemp(join(tmpdir(), `shoal-e2e-${this.name}-`))
    this.seedPort = await freePort()
    if (this.closed) {
      this.secret = join(this.dir, 'cluster.secret')
      const made = await runCli(['secret', 'new', this.secret])
      expect(made.code, made.stderr).toBe(0)
    }
    this.key = join(this.dir, 'publisher.key')
    const key = await runCli(['key', 'new', this.key])
    expect(key.code, key.stderr).toBe(0)
    return this
  }

  /** The first agent started listens on the seed port; the others bootstrap from it. */
  async start(extra: string[] = []): Promise<AgentProcess> {
    const first = this.count++ === 0
    const args = [
      '--cluster',
      this.name,
      '--data',
      join(this.dir, `agent-${this.count}`),
      '--listen',
      `/ip4/127.0.0.1/tcp/${first ? this.seedPort : await freePort()}`,
      '--api',
      `127.0.0.1:${await freePort()}`,
      '--no-mdns',
      '--preset',
      'test',
      '--trust',
      `${this.key}.pub`,
    ]
    if (this.secret != null) args.push('--secret-file', this.secret)
    if (!first) args.push('--bootstrap', `/ip4/127.0.0.1/tcp/${this.seedPort}`)
    const agent = await spawnAgent([...args, ...extra], this.dir)
    this.agents.push(agent)
    return agent
  }

  /** Every agent sees every other alive (so each knows the others' metadata). */
  async formed(): Promise<void> {
    for (const agent of this.agents)
      await waitFor(
        `${this.agents.length} alive members`,
        async () =>
          (await api<MemberView[]>(agent, '/api/members')).filter((m) => m.state === 'alive').length ===
          this.agents.length,
      )
  }

  /** A folder of random artifacts, published on `agent` with `shoal publish`. */
  async publish(agent: AgentProcess, version: string): Promise<{ id: string; folder: string }> {
    const folder = await makeDistributionDir(join(this.dir, `release-${version}`), FILES)
    const published = await runCli([
      'publish',
      folder,
      '--name',
      'educa',
      '--version',
      version,
      '--key',
      this.key,
      '--chunk-size',
      CHUNK_ARG,
      '--api',
      agent.info.api,
    ])
    expect(published.code, published.stderr).toBe(0)
    expect(published.stdout).toContain(`published educa@${version}`)
    return { id: `educa@${version}`, folder }
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((agent) => agent.stop('SIGKILL')))
    if (this.dir !== '' && process.env.SHOAL_KEEP_TEST_DIRS == null)
      await rm(this.dir, { recursive: true, force: true })
  }
}

/** `shoal distributions ID --watch --json` on `agent`: returns once it holds the version. */
async function held(agent: AgentProcess, id: string): Promise<DistributionRow> {
  const [row] = await cliJson<DistributionRow[]>(agent, 'distributions', id, '--watch', '--timeout', '120')
  expect(row).toMatchObject({ id, complete: true })
  expect(row!.progress.chunks).toBe(row!.progress.total)
  return row!
}

/** `shoal verify --json` re-hashes every blob (`versions` published, each of FILES): all intact. */
async function verified(agent: AgentProcess, versions = 1): Promise<void> {
  const result = await cliJson<{ checked: number; corrupt: string[] }>(agent, 'verify')
  expect(result.corrupt).toEqual([])
  expect(result.checked).toBe(versions * Object.keys(FILES).length)
}

/** The `data` key each member announces (by id), as `shoal members --json` on `viewer` shows it. */
async function announcedData(viewer: AgentProcess): Promise<Map<string, unknown>> {
  const members = await cliJson<MemberView[]>(viewer, 'members')
  return new Map(members.map((m) => [m.id, m.meta.data]))
}

/** Waits until `viewer` sees member `id` announce `data` = `address` (metadata travels by gossip). */
async function seesData(viewer: AgentProcess, id: string, address: string | undefined): Promise<void> {
  await waitFor(`${viewer.info.id} to see ${id} announce data=${address}`, async () => {
    const data = await announcedData(viewer)
    return data.has(id) && data.get(id) === address
  })
}

// --- speaking the data plane by hand (src/artifacts/data-plane/wire.ts) ----------------------------

/** A request frame as the protocol puts it on the wire (u16 length, JSON). */
const frame = (request: DataRequest) => encodeHeader(request)

interface Frame {
  header: { t: string; id: number; length?: number; whole?: boolean; size?: number }
  body: Buffer
}

/** The server's preamble and frames in `bytes` (a partial last frame is left out). */
function parseAnswers(bytes: Buffer): { preamble: boolean; frames: Frame[] } {
  if (bytes.length < PREAMBLE.length || !bytes.subarray(0, PREAMBLE.length).equals(PREAMBLE))
    return { preamble: false, frames: [] }
  const frames: Frame[] = []
  let at = PREAMBLE.length
  while (at + 2 <= bytes.length) {
    const length = bytes.readUInt16BE(at)
    if (at + 2 + length > bytes.length) break
    const header = JSON.parse(bytes.subarray(at + 2, at + 2 + length).toString('utf8')) as Frame['header']
    const bodyLength = header.t === 'chunk' || header.t === 'map' ? (header.length ?? 0) : 0
    if (at + 2 + length + bodyLength > bytes.length) break
    frames.push({ header, body: bytes.subarray(at + 2 + length, at + 2 + length + bodyLength) })
    at += 2 + length + bodyLength
  }
  return { preamble: true, frames }
}

interface Exchange {
  received: Buffer
  /** The server closed the connection (or it failed) before `until` was met. */
  closed: boolean
  /** Why the connection failed, if it did (a TLS alert, a reset). */
  error: string | null
}

/**
 * Opens a connection, writes `bytes` once it is up (after the handshake for TLS),
 * and collects what comes back until the other end closes, `until(received)`
 * holds, or `ms` pass. Never throws: a failed connection is a result.
 */
function exchange(
  open: (onUp: () => void) => Socket,
  bytes: Buffer,
  until: (received: Buffer) => boolean = () => false,
  ms = 30_000,
): Promise<Exchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let error: string | null = null
    let done = false
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ received: Buffer.concat(chunks), closed, error })
    }
    const socket = open(() => socket.write(bytes))
    const timer = setTimeout(() => finish(false), ms)
    socket.on('data', (data: Buffer) => {
      chunks.push(data)
      if (until(Buffer.concat(chunks))) finish(false)
    })
    socket.on('error', (err) => {
      error = err.message
    })
    socket.on('close', () => finish(true))
  })
}

const tcp = (host: string, port: number) => (onUp: () => void) => connectTcp({ host, port }, onUp)
const tls = (host: string, port: number, psk: Buffer | null) => (onUp: () => void) =>
  connectTls(
    {
      host,
      port,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      checkServerIdentity: () => undefined,
      ...(psk == null
        ? { rejectUnauthorized: false }
        : { pskCallback: () => ({ psk, identity: 'e2e-prober' }) }),
    },
    onUp,
  )

function hostPort(address: string): { host: string; port: number } {
  const split = address.lastIndexOf(':')
  return { host: address.slice(0, split).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(split + 1)) }
}

/** Nothing of the protocol, the blob or its name is in what a refused prober received. */
function expectNothingLearned(received: Buffer, blob: { sha256: string; bytes: Buffer }): void {
  expect(received.includes(PREAMBLE), 'no preamble').toBe(false)
  expect(received.toString('latin1')).not.toMatch(/"t"\s*:|chunk|"map"|shoal/)
  expect(received.includes(Buffer.from(blob.sha256)), 'not the blob name').toBe(false)
  // Not one 32-byte run of the blob's first or second chunk.
  for (const offset of [0, 1000, CHUNK_SIZE, CHUNK_SIZE + 5000])
    expect(received.includes(blob.bytes.subarray(offset, offset + 32)), `blob bytes at ${offset}`).toBe(false)
  // At most a TLS alert record (content type 21) and no more than one.
  if (received.length > 0) {
    expect(received[0], `a TLS alert, not ${received.toString('hex').slice(0, 40)}`).toBe(21)
    expect(received.length).toBeLessThanOrEqual(7)
  }
}

// -----------------------------------------------------------------------------------------------------

describe('a closed cluster of three agents: bulk bytes over the data plane, closed to outsiders', () => {
  const cluster = new Cluster('dp-closed', true)
  let seed: AgentProcess
  let fetchers: AgentProcess[]
  let release: { id: string; folder: string }

  beforeAll(async () => {
    await cluster.init()
    seed = await cluster.start()
    fetchers = [await cluster.start(), await cluster.start()]
    await cluster.formed()
  })
  afterAll(() => cluster.stop())

  it("every agent announces its data plane's loopback address in its metadata, as its status reports it", async () => {
    const addresses = new Map<string, string>()
    for (const agent of cluster.agents) {
      const stats: DataPlaneStats | null = (await transfer(agent)).dataPlane
      expect(stats?.address).toMatch(/^127\.0\.0\.1:\d{4,5}$/)
      addresses.set(agent.info.id, stats!.address)
    }
    expect(new Set(addresses.values()).size, 'one port each').toBe(3)
    for (const viewer of cluster.agents)
      await waitFor(`${viewer.info.id} to see every member announce its data address`, async () => {
        const data = await announcedData(viewer)
        return [...addresses].every(([id, address]) => data.get(id) === address)
      })
  })

  it('a published version reaches both fetchers over the data plane: no fallback, every chunk served by it, verified', async () => {
    release = await cluster.publish(seed, '1.0')
    for (const fetcher of fetchers) {
      const row = await held(fetcher, release.id)
      expect(row.progress.total).toBe(CHUNKS)
    }

    const seedStats = await transfer(seed)
    expect(seedStats.dataPlane, 'the seed runs a data plane').not.toBeNull()
    expect(seedStats.dataPlane!.chunksServed).toBeGreaterThan(0)
    expect(seedStats.dataPlane!.bytesServed).toBeGreaterThan(0)

    let fetched = 0
    let servedOverData = 0
    for (const agent of cluster.agents) {
      const stats = await transfer(agent)
      expect(stats.dataPlane, agent.info.id).not.toBeNull()
      // A chunk served over libp2p counts in chunksServed only: none was.
      expect(stats.chunksServed, `${agent.info.id}: every chunk it served went over the data plane`).toBe(
        stats.dataPlane!.chunksServed,
      )
      expect(stats.dataPlane!.fallbacks, `${agent.info.id}: no chunk fell back to libp2p`).toBe(0)
      expect(stats.badChunks).toBe(0)
      fetched += stats.chunksFetched
      servedOverData += stats.dataPlane!.chunksServed
    }
    // Every chunk the fetchers kept came from someone's data plane (a chunk may be served and not kept).
    expect(fetched).toBeGreaterThanOrEqual(2 * CHUNKS)
    expect(servedOverData).toBeGreaterThanOrEqual(fetched)

    for (const fetcher of fetchers) await verified(fetcher)
  })

  describe("a prober without the secret on the seed's data port", () => {
    let target: { host: string; port: number }
    let blob: { sha256: string; chunkSize: number; bytes: Buffer }
    let get: Buffer
    let watch: Buffer
    let servedBefore: DataPlaneStats
    /** The data-plane key of another cluster (a secret made for the occasion). */
    let otherKey: Buffer
    let rightKey: Buffer

    beforeAll(async () => {
      const stats = (await transfer(seed)).dataPlane!
      target = hostPort(stats.address)
      const detail = await api<{ manifest: { manifest: { artifacts: ManifestArtifact[] } } }>(
        seed,
        '/api/distributions/educa/1.0',
      )
      const artifact = detail.manifest.manifest.artifacts.find((a) => a.name === 'web.bin')!
      const bytes = await readFile(join(release.folder, 'web.bin'))
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(artifact.sha256)
      expect(artifact.chunkSize).toBe(CHUNK_SIZE)
      blob = { sha256: artifact.sha256, chunkSize: artifact.chunkSize, bytes }
      get = Buffer.concat([
        PREAMBLE,
        frame({ t: 'get', id: 1, blob: blob.sha256, chunkSize: blob.chunkSize, index: 0 }),
      ])
      watch = Buffer.concat([
        PREAMBLE,
        frame({ t: 'watch', id: 2, blob: blob.sha256, chunkSize: blob.chunkSize }),
      ])
      const other = join(cluster.dir, 'other.secret')
      await writeNewSecret(other)
      otherKey = dataPlaneKey(await readFile(other), cluster.name)
      rightKey = dataPlaneKey(await readFile(cluster.secret!), cluster.name)
      expect(otherKey.equals(rightKey)).toBe(false)
      servedBefore = stats
    })

    it('plain TCP with a well-formed get or watch: closed, with no answer and no byte of the blob', async () => {
      for (const request of [get, watch, Buffer.concat([get, watch.subarray(PREAMBLE.length)])]) {
        // Stops early at the first sign of an answer, so a leak fails at once.
        const { received, closed } = await exchange(tcp(target.host, target.port), request, (got) =>
          got.includes(PREAMBLE),
        )
        expectNothingLearned(received, blob)
        expect(parseAnswers(received).frames).toEqual([])
        expect(closed, 'the seed closes the connection').toBe(true)
      }
    })

    it('TLS with the key of another secret: the handshake fails and nothing is received', async () => {
      for (const request of [get, watch]) {
        const { received, closed, error } = await exchange(tls(target.host, target.port, otherKey), request)
        expect(closed).toBe(true)
        expect(error, 'the handshake failed').not.toBeNull()
        expect(received).toHaveLength(0)
      }
      // Nor with no pre-shared key at all (certificates only).
      const { received, closed } = await exchange(tls(target.host, target.port, null), get)
      expect(closed).toBe(true)
      expect(received).toHaveLength(0)
    })

    it('the seed served nothing to the probers', async () => {
      const after = (await transfer(seed)).dataPlane!
      expect(after.chunksServed).toBe(servedBefore.chunksServed)
      expect(after.bytesServed).toBe(servedBefore.bytesServed)
    })

    it('with the key of this cluster the same get is answered with the chunk, and the watch with the map (the probes are right)', async () => {
      const first = blob.bytes.subarray(0, blob.chunkSize)
      // A chunk just sent to a fetcher is answered `elsewhere` for 1 s (super-seeding).
      await sleep(FRESH_WAIT_MS)
      const answered = (bytes: Buffer) => {
        const { frames } = parseAnswers(bytes)
        return frames.some((f) => f.header.t === 'chunk') && frames.some((f) => f.header.t === 'map')
      }
      const { received, error } = await exchange(
        tls(target.host, target.port, rightKey),
        Buffer.concat([get, watch.subarray(PREAMBLE.length)]),
        answered,
      )
      expect(error).toBeNull()
      const { preamble, frames } = parseAnswers(received)
      expect(preamble).toBe(true)
      const chunk = frames.find((f) => f.header.t === 'chunk')
      expect(chunk?.header).toEqual({ t: 'chunk', id: 1, length: blob.chunkSize })
      expect(chunk!.body.equals(first), 'the first chunk of web.bin').toBe(true)
      const map = frames.find((f) => f.header.t === 'map')
      expect(map?.header).toMatchObject({ t: 'map', id: 2, whole: true, size: blob.bytes.length })
      await waitFor('the seed to count the chunk served', async () => {
        const after = (await transfer(seed)).dataPlane!
        return after.chunksServed === servedBefore.chunksServed + 1 &&
          after.bytesServed === servedBefore.bytesServed + blob.chunkSize
          ? after
          : null
      })
    })
  })
})

/** The refused case announces an address on IPv6 loopback, where the data plane does not listen. */
const noIpv6Loopback = skipReason(
  import.meta.url,
  'data plane: an announced address that refuses connections',
  Object.values(networkInterfaces()).some((addrs) => addrs?.some((a) => a.address === '::1'))
    ? null
    : 'this machine has no IPv6 loopback (::1)',
)

describe('fallback to libp2p when the data plane cannot serve', () => {
  it('an agent started with --data-listen off announces no data plane: versions travel to and from it over libp2p', async () => {
    const cluster = await new Cluster('dp-off', true).init()
    try {
      const seed = await cluster.start(['--data-listen', 'off'])
      const fetcher = await cluster.start()
      await cluster.formed()
      const { id } = await cluster.publish(seed, '1.0')
      await held(fetcher, id)
      await verified(fetcher)

      expect((await transfer(seed)).dataPlane, 'no data plane on the seed').toBeNull()
      for (const viewer of [seed, fetcher]) {
        const data = await announcedData(viewer)
        expect(data.has(seed.info.id)).toBe(true)
        expect(data.get(seed.info.id), 'the seed announces no data').toBeUndefined()
        expect(data.get(fetcher.info.id)).toBe((await transfer(fetcher)).dataPlane!.address)
      }
      const seedStats = await transfer(seed)
      expect(seedStats.chunksServed, 'served over libp2p').toBeGreaterThan(0)
      const fetcherStats = await transfer(fetcher)
      expect(fetcherStats.chunksFetched).toBeGreaterThanOrEqual(CHUNKS)
      // Nothing was unreachable: there was no data plane to try.
      expect(fetcherStats.dataPlane?.fallbacks).toBe(0)

      // Nor does the agent without a data plane fetch over one: a version published on
      // the other agent comes to it over libp2p, and that agent's data plane serves nothing.
      const second = await cluster.publish(fetcher, '2.0')
      await held(seed, second.id)
      await verified(seed, 2)
      const other = await transfer(fetcher)
      expect(other.chunksServed, 'served over libp2p').toBeGreaterThanOrEqual(CHUNKS)
      expect(other.dataPlane!.chunksServed).toBe(0)
      expect(other.dataPlane!.connections).toBe(0)
    } finally {
      await cluster.stop()
    }
  })

  it.skipIf(noIpv6Loopback != null)(
    'a seed whose announced data address refuses connections: the fetcher completes over libp2p and counts fallbacks',
    async () => {
      const cluster = await new Cluster('dp-refused', true).init()
      try {
        // The seed listens for the data plane on IPv4 only and announces an address on
        // IPv6 loopback where nothing listens: every connection to it is refused, as
        // behind a firewall that rejects the port (no netfilter tool needed).
        const port = await freePort()
        expect(await portInUse('::1', port), `[::1]:${port} must be free`).toBe(false)
        const seed = await cluster.start(['--data-listen', `0.0.0.0:${port}`, '--advertise-host', '::1'])
        const fetcher = await cluster.start()
        await cluster.formed()
        expect((await transfer(seed)).dataPlane?.address).toBe(`[::1]:${port}`)
        await seesData(fetcher, seed.info.id, `[::1]:${port}`)
        // The refusal is real: a plain connect to the announced address fails.
        const probe = await exchange(tcp('::1', port), PREAMBLE, () => true, 10_000)
        expect(probe.error).toMatch(/ECONNREFUSED/)

        const { id } = await cluster.publish(seed, '1.0')
        await held(fetcher, id)
        await verified(fetcher)

        const fetcherStats = await transfer(fetcher)
        expect(fetcherStats.chunksFetched).toBeGreaterThanOrEqual(CHUNKS)
        expect(
          fetcherStats.dataPlane!.fallbacks,
          'chunks fetched over libp2p for want of the data plane',
        ).toBeGreaterThan(0)
        expect(fetcherStats.dataPlane!.fallbacks).toBeGreaterThanOrEqual(fetcherStats.chunksFetched)
        const seedStats = await transfer(seed)
        expect(seedStats.dataPlane!.chunksServed, 'nothing over the data plane').toBe(0)
        expect(seedStats.chunksServed).toBeGreaterThanOrEqual(CHUNKS)
      } finally {
        await cluster.stop()
      }
    },
  )
})

describe('an open cluster (no secret): the data plane is plain TCP and open', () => {
  it('a published version travels over the data plane; a plain TCP client is served a chunk', async () => {
    const cluster = await new Cluster('dp-open', false).init()
    try {
      const seed = await cluster.start()
      const fetcher = await cluster.start()
      await cluster.formed()
      expect((await status(seed)).open).toBe(true)
      const address = (await transfer(seed)).dataPlane!.address
      expect(address).toMatch(/^127\.0\.0\.1:\d{4,5}$/)
      await seesData(fetcher, seed.info.id, address)
      const { id, folder } = await cluster.publish(seed, '1.0')
      await held(fetcher, id)
      await verified(fetcher)

      const seedStats = await transfer(seed)
      expect(seedStats.dataPlane!.chunksServed).toBeGreaterThan(0)
      expect(seedStats.chunksServed).toBe(seedStats.dataPlane!.chunksServed)
      const fetcherStats = await transfer(fetcher)
      expect(fetcherStats.dataPlane!.fallbacks).toBe(0)

      // Open means open: anyone speaking the protocol over plain TCP is served.
      const bytes = await readFile(join(folder, 'web.bin'))
      const sha256 = createHash('sha256').update(bytes).digest('hex')
      const target = hostPort(seedStats.dataPlane!.address)
      // A chunk just sent to the fetcher is answered `elsewhere` for 1 s (super-seeding).
      await sleep(FRESH_WAIT_MS)
      const { received } = await exchange(
        tcp(target.host, target.port),
        Buffer.concat([PREAMBLE, frame({ t: 'get', id: 7, blob: sha256, chunkSize: CHUNK_SIZE, index: 1 })]),
        (got) => parseAnswers(got).frames.length > 0,
      )
      const [answer] = parseAnswers(received).frames
      expect(answer?.header).toEqual({ t: 'chunk', id: 7, length: CHUNK_SIZE })
      expect(answer!.body.equals(bytes.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE))).toBe(true)
    } finally {
      await cluster.stop()
    }
  })
})

describe('a bad --data-listen stops the agent with one line', () => {
  let dir: string
  let blocker: Server
  let taken: number
  let runs = 0

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-dp-listen-'))
    blocker = createServer()
    taken = await freePort()
    await new Promise<void>((done) => blocker.listen(taken, '127.0.0.1', done))
  })
  afterAll(async () => {
    await new Promise((done) => blocker.close(done))
    await rm(dir, { recursive: true, force: true })
  })

  const agent = (dataListen: string): Promise<CliResult> =>
    runCli([
      'agent',
      '--cluster',
      'dp-listen',
      '--data',
      join(dir, `agent-${++runs}`),
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--api',
      '127.0.0.1:0',
      '--no-mdns',
      '--preset',
      'test',
      '--data-listen',
      dataListen,
    ])

  /** The one `error:` line of a failed start; no stack trace anywhere on stderr. */
  function errorLine(result: CliResult): string {
    expect(result.stdout).toBe('')
    expect(result.stderr, 'no stack trace').not.toMatch(/^\s+at /m)
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error: '))
    expect(errors, result.stderr).toHaveLength(1)
    return errors[0]!
  }

  it('"nonsense": usage error, exit 2, one line naming --data-listen', async () => {
    const result = await agent('nonsense')
    expect(result.code, result.stderr).toBe(EXIT.usage)
    const line = errorLine(result)
    expect(line).toContain('--data-listen')
    expect(line).toContain('nonsense')
    expect(result.stderr.trim().split('\n'), 'nothing else was started').toHaveLength(1)
  })

  it('a data port in use: exit 1, one line saying so and to choose another with --data-listen', async () => {
    const result = await agent(`127.0.0.1:${taken}`)
    expect(result.code, result.stderr).toBe(EXIT.failed)
    const line = errorLine(result)
    expect(line).toContain(`127.0.0.1:${taken}`)
    expect(line).toMatch(/in use/)
    expect(line).toMatch(/choose another port with --data-listen/)
    expect(line).toMatch(/\(ERR_PORT_IN_USE\)$/)
  })
})
