/**
 * A small levelled logger writing one line per event to stderr. Subsystems receive
 * a Logger through their components and derive a child per concern.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
  child(name: string): Logger
}

export interface LoggerInit {
  level?: LogLevel
  name?: string
  /** Where lines go; default stderr. */
  write?: (line: string) => void
}

export function isLogLevel(value: string): value is LogLevel {
  return value in LEVEL_RANK
}

export function createLogger(init: LoggerInit = {}): Logger {
  const threshold = LEVEL_RANK[init.level ?? 'info']
  const write = init.write ?? ((line: string) => process.stderr.write(`${line}\n`))
  const make = (name: string): Logger => {
    const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
      if (LEVEL_RANK[level] < threshold) return
      const extra = fields == null ? '' : ` ${formatFields(fields)}`
      write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${name}] ${message}${extra}`)
    }
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (child) => make(name === '' ? child : `${name}:${child}`),
    }
  }
  return make(init.name ?? 'shoal')
}

function formatFields(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
}

export const silentLogger: Logger = createLogger({ level: 'silent' })
