import type { Message, PubSub } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { VersionUnpublishedError } from '../manager/index.js'
import type { Member, MemberMetadata, MembershipEvents } from '../membership/index.js'
import type { Logger, Startable } from '../shared/index.js'
import { type Channel, exchange, messageOf, type StreamNetwork, serve, TypedEvents } from '../shared/index.js'
import { dataAddressOf, fitHoldings, holdingsOf } from './announcement.js'
import type { BlobLayout, BlobStore } from './blob-store.js'
import { BufferPool } from './buffer-pool.js'
import { byPublication, type Catalogue, type CatalogueEntry } from './catalogue.js'
import { type ChunkSources, type FetchedChunk, fetchBlob } from './chunk-fetcher.js'
import { ChunkMap } from './chunk-map.js'
import {
  CHUNK_TIMEOUT_MS,
  DATA_CONNECT_TIMEOUT_MS,
  DATA_PLANE_RETRY_MS,
  DISK_FULL_RETRY_MS,
  PENALTY_MS,
  REQUEST_TIMEOUT_MS,
  STALL_MS,
} from './constants.js'
import {
  ChunkElsewhereError,
  DataPlaneBusyError,
  DataPlaneClient,
  DataPlaneServer,
  type DataPlaneServerStats,
  type DataPlaneTarget,
  DataPlaneUnreachableError,
} from './data-plane/index.js'
import { checkDistribution } from './distribution-rules.js'
import {
  ArtifactMissingError,
  BlobTruncatedError,
  DiskFullError,
  ManifestSignatureError,
  UnknownDistributionError,
} from './errors.js'
import { HaveTracker } from './have-tracker.js'
import { distributionId, type SignedManifest, verifySignedManifest } from './manifest.js'
import { PeerBudget } from './peer-budget.js'
import {
  type ArtifactProtocols,
  announcement,
  artifactProtocols,
  decodeJson,
  encodeJson,
  MAX_MANIFEST_FRAME,
  MAX_TRANSFER_FRAME,
  manifestRequest,
  transferAnswer,
  transferRequest,
} from './protocol.js'
import { RateLimiter } from './rate-limiter.js'
import { Semaphore } from './semaphore.js'
import type { TrustedKey } from './signing.js'
import { TransferMeter, type TransferView } from './transfer-meter.js'

/** What the distributor needs of membership: the view, its events, and our own metadata. */
export interface MembershipView {
  readonly id: string
  readonly events: TypedEvents<MembershipEvents>
  members(): Member[]
  get(id: string): Member | undefined
  updateMetadata(patch: MemberMetadata): Promise<void>
}

export interface DistributorComponents {
  network: StreamNetwork & { services: { pubsub: PubSub } }
  membership: MembershipView
  store: BlobStore
  catalogue: Catalogue
  trusted: TrustedKey[]
  logger: Logger
}

export interface DistributorInit {
  cluster: string
  /** Versions kept per name (plus protected ones). */
  retention: number
  /** Chunk requests in flight, all blobs together. */
  parallelChunks: number
  /** Bytes per second served to peers; 0 = unlimited. */
  uploadRate: number
  /** Bytes per second fetched from peers; 0 = unlimited. */
  downloadRate: number
  /** ms a blob download waits without any source before it is retried later. */
  idleTimeoutMs: number
  /** Versions retention must keep whatever their age (active, referenced by a rollout). */
  protectedVersions?: () => Set<string>
  /** Data-plane connections served at once; a request beyond them is answered busy. */
  uploadSlots: number
  /**
   * The data plane for bulk bytes (docs/protocol.md): where it listens, the host
   * peers reach it on, and the key of a closed cluster (null: open, plain TCP).
   * null: off, chunks travel over libp2p.
   */
  dataPlane: DataPlaneSettings | null
}

export interface DataPlaneSettings {
  host: string
  port: number
  advertiseHost: string
  key: Buffer | null
}

export interface DistributorEvents {
  /** A version was accepted into the catalogue (published here or learned from a peer). */
  'distribution:available': { id: string }
  /** This node now holds every artifact of the version, verified. */
  'distribution:complete': { id: string }
  /** Retention dropped the version, or the cluster unpublished it. */
  'distribution:removed': { id: string }
}

/** ms holdersOf's answer is reused while no member changes (penalties expire meanwhile). */
const HOLDERS_TTL_MS = 1_000

