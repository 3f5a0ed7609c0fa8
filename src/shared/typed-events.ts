import type { Logger } from './logger.js'

type Listener<T> = (detail: T) => void

/**
 * A typed event emitter whose listeners cannot throw into the emitter: a listener
 * that throws is logged and the others still run, so one faulty consumer never
 * breaks membership or the agent.
 */
export class TypedEvents<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>()

  constructor(private readonly log: Logger) {}

  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name)
    if (set == null) {
      set = new Set()
      this.listeners.set(name, set)
    }
    set.add(listener as Listener<never>)
    return () => this.off(name, listener)
  }

  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(listener as Listener<never>)
  }

  emit<K extends keyof Events>(name: K, detail: Events[K]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        ;(listener as Listener<Events[K]>)(detail)
      } catch (err) {
        this.log.error(`listener for ${String(name)} failed`, { error: String(err) })
      }
    }
  }

  removeAll(): void {
    this.listeners.clear()
  }
}
