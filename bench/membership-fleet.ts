/**
 * The in-process agents of the membership benchmark, spread over event loops:
 * `workers` = 1 keeps them all on the main thread (one loop, one core, as before);
 * `workers` >= 2 puts agent i on worker thread i mod W, each an event loop on its
 * own core, and the main thread only coordinates and measures, by messages.
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import type { TimerPreset } from '../src/shared/presets.js'
import {
  AgentCell,
  type CellAgent,
  type CellApi,
  type CellKind,
  type CellMessage,
  type CellMethod,
  type CellRequest,
  type Delay,
  mergeStats,
  type RawAccusation,
  type Stats,
  type TrafficSample,
  type ViewQuery,
  type ViewSample,
} from './membership-cell.js'

export type FleetMode = 'single-loop' | 'worker-threads'
type Result<M extends CellMethod> = Awaited<ReturnType<CellApi[M]>>
type Accused = (accusation: RawAccusation) => void

/** Where a cell runs: this thread, or a worker thread. */
interface Host {
  call<M extends CellMethod>(method: M, ...args: Parameters<CellApi[M]>): Promise<Result<M>>
  /** Event-loop utilisation of the cell's loop (since `previous` when given). */
  utilization(previous?: EventLoopUtilization): EventLoopUtilization
  close(): Promise<void>
}

class LocalHost implements Host {
  private readonly cell: AgentCell

  constructor(accused: Accused, kind: CellKind, preset: TimerPreset) {
    this.cell = new AgentCell(accused, kind, preset)
  }

  async call<M extends CellMethod>(method: M, ...args: Parameters<CellApi[M]>): Promise<Result<M>> {
    return (await Reflect.apply(this.cell[method], this.cell, args)) as Result<M>
  }

  utilization(previous?: EventLoopUtilization): EventLoopUtilization {
    return performance.eventLoopUtilization(previous)
  }

  close(): Promise<void> {
    return this.cell.stopAll()
  }
}

class WorkerHost implements Host {
  private readonly worker: Worker
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (err: Error) => void }
  >()
  private nextId = 0
  private failure: Error | undefined

  constructor(accused: Accused, kind: CellKind, preset: TimerPreset) {
    this.worker = new Worker(new URL('./membership-worker.js', import.meta.url), {
      workerData: { kind, preset },
    })
    this.worker.on('message', (message: CellMessage) => {
      if (message.kind === 'accusation') {
        accused(message.accusation)
        return
      }
      const call = this.pending.get(message.id)
      this.pending.delete(message.id)
      if (message.error != null) call?.reject(new Error(message.error))
      else call?.resolve(message.result)
    })
    this.worker.on('error', (err) => this.fail(err))
    this.worker.on('exit', (code) => this.fail(new Error(`membership worker exited (code ${code})`)))
  }

  call<M extends CellMethod>(method: M, ...args: Parameters<CellApi[M]>): Promise<Result<M>> {
    if (this.failure != null) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise<Result<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      const request: CellRequest = { id, method, args }
      this.worker.postMessage(request)
    })
  }

  utilization(previous?: EventLoopUtilization): EventLoopUtilization {
    return this.worker.performance.eventLoopUtilization(previous)
  }

  async close(): Promise<void> {
    if (this.failure == null) await this.call('stopAll').catch(() => {})
    await this.worker.terminate()
  }

  private fail(err: Error): void {
    this.failure ??= err
    for (const call of this.pending.values()) call.reject(err)
    this.pending.clear()
  }
}

export class Fleet {
  readonly mode: FleetMode
  private readonly hosts: Host[]
  private readonly listeners: Accused[] = []

  constructor(workers: number, kind: CellKind = 'agent', preset: TimerPreset = 'lan') {
    const accused: Accused = (accusation) => {
      for (const listener of this.listeners) listener(accusation)
    }
    this.mode = workers <= 1 ? 'single-loop' : 'worker-threads'
    this.hosts =
      workers <= 1
        ? [new LocalHost(accused, kind, preset)]
        : Array.from({ length: workers }, () => new WorkerHost(accused, kind, preset))
  }

  /** Event loops the agents run on. */
  get loops(): number {
    return this.hosts.length
  }

  /** Every suspect/dead event any agent emits, as it happens. */
  onAccusation(listener: Accused): void {
    this.listeners.push(listener)
  }

  start(index: number, cluster: string, bootstrap: string[]): Promise<CellAgent> {
    return this.host(index).call('start', index, cluster, bootstrap)
  }

  /** Crashes agent `index` (no leave); it drops out of views(), traffic() and stats() at once. */
  stop(index: number): Promise<void> {
    return this.host(index).call('stop', index)
  }

  /** Running agents' views, by index. */
  async views(query: ViewQuery): Promise<ViewSample[]> {
    const parts = await Promise.all(this.hosts.map((h) => h.call('views', query)))
    return parts.flat().sort((a, b) => a.index - b.index)
  }

  async traffic(): Promise<TrafficSample[]> {
    return (await Promise.all(this.hosts.map((h) => h.call('traffic')))).flat()
  }

  async stats(): Promise<Stats> {
    return mergeStats(await Promise.all(this.hosts.map((h) => h.call('stats'))))
  }

  /** Starts an event-loop delay histogram on every loop; the returned function ends them (worst loop). */
  async loopDelay(): Promise<() => Promise<Delay | null>> {
    await Promise.all(this.hosts.map((h) => h.call('loopBegin')))
    return async () => {
      const delays = (await Promise.all(this.hosts.map((h) => h.call('loopEnd')))).filter((d) => d != null)
      if (delays.length === 0) return null
      return {
        p99Ms: Math.max(...delays.map((d) => d.p99Ms)),
        maxMs: Math.max(...delays.map((d) => d.maxMs)),
      }
    }
  }

  /** Starts measuring each loop's busy share; the returned function gives it in % per loop. */
  utilization(): () => number[] {
    const begin = this.hosts.map((h) => h.utilization())
    return () => this.hosts.map((h, i) => Math.round(h.utilization(begin[i]).utilization * 1000) / 10)
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.close()))
  }

  private host(index: number): Host {
    return this.hosts[index % this.hosts.length]!
  }
}