/** One row of `shoal distributions --json` / `GET /api/distributions`. */
export interface DistributionView {
  id: string
  name: string
  version: string
  complete: boolean
  artifacts: number
  bytes: number
  publisher: string
  createdAt: string
  supersedes: string | null
  digest: string
  /** Members (this one included) that hold every artifact. */
  holders: string[]
  /** Chunks this node holds of the whole version. */
  progress: { chunks: number; total: number }
  /** The download under way here (rate, sources, ETA), or null when none is. */
  transfer: TransferView | null
}

export interface DistributorStats {
  chunksFetched: number
  bytesFetched: number
  chunksServed: number
  bytesServed: number
  badChunks: number
  /** Chunk requests that got no chunk (refused, timed out, cut short); corrupt chunks count as badChunks. */
  chunkRequestsFailed: number
  penalised: Array<{ peer: string; until: string; reason: string }>
  /** Bytes fetched per peer, per version, since start. */
  sources: Record<string, Record<string, number>>
  /** The data plane: where peers reach it and what it served; null when it is off. */
  dataPlane: (DataPlaneServerStats & { address: string; fallbacks: number }) | null
}

/**
 * Moves distributions between peers: accepts signed manifests (published here
 * or learned from peers through gossip and member metadata), fetches their blobs
 * chunk by chunk from every peer that holds pieces, serves what it holds, lists
 * its holdings in member metadata, and applies the retention policy.
 */
export class Distributor implements Startable {
  readonly events: TypedEvents<DistributorEvents>
  private readonly protocols: ArtifactProtocols
  private readonly log: Logger
  private readonly slots: Semaphore
  private readonly downloadLimiter: RateLimiter
  private readonly uploadLimiter: RateLimiter
  private readonly learning = new Map<string, Promise<void>>()
  private readonly inProgress = new Set<string>()
  /** Versions left out of our metadata for want of room, last time (logged when it changes). */
  private unannounced = 0
  /** Requests in flight per peer and each peer's pipeline depth, every download together. */
  private readonly budget = new PeerBudget()
  /** What peers still fetching a blob hold of it (HAVE notices, or polls). */
  private readonly haveTracker: HaveTracker
  /** Blob downloads under way: two versions sharing a blob share its one download. */
  private readonly blobFetches = new Map<string, Promise<void>>()
  /** holdersOf's answers, dropped at every member change. */
  private readonly holdersCache = new Map<
    string,
    { at: number; holders: { complete: string[]; fetching: string[] } }
  >()
  private readonly penalties = new Map<string, { until: number; reason: string }>()
  private readonly counters = {
    chunksFetched: 0,
    bytesFetched: 0,
    chunksServed: 0,
    bytesServed: 0,
    badChunks: 0,
    chunkRequestsFailed: 0,
  }
  private readonly sourceBytes = new Map<string, Map<string, number>>()
  private readonly meter = new TransferMeter()
  /** Receive buffers for data-plane chunks: one per request in flight, reused. */
  private readonly buffers: BufferPool
  /** Why downloads wait (a full disk), until a download round meets no full disk. */
  private paused: TransferView['paused'] = null
  private diskFullThisRound = false
  private abort = new AbortController()
  private dataServer: DataPlaneServer | null = null
  private dataClient: DataPlaneClient | null = null
  private dataAddress = ''
  /** Peers whose data plane could not be reached, until when: their chunks come over libp2p meanwhile. */
  private readonly dataDown = new Map<string, number>()
  /** Chunks fetched over libp2p because the peer's data plane could not be reached. */
  private fallbacks = 0
  private running = false
  private downloading: Promise<void> | undefined
  private downloadAgain = false
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private readonly unsubscribe: Array<() => void> = []
  /** Versions the cluster unpublished: dropped, never learned or published again. */
  private withdrawn = new Set<string>()
  private withdrawing: Promise<void> = Promise.resolve()

  constructor(
    private readonly init: DistributorInit,
    private readonly components: DistributorComponents,
  ) {
    this.log = components.logger.child('artifacts')
    this.events = new TypedEvents<DistributorEvents>(this.log)
    this.protocols = artifactProtocols(init.cluster)
    this.slots = new Semaphore(init.parallelChunks)
    this.downloadLimiter = new RateLimiter(init.downloadRate)
    this.uploadLimiter = new RateLimiter(init.uploadRate)
    this.buffers = new BufferPool(init.parallelChunks + 4)
    this.haveTracker = new HaveTracker(
      {
        watch: (peer, layout, onNotice, onEnd) => {
          const target = this.dataTarget(peer)
          if (target == null || this.dataClient == null) return null
          return this.dataClient.watch(target, layout.sha256, layout.chunkSize, onNotice, onEnd)
        },
        ask: (peer, layout) => this.askHave(peer, layout),
      },
      (peer, error) => this.log.debug('HAVE notices from a peer stopped', { peer, error }),
    )
  }

