import { createHash } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { DEFAULT_WEIGHT } from '../runtime/index.js'
import type { Logger } from '../shared/index.js'
import { ConfigError, messageOf, TrafficRecorder, TypedEvents } from '../shared/index.js'
import type { Backend } from './backends.js'
import { HaproxyError } from './errors.js'
import {
  addressOf,
  adminStateOf,
  HAPROXY_NAME,
  HaproxyRuntime,
  type ServerCounters,
  type ServerStateRow,
  type ServerStatRow,
} from './haproxy-runtime.js'

/** Re-sync period: how soon a restarted HAProxy gets its servers back, in ms. */
export const DEFAULT_RESYNC_MS = 2_000
/** How long a removed server may keep its sessions before they are shut down and it is deleted, in ms. */
export const DEFAULT_REMOVE_TIMEOUT_MS = 10_000
/** Deadline for one runtime-API command (connect, write, read to close), in ms. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2_000
/** Servers whose names start with this belong to the driver; all others are left alone. */
export const SERVER_PREFIX = 'shoal-'

export interface HaproxyDriverInit {
  /** Path of HAProxy's `stats socket`, which must be `level admin`. */
  socket: string
  /** The HAProxy backend whose `shoal-*` servers the driver manages. */
  backend: string
  /** Re-sync period in ms; default DEFAULT_RESYNC_MS (2 s). */
  resyncMs?: number
  /** How long a removed server may keep sessions before it is deleted anyway, in ms; default 10 s. */
  removeTimeoutMs?: number
  /** Deadline for one runtime-API command in ms; default 2 s. */
  commandTimeoutMs?: number
}

export interface HaproxyServerStatus {
  name: string
  /** The Backend.key it serves; '' for a `shoal-*` server this driver has not been given. */
  key: string
  /** `ip:port` as HAProxy holds it. */
  addr: string
  /** `ready`, `drain`, `maint` (being removed) or `down`. */
  state: string
  weight: number
  /** Sessions currently on the server. */
  sessions?: number
}

export interface HaproxyStatus {
  /** Whether the last runtime-API exchange succeeded. */
  connected: boolean
  /** The driver's servers as HAProxy reported them after the last pass. */
  servers: HaproxyServerStatus[]
  /** Passes that completed without an error. */
  syncs: number
  /** Passes that failed (HAProxy unreachable or a command refused). */
  errors: number
  lastError: string | null
}

export interface HaproxyEvents {
  /** The runtime API started (`true`) or stopped (`false`) answering. */
  'haproxy:connection': { connected: boolean; socket: string }
  /** A pass changed HAProxy; the lists hold server names. */
  'haproxy:changed': { added: string[]; changed: string[]; deleted: string[] }
}

/** A Backend as the driver wants it in HAProxy. */
interface WantedServer {
  name: string
  key: string
  ip: string
  port: number
  weight: number
  state: 'ready' | 'drain'
}

/** The driver's servers as one read of HAProxy saw them. */
interface ServerSnapshot {
  rows: Map<string, ServerStateRow>
  /** Server name → sessions currently on it (`scur`). */
  sessions: Map<string, number>
  /** The `shoal-*` servers' `show stat` lines. */
  stats: ServerStatRow[]
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * HAProxy server name for a Backend.key (`<node id>/<component>`):
 * `shoal-<last 10 chars of the node id>-<component, ≤ 20 chars>-<6 hex of sha256(key)>`.
 * The readable part is cut down to HAProxy's name characters; the hash keeps
 * names unique whatever the cut removed, and depends on the key alone, so every
 * agent and every restart derives the same name.
 */
export function serverName(key: string): string {
  const slash = key.indexOf('/')
  const node = slash < 0 ? key : key.slice(0, slash)
  const component = slash < 0 ? '' : key.slice(slash + 1)
  const clean = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_')
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 6)
  return [`${SERVER_PREFIX}${clean(node.slice(-10))}`, clean(component.slice(0, 20)), hash]
    .filter((part) => part !== '')
    .join('-')
}

