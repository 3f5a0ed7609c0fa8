import { ConfigError } from './errors.js'

/** "1048576", "512k", "10M", "2G" (powers of 1024) → bytes. */
export function parseBytes(value: string): number {
  const match = /^(\d+)\s*([kmg]i?b?)?$/i.exec(value.trim())
  if (match == null) throw new ConfigError(`"${value}" is not a size (for example 512k, 10M, 2G)`)
  const unit = (match[2] ?? '').charAt(0).toLowerCase()
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1
  return Number(match[1]) * factor
}