  private get network() {
    return this.components.network
  }

  private get catalogue(): Catalogue {
    return this.components.catalogue
  }

  private get store(): BlobStore {
    return this.components.store
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.abort = new AbortController()
    const limits = { timeoutMs: CHUNK_TIMEOUT_MS, maxBytes: 64 * 1024 }
    await serve(this.network, this.protocols.transfer, limits, this.log, (ch) => this.answerTransfer(ch))
    await serve(
      this.network,
      this.protocols.manifests,
      { ...limits, timeoutMs: REQUEST_TIMEOUT_MS },
      this.log,
      (ch) => this.answerManifest(ch),
    )
    await this.startDataPlane()
    this.network.services.pubsub.subscribe(this.protocols.topic)
    this.network.services.pubsub.addEventListener('message', this.onGossip)
    const { events } = this.components.membership
    this.unsubscribe.push(events.on('member:join', this.onMember), events.on('member:update', this.onMember))
    await this.publishHoldings()
    for (const member of this.components.membership.members()) this.onMember(member)
    this.kickDownloads()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.abort.abort()
    clearTimeout(this.retryTimer)
    for (const off of this.unsubscribe.splice(0)) off()
    this.haveTracker.stop()
    this.network.services.pubsub.removeEventListener('message', this.onGossip)
    try {
      this.network.services.pubsub.unsubscribe(this.protocols.topic)
    } catch {
      // pubsub already stopped
    }
    await this.network.unhandle([this.protocols.transfer, this.protocols.manifests]).catch(() => {})
    await this.downloading?.catch(() => {})
    await this.dataClient?.close()
    await this.dataServer?.stop()
    this.dataClient = null
    this.dataServer = null
    await Promise.allSettled(this.learning.values())
  }

  /**
   * Accepts a signed manifest from an operator: verified against the trust list,
   * meeting the distribution rules (what a rollout needs), not unpublished, every
   * artifact already in the store; then announced to the cluster.
   */
  async publish(input: unknown): Promise<{ result: 'added' | 'same'; distribution: DistributionView }> {
    const signed = verifySignedManifest(input, this.components.trusted)
    checkDistribution(signed.manifest)
    const id = distributionId(signed.manifest)
    if (this.withdrawn.has(id)) throw new VersionUnpublishedError(id)
    const missing = [...new Set(signed.manifest.artifacts.map((a) => a.sha256))].filter(
      (h) => !this.store.has(h),
    )
    if (missing.length > 0) throw new ArtifactMissingError(missing)
    const { result, entry } = await this.catalogue.add(signed)
    if (result === 'added') {
      this.log.info('distribution published', { id: entry.id, artifacts: signed.manifest.artifacts.length })
      this.events.emit('distribution:available', { id: entry.id })
      this.events.emit('distribution:complete', { id: entry.id })
      await this.applyRetention(signed.manifest.name)
      await this.publishHoldings()
      this.announce(entry)
    }
    return { result, distribution: this.view(entry) }
  }

  list(): DistributionView[] {
    return this.catalogue.list().map((entry) => this.view(entry))
  }

  history(name: string): DistributionView[] {
    return this.catalogue.history(name).map((entry) => this.view(entry))
  }

  detail(id: string): DistributionView & { manifest: SignedManifest; sources: Record<string, number> } {
    const entry = this.catalogue.get(id)
    if (entry == null) throw new UnknownDistributionError(id)
    return {
      ...this.view(entry),
      manifest: entry.signed,
      sources: Object.fromEntries(this.sourceBytes.get(id) ?? []),
    }
  }

  isComplete(id: string): boolean {
    const entry = this.catalogue.get(id)
    return entry?.signed.manifest.artifacts.every((a) => this.store.has(a.sha256)) === true
  }

  stats(): DistributorStats {
    const now = Date.now()
    return {
      ...this.counters,
      penalised: [...this.penalties]
        .filter(([, p]) => p.until > now)
        .map(([peer, p]) => ({ peer, until: new Date(p.until).toISOString(), reason: p.reason })),
      sources: Object.fromEntries([...this.sourceBytes].map(([id, m]) => [id, Object.fromEntries(m)])),
      dataPlane:
        this.dataServer == null
          ? null
          : { address: this.dataAddress, fallbacks: this.fallbacks, ...this.dataServer.stats() },
    }
  }