/** Requests and errors of one server: in total since its counters started, or between two readings. */
export interface ServerTraffic {
  /** Requests that ended on this server: answered, or failed once HAProxy's retries ran out. */
  requests: number
  /** Those the client saw fail: 5xx, no connection, no, a late or a cut-short response. */
  errors: number
}

/** The counters that only grow; one lower than at the last reading means they restarted from zero. */
const GROWING: ReadonlyArray<keyof ServerCounters> = [
  'stot',
  'wretr',
  'wredis',
  'ok',
  'hrsp5xx',
  'econ',
  'eresp',
  'srvAbrt',
  'otherEnds',
]

/**
 * What a server's counters say it has done in total (`scur`: its sessions now).
 * No HAProxy counter is one per request and outcome, so each figure is the
 * smaller of two counts that are too high in different cases.
 *
 * requests, the smaller of:
 * - `stot` − `wretr` − `wredis` − `scur`: `stot` counts every attempt; one that
 *   failed and was retried (here or on another server) is in `wretr` or
 *   `wredis`, one still running in `scur`. Too high while a request waits to be
 *   retried (its failed attempt has left `scur`, its retry is not counted yet).
 * - every way a request ends: a response head (`hrsp_*`), `econ`, `eresp`,
 *   `cli_abrt`, `eint`. Too high for a 100 Continue before the final head, an
 *   upload counted twice in `eresp`, a response cut short (head and `eresp`).
 *
 * errors, the smaller of (and never more than requests):
 * - requests that did not end with a 2xx–4xx head, plus `srv_abrt` (responses
 *   cut short after a good head). Too high for a `101` upgrade, and for an
 *   upload the server aborted before any head (counted twice).
 * - `hrsp_5xx` + `econ` + `eresp`. Too high for an aborted upload, which
 *   HAProxy sometimes counts twice in `eresp`.
 * Only an upload aborted in the way both miscount stays one error too high.
 */
export function trafficOf(c: ServerCounters, scur: number): ServerTraffic {
  const attempts = c.stot - c.wretr - c.wredis - scur
  const ends = c.ok + c.hrsp5xx + c.econ + c.eresp + c.otherEnds
  const requests = Math.max(0, Math.min(attempts, ends))
  const errors = Math.max(0, Math.min(requests - c.ok + c.srvAbrt, c.hrsp5xx + c.econ + c.eresp, requests))
  return { requests, errors }
}

interface MeterState {
  /** The counters at the last reading. */
  counters: ServerCounters
  /** trafficOf() as far as it has been recorded: each only grows, so nothing is recorded twice. */
  recorded: ServerTraffic
}

const ZERO_COUNTERS: ServerCounters = {
  stot: 0,
  wretr: 0,
  wredis: 0,
  ok: 0,
  hrsp5xx: 0,
  econ: 0,
  eresp: 0,
  srvAbrt: 0,
  otherEnds: 0,
}

/**
 * Turns successive readings of HAProxy's per-server counters into per-version
 * traffic: each reading records, for every server read the time before too,
 * what it did in between, under the version that server served meanwhile.
 * Pure bookkeeping around a TrafficRecorder; the driver feeds it once per pass.
 *
 * A request is recorded when it ends. The totals of trafficOf() can dip for a
 * moment (a response head counted before its request ends), so the meter
 * records only what goes beyond the highest total already recorded. Errors go
 * with requests (a TrafficRecorder second has no errors without requests): an
 * error counted in a reading with no new request waits for the next one.
 *
 * A counter lower than at the last reading means they restarted from zero
 * (HAProxy restarted, the server was deleted and added again, `clear counters
 * all`): what they hold now is the traffic since; what came between the last
 * reading and the reset is lost, never counted twice.
 */
export class HaproxyTrafficMeter {
  /** Server name → its state at the last reading. */
  private readonly last = new Map<string, MeterState>()

  constructor(readonly recorder: TrafficRecorder) {}

  /** A server just added: HAProxy starts its counters at zero, so its first reading counts in full. */
  added(name: string): void {
    this.last.set(name, { counters: ZERO_COUNTERS, recorded: { requests: 0, errors: 0 } })
  }

