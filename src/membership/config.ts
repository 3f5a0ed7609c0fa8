import { ConfigError } from '../shared/errors.js'
import { TIMER_PRESETS, type TimerPreset } from './constants.js'

export interface MembershipTimers {
  probeInterval: number
  probeTimeout: number
  connectTimeout: number
  indirectChecks: number
  suspicionMult: number
  suspicionMaxTimeoutMult: number
  awarenessMax: number
  syncInterval: number
  joinRetryInterval: number
  reapTimeout: number
  leaveTimeout: number
  reconnectInterval: number
  reconnectTimeout: number
}

/** Timers from a preset with overrides on top, checked once at start. */
export function resolveTimers(
  preset: TimerPreset = 'lan',
  overrides: Partial<MembershipTimers> = {},
): MembershipTimers {
  const base = TIMER_PRESETS[preset]
  if (base == null) throw new ConfigError(`unknown timer preset "${preset}" (lan, cloud or test)`)
  const timers = { ...base, ...overrides }
  for (const [key, value] of Object.entries(timers)) {
    if (!Number.isFinite(value) || value < 0)
      throw new ConfigError(`membership timer ${key} must be a number >= 0`)
  }
  if (timers.probeTimeout >= timers.probeInterval * (timers.awarenessMax + 1)) {
    throw new ConfigError('membership probeTimeout must be shorter than the stretched probe interval')
  }
  return timers
}

/**
 * Suspicion bounds for a cluster of n members (Lifeguard): min = mult x max(1, log10 n)
 * x interval, max = maxMult x min.
 */
export function suspicionBounds(timers: MembershipTimers, n: number): { min: number; max: number } {
  const min = timers.suspicionMult * Math.max(1, Math.log10(Math.max(1, n))) * timers.probeInterval
  return { min, max: min * timers.suspicionMaxTimeoutMult }
}