  // --- the data plane ------------------------------------------------------------------

  /**
   * Listens for chunk requests on the data plane and announces where (`data`); the
   * client that fetches from peers' data planes. Served chunks count with the others.
   */
  private async startDataPlane(): Promise<void> {
    const settings = this.init.dataPlane
    if (settings == null) return
    const server = new DataPlaneServer(
      {
        key: settings.key,
        host: settings.host,
        port: settings.port,
        uploadSlots: this.init.uploadSlots,
        beforeSend: (bytes) => this.uploadLimiter.take(bytes),
        onServed: (_peer, bytes) => {
          this.counters.chunksServed++
          this.counters.bytesServed += bytes
        },
      },
      this.store,
      this.log,
    )
    const { port } = await server.start()
    this.dataServer = server
    const host = settings.advertiseHost
    this.dataAddress = `${host.includes(':') ? `[${host}]` : host}:${port}`
    this.dataClient = new DataPlaneClient(
      {
        key: settings.key,
        identity: this.components.membership.id,
        stallMs: STALL_MS,
        connectTimeoutMs: DATA_CONNECT_TIMEOUT_MS,
      },
      this.log,
    )
    await this.components.membership.updateMetadata({ data: this.dataAddress })
  }

  /** Where to reach `peer`'s data plane, or null (it has none, or it could not be reached lately). */
  private dataTarget(peer: string): DataPlaneTarget | null {
    const down = this.dataDown.get(peer)
    if (down != null && down > Date.now()) return null
    if (down != null) this.dataDown.delete(peer)
    // Per chunk: a lookup, not a scan of the whole view.
    const member = this.components.membership.get(peer)
    const address = member == null ? null : dataAddressOf(member)
    return address == null ? null : { peer, ...address }
  }

  /**
   * One chunk from `peer`: over its data plane (hashed as it arrives), else over
   * libp2p, which also takes over for DATA_PLANE_RETRY_MS when the data plane
   * cannot be reached (a firewall, an agent of the previous release).
   */
  private async fetchFrom(
    peer: string,
    layout: BlobLayout,
    index: number,
    signal: AbortSignal,
  ): Promise<FetchedChunk> {
    // Fallbacks count the chunks of peers that announce a data plane we could not reach.
    const down = (this.dataDown.get(peer) ?? 0) > Date.now()
    const target = this.dataTarget(peer)
    if (target != null && this.dataClient != null) {
      const length = Math.min(layout.chunkSize, layout.size - index * layout.chunkSize)
      const into = this.buffers.take(layout.chunkSize)
      try {
        const chunk = await this.dataClient.fetchChunk(
          target,
          { blob: layout.sha256, chunkSize: layout.chunkSize, index, length, into },
          signal,
        )
        return { ...chunk, release: () => this.buffers.give(into) }
      } catch (err) {
        this.buffers.give(into)
        if (!(err instanceof DataPlaneUnreachableError) || signal.aborted) throw err
        this.dataDown.set(peer, Date.now() + DATA_PLANE_RETRY_MS)
        this.log.debug('data plane unreachable; fetching over libp2p for a while', {
          peer,
          error: messageOf(err),
        })
      }
    }
    if (target != null || down) this.fallbacks++
    return { data: await this.fetchChunk(peer, layout, index, signal) }
  }

  private view(entry: CatalogueEntry): DistributionView {
    const { manifest } = entry.signed
    let chunks = 0
    let total = 0
    let bytesDone = 0
    let bytesTotal = 0
    for (const artifact of manifest.artifacts) {
      total += artifact.chunks.length
      bytesTotal += artifact.size
      const map = this.store.chunkMap(artifact.sha256, artifact.chunkSize)
      chunks += map?.have.size ?? 0
      if (map != null)
        bytesDone += map.have.complete
          ? artifact.size
          : map.have.size * artifact.chunkSize -
            (map.have.has(artifact.chunks.length - 1)
              ? artifact.chunks.length * artifact.chunkSize - artifact.size
              : 0)
    }
    const complete = this.isComplete(entry.id)
    const holders = this.components.membership
      .members()
      .filter((m) => m.state === 'alive' && (m.self ? complete : holdingsOf(m).complete.has(entry.id)))
      .map((m) => m.id)
    return {
      id: entry.id,
      name: manifest.name,
      version: manifest.version,
      complete,
      artifacts: manifest.artifacts.length,
      bytes: manifest.artifacts.reduce((sum, a) => sum + a.size, 0),
      publisher: manifest.publisher,
      createdAt: manifest.createdAt,
      supersedes: manifest.supersedes,
      digest: entry.digest,
      holders,
      progress: { chunks, total },
      // A download paused by a full disk is shown with its reason until it resumes.
      transfer:
        complete || (!this.inProgress.has(entry.id) && this.paused == null)
          ? null
          : this.meter.view(entry.id, { bytesDone, bytesTotal }, this.paused),
    }
  }