  /**
   * One reading of the servers' counters. `versionOf(name)` is the version the
   * server served since the previous reading (undefined: not ours, nothing
   * recorded). A server read for the first time only sets its baseline (its
   * counters hold traffic from before, at unknown times); one missing from the
   * reading is forgotten.
   */
  read(rows: readonly ServerStatRow[], versionOf: (name: string) => string | undefined): void {
    const seen = new Set<string>()
    for (const row of rows) {
      seen.add(row.name)
      const total = trafficOf(row.counters, row.scur)
      const before = this.last.get(row.name)
      if (before == null) {
        this.last.set(row.name, { counters: row.counters, recorded: total })
        continue
      }
      const reset = GROWING.some((field) => row.counters[field] < before.counters[field])
      const recorded = reset ? { requests: 0, errors: 0 } : before.recorded
      const requests = Math.max(0, total.requests - recorded.requests)
      const errors = Math.min(requests, Math.max(0, total.errors - recorded.errors))
      this.last.set(row.name, {
        counters: row.counters,
        recorded: { requests: recorded.requests + requests, errors: recorded.errors + errors },
      })
      const version = versionOf(row.name)
      // HAProxy keeps an average, not each request: the interval's requests go in at it.
      if (version != null) this.recorder.recordMany(version, requests, errors, row.latencyMs)
    }
    for (const name of this.last.keys()) if (!seen.has(name)) this.last.delete(name)
  }
}

/**
 * Keeps one HAProxy backend's `shoal-*` servers equal to Shoal's backend list
 * through the runtime API, without reloads.
 *
 * Each pass reads what HAProxy has (`show servers state`, `show stat`) and
 * converges from there: it adds missing servers, corrects address, weight and
 * state, and retires servers no longer wanted (maintenance first, delete once
 * their sessions are gone or after removeTimeoutMs). Because it never trusts its
 * own memory of HAProxy, the periodic pass also repairs a restarted HAProxy.
 * Passes never overlap: a sync() during a pass queues one more pass, which uses
 * the latest list.
 *
 * Each pass also reads the servers' counters and records into `traffic` what
 * each served since the previous pass, by the version of its backend
 * (HaproxyTrafficMeter): the per-version figures from HAProxy's own counters.
 */
export class HaproxyDriver {
  readonly events: TypedEvents<HaproxyEvents>
  /** Per-version requests, errors and latency, from HAProxy's counters, updated once per pass. */
  readonly traffic: TrafficRecorder
  private readonly meter: HaproxyTrafficMeter
  private readonly log: Logger
  private readonly runtime: HaproxyRuntime
  private readonly backend: string
  private readonly resyncMs: number
  private readonly removeTimeoutMs: number
  private desired: Backend[] = []
  /** Name → Backend.key, for status(). */
  private readonly keys = new Map<string, string>()
  /** Name → the version its backend had at the last pass: what the server served since. */
  private readonly serving = new Map<string, string>()
  /** Name → when (performance.now()) it was put in maintenance for removal. */
  private readonly removing = new Map<string, number>()
  private started = false
  private timer: NodeJS.Timeout | null = null
  private inFlight: Promise<void> | null = null
  private queued: Deferred | null = null
  private connected = false
  private servers: HaproxyServerStatus[] = []
  private syncs = 0
  private errors = 0
  private lastError: string | null = null

  constructor(
    private readonly init: HaproxyDriverInit,
    logger: Logger,
    traffic: TrafficRecorder = new TrafficRecorder(),
  ) {
    this.log = logger.child('haproxy')
    this.events = new TypedEvents(this.log)
    this.traffic = traffic
    this.meter = new HaproxyTrafficMeter(traffic)
    this.backend = init.backend
    this.resyncMs = init.resyncMs ?? DEFAULT_RESYNC_MS
    this.removeTimeoutMs = init.removeTimeoutMs ?? DEFAULT_REMOVE_TIMEOUT_MS
    this.runtime = new HaproxyRuntime(init.socket, init.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS)
  }