  // --- learning versions from peers -------------------------------------------------

  private readonly onGossip = (evt: CustomEvent<Message>): void => {
    const message = evt.detail
    if (message.topic !== this.protocols.topic) return
    try {
      const { id, from } = decodeJson(announcement, message.data, 'announcement')
      peerIdFromString(from)
      this.learn(id, from)
    } catch (err) {
      this.log.debug('dropped announcement', { error: messageOf(err) })
    }
  }

  private readonly onMember = (member: Member): void => {
    this.holdersCache.clear()
    if (member.self || member.state !== 'alive') return
    const { complete, fetching } = holdingsOf(member)
    for (const id of [...complete.keys(), ...fetching]) this.learn(id, member.id)
    // New holdings elsewhere may be the source a download waits for.
    if (this.inProgress.size > 0) this.haveTracker.notify()
    // Paused by a full disk: the retry timer tries again; a member's news frees no space.
    else if (this.paused == null && this.hasIncomplete()) this.kickDownloads()
  }

  /** Fetches and accepts the manifest of `id` unless we know it (or retired it). */
  private learn(id: string, hint: string): void {
    if (
      !this.running ||
      this.catalogue.get(id) != null ||
      this.catalogue.isRetired(id) ||
      this.withdrawn.has(id) ||
      this.learning.has(id)
    )
      return
    const task = this.fetchManifest(id, hint)
      .catch((err) =>
        this.log.warn('could not accept a distribution from peers', { id, error: messageOf(err) }),
      )
      .finally(() => this.learning.delete(id))
    this.learning.set(id, task)
  }

  private async fetchManifest(id: string, hint: string): Promise<void> {
    const others = this.components.membership
      .members()
      .filter((m) => !m.self && m.state === 'alive' && m.id !== hint)
      .filter((m) => holdingsOf(m).complete.has(id) || holdingsOf(m).fetching.has(id))
      .map((m) => m.id)
    let lastError: unknown
    for (const peer of [hint, ...others]) {
      try {
        const raw = await exchange(
          this.network,
          peerIdFromString(peer),
          this.protocols.manifests,
          { timeoutMs: REQUEST_TIMEOUT_MS, maxBytes: MAX_MANIFEST_FRAME },
          async (ch) => {
            await ch.write(encodeJson({ id }))
            return decodeJson(z.object({ signed: z.unknown() }), await ch.read(), 'manifest answer').signed
          },
        )
        if (raw == null) continue
        // Peers are not trusted for content: the signature decides.
        const signed = verifySignedManifest(raw, this.components.trusted)
        if (distributionId(signed.manifest) !== id)
          throw new Error(`peer ${peer} answered with another version`)
        await this.accept(signed)
        return
      } catch (err) {
        lastError = err
        if (err instanceof ManifestSignatureError) break
      }
    }
    if (lastError != null) throw lastError
  }

  private async accept(signed: SignedManifest): Promise<void> {
    // Unpublished while its manifest was on its way.
    if (this.withdrawn.has(distributionId(signed.manifest))) return
    const { result, entry } = await this.catalogue.add(signed)
    if (result !== 'added') return
    this.log.info('distribution learned from peers', { id: entry.id })
    this.events.emit('distribution:available', { id: entry.id })
    await this.applyRetention(signed.manifest.name)
    if (this.catalogue.get(entry.id) != null) this.kickDownloads()
  }

  private announce(entry: CatalogueEntry): void {
    this.network.services.pubsub
      .publish(
        this.protocols.topic,
        encodeJson({ v: 1, id: entry.id, digest: entry.digest, from: this.components.membership.id }),
      )
      .catch((err) => this.log.debug('announcement failed', { error: messageOf(err) }))
  }

  // --- downloads ---------------------------------------------------------------------

  private hasIncomplete(): boolean {
    return this.catalogue.list().some((e) => !this.isComplete(e.id))
  }