  /**
   * Checks the socket (reachable, `level admin`) and the backend, runs the first
   * pass and starts the periodic re-sync. Throws ERR_CONFIG for bad options and
   * ERR_HAPROXY when HAProxy is unusable. Safe to call twice.
   */
  async start(): Promise<void> {
    if (this.started) return
    this.validate()
    this.started = true
    try {
      const level = await this.runtime.cliLevel()
      if (level !== 'admin') {
        throw new HaproxyError(
          `HAProxy's stats socket ${this.init.socket} has level ${level}; the driver needs \`level admin\` to add and delete servers`,
        )
      }
      await this.runtime.serversState(this.backend)
    } catch (err) {
      this.started = false
      this.noteFailure(err)
      throw err
    }
    try {
      await this.schedule() // the pass records its own failure
    } catch (err) {
      this.started = false
      throw err
    }
    this.arm()
    this.log.info('managing HAProxy backend', { socket: this.init.socket, backend: this.backend })
  }

  /** Stops the re-sync and waits for a running pass; HAProxy's servers stay as they are. Safe to call twice. */
  async stop(): Promise<void> {
    this.started = false
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = null
    await this.inFlight?.catch(() => undefined)
  }

  /**
   * Makes `backends` the desired state and converges HAProxy to it. Resolves when
   * a pass that saw this list has finished; rejects with ERR_HAPROXY when that
   * pass failed (the periodic re-sync keeps trying). Before start() or after
   * stop() it only records the list.
   */
  sync(backends: Backend[]): Promise<void> {
    this.desired = backends.map((b) => ({ ...b }))
    return this.schedule()
  }

  /**
   * Re-reads the servers and their sessions into status() without changing
   * anything in HAProxy: cheap enough to poll while waiting for a drain.
   * Rejects with ERR_HAPROXY when HAProxy cannot be read.
   */
  async refresh(): Promise<void> {
    try {
      this.publish(await this.readServers())
    } catch (err) {
      if (err instanceof HaproxyError && err.unreachable) this.noteConnected(false)
      throw err
    }
  }

  status(): HaproxyStatus {
    return {
      connected: this.connected,
      servers: this.servers.map((s) => ({ ...s })),
      syncs: this.syncs,
      errors: this.errors,
      lastError: this.lastError,
    }
  }

  private validate(): void {
    const { socket, backend } = this.init
    if (typeof socket !== 'string' || socket === '')
      throw new ConfigError('haproxy.socket must be a socket path')
    if (typeof backend !== 'string' || !HAPROXY_NAME.test(backend)) {
      throw new ConfigError(`haproxy.backend "${backend}" is not a valid HAProxy backend name`)
    }
    const positive = (name: string, value: number, min: number): void => {
      if (!Number.isFinite(value) || value < min) throw new ConfigError(`haproxy.${name} must be ≥ ${min} ms`)
    }
    positive('resyncMs', this.resyncMs, 10)
    positive('removeTimeoutMs', this.removeTimeoutMs, 0)
    positive('commandTimeoutMs', this.runtime.timeoutMs, 10)
  }