  private kickDownloads(): void {
    if (!this.running) return
    if (this.downloading != null) {
      this.downloadAgain = true
      return
    }
    this.downloading = this.downloadAll()
      .catch((err) => this.log.debug('download round ended', { error: messageOf(err) }))
      .finally(() => {
        this.downloading = undefined
        if (this.downloadAgain) {
          this.downloadAgain = false
          this.kickDownloads()
        }
      })
  }

  /** Newest versions first: they are what a rollout will want. */
  private async downloadAll(): Promise<void> {
    this.diskFullThisRound = false
    const pending = this.catalogue
      .list()
      .filter((e) => !this.isComplete(e.id))
      .sort((a, b) => byPublication(b, a))
    let failed = false
    await Promise.all(
      pending.map(async (entry) => {
        const ok = await this.download(entry)
        failed ||= !ok
      }),
    )
    // The pause lasts until a round meets no full disk.
    if (!this.diskFullThisRound) this.paused = null
    if (failed && this.running) {
      clearTimeout(this.retryTimer)
      // A full disk does not free itself in 2 s: wait longer rather than spin.
      this.retryTimer = setTimeout(
        () => this.kickDownloads(),
        this.paused != null ? DISK_FULL_RETRY_MS : 2_000,
      )
      this.retryTimer.unref()
    }
  }

  private async download(entry: CatalogueEntry): Promise<boolean> {
    this.inProgress.add(entry.id)
    await this.publishHoldings()
    const blobs = new Map<string, BlobLayout>()
    for (const a of entry.signed.manifest.artifacts) if (!this.store.has(a.sha256)) blobs.set(a.sha256, a)
    const sources = this.sourcesFor(entry.id)
    const results = await Promise.allSettled(
      [...blobs.values()].map((layout) => this.fetchOnce(layout, sources)),
    )
    this.inProgress.delete(entry.id)
    for (const r of results) {
      if (r.status !== 'rejected' || !this.running) continue
      if (r.reason instanceof DiskFullError) {
        // Logged once per pause, not at every retry.
        if (this.paused == null) this.log.error(messageOf(r.reason))
        this.diskFullThisRound = true
        this.paused = { code: r.reason.code, message: messageOf(r.reason) }
      } else this.log.warn('artifact download incomplete', { id: entry.id, error: messageOf(r.reason) })
    }
    const complete = this.isComplete(entry.id)
    if (complete) {
      this.meter.forget(entry.id)
      this.log.info('distribution complete', { id: entry.id })
      this.events.emit('distribution:complete', { id: entry.id })
    }
    if (this.running) await this.publishHoldings()
    return complete
  }

  /** Fetches a blob, or joins the download of it another version started. */
  private fetchOnce(layout: BlobLayout, sources: ChunkSources): Promise<void> {
    const running = this.blobFetches.get(layout.sha256)
    if (running != null) return running
    const task = fetchBlob(layout, {
      store: this.store,
      sources,
      slots: this.slots,
      budget: this.budget,
      limiter: this.downloadLimiter,
      log: this.log,
      signal: this.abort.signal,
      idleTimeoutMs: this.init.idleTimeoutMs,
    }).finally(() => {
      this.blobFetches.delete(layout.sha256)
      this.haveTracker.release(layout.sha256)
    })
    this.blobFetches.set(layout.sha256, task)
    return task
  }

  /**
   * Where the chunks of version `id` come from: complete holders (every chunk) and
   * the members still fetching it (what their HAVE notices say). The complete
   * holders when the download starts are its seeds: asked only for what no one
   * else holds, so their uploads go to new pieces.
   */
  private sourcesFor(id: string): ChunkSources {
    const seeds = new Set(this.holdersOf(id).complete)
    // One read-only full map per blob for every complete holder (this runs at every plan).
    const full = new Map<string, ChunkMap>()
    return {
      holders: (layout) => {
        const { complete, fetching } = this.holdersOf(id, layout.sha256)
        const out = this.haveTracker.maps(layout, fetching)
        let whole = full.get(layout.sha256)
        if (whole == null) {
          whole = ChunkMap.full(layout.chunks.length)
          full.set(layout.sha256, whole)
        }
        for (const peer of complete) out.set(peer, whole)
        return out
      },
      isSeed: (peer) => seeds.has(peer),
      onChange: (listener) => this.haveTracker.onChange(listener),
      fetch: (peer, layout, index, signal) =>
        this.fetchFrom(peer, layout, index, signal).catch((err: unknown) => {
          if (
            !signal.aborted &&
            !(err instanceof DataPlaneBusyError) &&
            !(err instanceof ChunkElsewhereError)
          )
            this.counters.chunkRequestsFailed++
          throw err
        }),
      penalise: (peer, reason) => {
        this.counters.badChunks++
        this.penalties.set(peer, { until: Date.now() + PENALTY_MS, reason })
        this.holdersCache.clear()
        this.log.warn(
          `peer ${peer} sent a corrupt chunk (${reason}); avoiding it and fetching from another peer`,
        )
      },
      received: (peer, bytes) => {
        this.counters.chunksFetched++
        this.counters.bytesFetched += bytes
        const perPeer = this.sourceBytes.get(id) ?? new Map<string, number>()
        perPeer.set(peer, (perPeer.get(peer) ?? 0) + bytes)
        this.sourceBytes.set(id, perPeer)
        this.meter.record(id, peer, bytes)
      },
    }
  }

  /**
   * Alive, unpenalised members that hold version `id` whole, and those fetching a
   * version that contains `blob` (every version with the blob, when given).
   */
  private holdersOf(id: string, blob?: string): { complete: string[]; fetching: string[] } {
    // Asked at every turn of every fetch loop: kept until membership changes or HOLDERS_TTL_MS.
    const key = `${id}/${blob ?? ''}`
    const cached = this.holdersCache.get(key)
    if (cached != null && Date.now() - cached.at < HOLDERS_TTL_MS) return cached.holders
    const holders = this.findHolders(id, blob)
    this.holdersCache.set(key, { at: Date.now(), holders })
    return holders
  }

  private findHolders(id: string, blob?: string): { complete: string[]; fetching: string[] } {
    const containing =
      blob == null
        ? new Set([id])
        : new Set(
            this.catalogue
              .list()
              .filter((e) => e.signed.manifest.artifacts.some((a) => a.sha256 === blob))
              .map((e) => e.id),
          )
    const now = Date.now()
    const complete: string[] = []
    const fetching: string[] = []
    for (const member of this.components.membership.members()) {
      if (member.self || member.state !== 'alive' || (this.penalties.get(member.id)?.until ?? 0) > now)
        continue
      const held = holdingsOf(member)
      if ([...held.complete.keys()].some((v) => containing.has(v))) complete.push(member.id)
      else if ([...held.fetching].some((v) => containing.has(v))) fetching.push(member.id)
    }
    return { complete, fetching }
  }

  private async askHave(peer: string, layout: BlobLayout): Promise<ChunkMap | null> {
    try {
      const answer = await exchange(
        this.network,
        peerIdFromString(peer),
        this.protocols.transfer,
        { timeoutMs: REQUEST_TIMEOUT_MS, maxBytes: MAX_TRANSFER_FRAME },
        async (ch) => {
          await ch.write(encodeJson({ t: 'have', blob: layout.sha256, chunkSize: layout.chunkSize }))
          return decodeJson(transferAnswer, await ch.read(), 'have answer')
        },
      )
      if (answer.t !== 'have' || answer.size !== layout.size) return null
      return answer.bitmap == null
        ? ChunkMap.full(layout.chunks.length)
        : ChunkMap.fromBase64(layout.chunks.length, answer.bitmap)
    } catch {
      return null
    }
  }

  /**
   * One chunk from one peer: 1. dial and negotiate the transfer protocol, 2. write
   * `get`, 3. read the header, 4. read exactly `length` bytes. The caller verifies.
   */
  private fetchChunk(
    peer: string,
    layout: BlobLayout,
    index: number,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    return exchange(
      this.network,
      peerIdFromString(peer),
      this.protocols.transfer,
      { timeoutMs: CHUNK_TIMEOUT_MS, maxBytes: MAX_TRANSFER_FRAME, signal },
      async (ch) => {
        await ch.write(encodeJson({ t: 'get', blob: layout.sha256, chunkSize: layout.chunkSize, index }))
        const header = decodeJson(transferAnswer, await ch.read(), 'chunk header')
        if (header.t !== 'chunk' || header.index !== index)
          throw new Error(`peer ${peer} does not have chunk ${index}`)
        const data = await ch.read()
        if (data.byteLength !== header.length)
          throw new Error(`peer ${peer} sent ${data.byteLength} of ${header.length} bytes`)
        return data
      },
    )
  }

  // --- serving -------------------------------------------------------------------------