  private arm(): void {
    if (!this.started || this.timer != null) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.schedule()
        .catch(() => undefined) // recorded in status() and logged by the pass
        .finally(() => this.arm())
    }, this.resyncMs)
    this.timer.unref()
  }

  /** Runs a pass now, or queues one behind the running pass (all callers queued meanwhile share it). */
  private schedule(): Promise<void> {
    if (!this.started) return Promise.resolve()
    if (this.inFlight != null) {
      if (this.queued == null) {
        let resolve!: () => void
        let reject!: (err: unknown) => void
        const promise = new Promise<void>((res, rej) => {
          resolve = res
          reject = rej
        })
        this.queued = { promise, resolve, reject }
      }
      return this.queued.promise
    }
    const run = this.pass()
    this.inFlight = run
    const next = (): void => {
      this.inFlight = null
      const queued = this.queued
      this.queued = null
      if (queued != null) this.schedule().then(queued.resolve, queued.reject)
    }
    run.then(next, next)
    return run
  }

  private async pass(): Promise<void> {
    try {
      const problems = await this.converge()
      if (problems.length > 0) throw new HaproxyError(problems.join('; '))
      this.syncs++
    } catch (err) {
      this.noteFailure(err)
      throw err
    }
  }

  /** One pass. Returns the problems that did not stop it; throws when HAProxy cannot be reached. */
  private async converge(): Promise<string[]> {
    const problems: string[] = []
    const { wanted, keep } = await this.resolveDesired(problems)
    const b = this.backend
    const rt = this.runtime

    let current = await this.readServers()
    // The traffic since the last pass, under the versions as that pass left them; then this pass's.
    this.meter.read(current.stats, (name) => this.serving.get(name))
    for (const backend of this.desired) this.serving.set(serverName(backend.key), backend.version)
    const changes = { added: [] as string[], changed: [] as string[], deleted: [] as string[] }
    const attempt = async (action: () => Promise<void>): Promise<void> => {
      try {
        await action()
      } catch (err) {
        if (err instanceof HaproxyError && err.unreachable) throw err
        problems.push(messageOf(err))
      }
    }

    // Wanted servers first, so capacity is added before any is taken away.
    for (const want of wanted.values()) {
      this.removing.delete(want.name)
      const row = current.rows.get(want.name)
      await attempt(async () => {
        if (row == null) {
          await rt.addServer(b, want.name, want.ip, want.port, want.weight)
          this.meter.added(want.name)
          await rt.setState(b, want.name, want.state)
          changes.added.push(want.name)
          this.log.info('added server', {
            server: want.name,
            key: want.key,
            addr: addressOf(want.ip, want.port),
          })
          return
        }
        const edits: string[] = []
        if (normaliseIp(row.addr) !== want.ip || row.port !== want.port) {
          await rt.setAddr(b, want.name, want.ip, want.port)
          edits.push(`addr ${addressOf(want.ip, want.port)}`)
        }
        if (row.weight !== want.weight) {
          await rt.setWeight(b, want.name, want.weight)
          edits.push(`weight ${want.weight}`)
        }
        if (adminStateOf(row) !== want.state) {
          await rt.setState(b, want.name, want.state)
          edits.push(`state ${want.state}`)
        }
        if (edits.length > 0) {
          changes.changed.push(want.name)
          this.log.info('updated server', { server: want.name, key: want.key, set: edits.join(', ') })
        }
      })
    }

    // Servers no longer wanted: maintenance stops new traffic, delete once idle or overdue.
    const now = performance.now()
    for (const row of current.rows.values()) {
      if (wanted.has(row.name) || keep.has(row.name)) continue
      const since = this.removing.get(row.name) ?? now
      this.removing.set(row.name, since)
      await attempt(async () => {
        if (adminStateOf(row) !== 'maint') {
          await rt.setState(b, row.name, 'maint')
          changes.changed.push(row.name)
          this.log.info('retiring server: no new requests, waiting for its sessions', { server: row.name })
        }
        const sessions = current.sessions.get(row.name) ?? 0
        const overdue = now - since >= this.removeTimeoutMs
        if (sessions > 0 && !overdue) return
        if (sessions > 0) {
          this.log.warn('retired server still has sessions after the timeout; shutting them down', {
            server: row.name,
            sessions,
            timeoutMs: this.removeTimeoutMs,
          })
          await rt.shutdownSessions(b, row.name)
        }
        // Refused while sessions linger (a request may slip in before maintenance); retried next pass.
        if (await rt.delServer(b, row.name)) {
          this.removing.delete(row.name)
          this.keys.delete(row.name)
          changes.deleted.push(row.name)
          this.log.info('deleted server', { server: row.name })
        }
      })
    }
    // Forget removals HAProxy no longer knows about (it restarted, or someone deleted them).
    for (const name of this.removing.keys()) if (!current.rows.has(name)) this.removing.delete(name)
    for (const name of this.keys.keys()) {
      if (!wanted.has(name) && !keep.has(name) && !current.rows.has(name)) this.keys.delete(name)
    }
    // A retiring server keeps the version it served until it is gone.
    for (const name of this.serving.keys()) {
      if (!wanted.has(name) && !keep.has(name) && !current.rows.has(name)) this.serving.delete(name)
    }

    const changed = changes.added.length + changes.changed.length + changes.deleted.length > 0
    if (changed) current = await this.readServers()
    this.publish(current)
    if (changed) this.events.emit('haproxy:changed', changes)
    return problems
  }

  /** Makes `current` what status() reports. */
  private publish(current: ServerSnapshot): void {
    this.servers = [...current.rows.values()].map((row) => ({
      name: row.name,
      key: this.keys.get(row.name) ?? '',
      addr: row.addr === '-' ? '-' : addressOf(row.addr, row.port),
      state: adminStateOf(row) === 'ready' && row.opState === 0 ? 'down' : adminStateOf(row),
      weight: row.weight,
      sessions: current.sessions.get(row.name) ?? 0,
    }))
  }

  /** The driver's servers in HAProxy and their current sessions. */
  private async readServers(): Promise<ServerSnapshot> {
    const [state, stats] = await Promise.all([
      this.runtime.serversState(this.backend),
      this.runtime.serverStats(this.backend),
    ])
    this.noteConnected(true)
    const rows = new Map(state.filter((r) => r.name.startsWith(SERVER_PREFIX)).map((r) => [r.name, r]))
    const sessions = new Map(stats.map((s) => [s.name, s.scur]))
    return { rows, sessions, stats: stats.filter((s) => s.name.startsWith(SERVER_PREFIX)) }
  }

  /**
   * The desired list as servers, by name. A backend whose host does not resolve
   * is skipped but its server is kept as it is (`keep`), so a DNS hiccup does
   * not take it out of rotation.
   */
  private async resolveDesired(
    problems: string[],
  ): Promise<{ wanted: Map<string, WantedServer>; keep: Set<string> }> {
    const wanted = new Map<string, WantedServer>()
    const keep = new Set<string>()
    for (const backend of this.desired) {
      const name = serverName(backend.key)
      this.keys.set(name, backend.key)
      let ip: string
      try {
        ip = await resolveHost(backend.host)
      } catch (err) {
        keep.add(name)
        problems.push(`cannot resolve ${backend.host} for ${backend.key}: ${messageOf(err)}`)
        continue
      }
      if (!Number.isInteger(backend.port) || backend.port < 1 || backend.port > 65_535) {
        keep.add(name)
        problems.push(`backend ${backend.key} has an invalid port ${backend.port}`)
        continue
      }
      const weight = Number.isFinite(backend.weight)
        ? Math.min(256, Math.max(0, Math.round(backend.weight)))
        : DEFAULT_WEIGHT
      wanted.set(name, {
        name,
        key: backend.key,
        ip,
        port: backend.port,
        weight,
        state: backend.state === 'draining' ? 'drain' : 'ready',
      })
    }
    return { wanted, keep }
  }

  private noteConnected(connected: boolean): void {
    if (connected === this.connected) return
    this.connected = connected
    if (connected) this.log.info('HAProxy runtime API reachable', { socket: this.init.socket })
    else
      this.log.warn('HAProxy runtime API unreachable; re-syncing once it answers', {
        socket: this.init.socket,
      })
    this.events.emit('haproxy:connection', { connected, socket: this.init.socket })
  }

  private noteFailure(err: unknown): void {
    const message = messageOf(err)
    this.errors++
    if (err instanceof HaproxyError && err.unreachable) this.noteConnected(false)
    // A failure that repeats every pass is logged once, not every resyncMs.
    if (message !== this.lastError) this.log.warn('HAProxy sync failed', { error: message })
    else this.log.debug('HAProxy sync failed again', { error: message })
    this.lastError = message
  }
}

/** An IP for `host`, resolving names with the system resolver (HAProxy 2.6 does not resolve dynamic servers). */
async function resolveHost(host: string): Promise<string> {
  return normaliseIp(isIP(host) !== 0 ? host : (await lookup(host)).address)
}

/** One spelling per IPv6 address, so HAProxy's and ours compare equal. */
function normaliseIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip
}