  private async answerTransfer(ch: Channel): Promise<void> {
    const request = decodeJson(transferRequest, await ch.read(), 'transfer request')
    const map = this.store.chunkMap(request.blob, request.chunkSize)
    if (request.t === 'have') {
      if (map == null) return ch.write(encodeJson({ t: 'none' }))
      return ch.write(
        encodeJson({ t: 'have', size: map.size, bitmap: map.have.complete ? null : map.have.toBase64() }),
      )
    }
    // A blob found truncated on disk was dropped by the store (to be fetched again): we hold none of it.
    const data = await this.store
      .readChunk(request.blob, request.index, request.chunkSize)
      .catch((err: unknown) => {
        if (err instanceof BlobTruncatedError) return null
        throw err
      })
    if (data == null) return ch.write(encodeJson({ t: 'none' }))
    await this.uploadLimiter.take(data.byteLength)
    await ch.write(encodeJson({ t: 'chunk', index: request.index, length: data.byteLength }))
    await ch.write(data)
    this.counters.chunksServed++
    this.counters.bytesServed += data.byteLength
  }

  private async answerManifest(ch: Channel): Promise<void> {
    const { id } = decodeJson(manifestRequest, await ch.read(), 'manifest request')
    await ch.write(encodeJson({ signed: this.catalogue.get(id)?.signed ?? null }))
  }

  // --- holdings and retention --------------------------------------------------------

  /**
   * Lists in our member metadata what we hold (`dists`) and what we are fetching
   * (`fetching`), newest first as far as their budgets go.
   */
  private async publishHoldings(): Promise<void> {
    const complete: Array<[string, string]> = []
    const fetching: string[] = []
    for (const entry of this.catalogue.list().sort(byPublication).reverse()) {
      if (this.isComplete(entry.id)) complete.push([entry.id, entry.digest.slice(0, 16)])
      else if (this.inProgress.has(entry.id)) fetching.push(entry.id)
    }
    const { announced, left } = fitHoldings(complete, fetching)
    if (left > 0 && left !== this.unannounced)
      this.log.warn(
        `${left} versions held or being fetched do not fit this node's metadata; peers find them elsewhere`,
      )
    this.unannounced = left
    await this.components.membership.updateMetadata(announced)
  }

  /** Keeps the newest `retention` versions of `name` and every protected one; drops the rest and their blobs. */
  private async applyRetention(name: string): Promise<void> {
    const keep = new Set(
      this.catalogue
        .history(name)
        .slice(-this.init.retention)
        .map((e) => e.id),
    )
    for (const id of this.init.protectedVersions?.() ?? []) keep.add(id)
    const drop = this.catalogue.history(name).filter((e) => !keep.has(e.id))
    if (drop.length === 0) return
    for (const entry of drop) {
      await this.catalogue.retire(entry.id)
      this.log.info('retention dropped a version', { id: entry.id, keep: this.init.retention })
      this.events.emit('distribution:removed', { id: entry.id })
    }
    await this.dropUnreferencedBlobs()
  }

  /**
   * Applies the versions the cluster unpublished (its state's list, whole, each
   * time it changes): each is dropped from the catalogue and its blobs no other
   * version references are deleted, unless this node still uses it (the manager
   * refuses to unpublish a version in use, so that is a node behind: it is
   * dropped at a later change). Peers still listing it are not asked for it again,
   * and publishing it again is refused (ERR_VERSION_UNPUBLISHED).
   */
  withdraw(ids: Iterable<string>): Promise<void> {
    const wanted = new Set(ids)
    this.withdrawn = wanted
    const run = this.withdrawing.then(async () => {
      const inUse = this.init.protectedVersions?.() ?? new Set<string>()
      let dropped = false
      for (const id of wanted) {
        if (this.catalogue.get(id) == null) continue
        if (inUse.has(id)) {
          this.log.warn('an unpublished version is still in use on this node; kept for now', { id })
          continue
        }
        await this.catalogue.retire(id)
        dropped = true
        this.log.info('unpublished version dropped', { id })
        this.events.emit('distribution:removed', { id })
      }
      if (!dropped) return
      await this.dropUnreferencedBlobs()
      if (this.running) await this.publishHoldings()
    })
    this.withdrawing = run.catch(() => {})
    return run
  }

  /** Deletes the blobs no version in the catalogue references. */
  private async dropUnreferencedBlobs(): Promise<void> {
    const referenced = new Set(
      this.catalogue.list().flatMap((e) => e.signed.manifest.artifacts.map((a) => a.sha256)),
    )
    for (const { sha256 } of this.store.list()) if (!referenced.has(sha256)) await this.store.remove(sha256)
  }
}
