import { describe, expect, it } from 'vitest'
import { type Startable, StartList, type Step, silentLogger, startable } from '../../src/shared/index.js'

/** Steps that write what happens to them into `log`. */
function recorder() {
  const log: string[] = []
  const step = (name: string, fail?: 'start' | 'stop'): Step<{ leave: boolean }> => ({
    name,
    start: async () => {
      log.push(`start ${name}`)
      if (fail === 'start') throw new Error(`${name} cannot start`)
    },
    stop: async ({ leave }) => {
      log.push(`stop ${name}${leave ? ' (leave)' : ''}`)
      if (fail === 'stop') throw new Error(`${name} cannot stop`)
    },
  })
  const hook = (name: string): Step<{ leave: boolean }> => ({
    name,
    stop: ({ leave }) => {
      if (leave) log.push(name)
    },
  })
  return { log, step, hook }
}

describe('the start list', () => {
  it('starts in order and stops in reverse, hooks at their place', async () => {
    const { log, step, hook } = recorder()
    const list = new StartList(silentLogger, { leave: false })
    await list.start([step('state'), step('libp2p'), step('membership')])
    await list.start([step('runtime'), hook('leave'), hook('drain'), step('manager')])
    expect(log.splice(0)).toEqual([
      'start state',
      'start libp2p',
      'start membership',
      'start runtime',
      'start manager',
    ])
    await list.stop({ leave: true })
    expect(log).toEqual([
      'stop manager (leave)',
      'drain',
      'leave',
      'stop runtime (leave)',
      'stop membership (leave)',
      'stop libp2p (leave)',
      'stop state (leave)',
    ])
  })

  it('stops once however often it is asked, concurrently or later', async () => {
    const { log, step } = recorder()
    const list = new StartList(silentLogger, { leave: false })
    await list.start([step('a'), step('b')])
    log.splice(0)
    const first = list.stop({ leave: true })
    const second = list.stop({ leave: false })
    expect(second).toBe(first)
    await Promise.all([first, second])
    await list.stop({ leave: false })
    expect(log).toEqual(['stop b (leave)', 'stop a (leave)'])
  })

  it('a failing start stops what started, in reverse, told `abort`, and throws its error', async () => {
    const { log, step, hook } = recorder()
    const list = new StartList(silentLogger, { leave: false })
    await list.start([step('state'), step('libp2p')])
    await expect(
      list.start([step('membership'), hook('leave'), step('api', 'start'), step('runtime')]),
    ).rejects.toThrow('api cannot start')
    expect(log).toEqual([
      'start state',
      'start libp2p',
      'start membership',
      'start api',
      // not the failed step itself, nor the leave hook (abort says leave: false), nor what came after
      'stop membership',
      'stop libp2p',
      'stop state',
    ])
    // Stopped already: a later stop does nothing more, and nothing starts again.
    await list.stop({ leave: true })
    expect(log).toHaveLength(7)
    await expect(list.start([step('late')])).rejects.toThrow(/stopping/)
    expect(log).toHaveLength(7)
  })

  it('a step that fails to stop is logged and the next one still stops', async () => {
    const { log, step } = recorder()
    const warnings: string[] = []
    const logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) }
    const list = new StartList(logger, { leave: false })
    await list.start([step('a'), step('b', 'stop'), step('c')])
    log.splice(0)
    await list.stop({ leave: false })
    expect(log).toEqual(['stop c', 'stop b', 'stop a'])
    expect(warnings).toEqual(['stopping b failed'])
  })

  it('a stop asked for during a start waits for the step in progress and starts no further one', async () => {
    const { log, step } = recorder()
    const list = new StartList(silentLogger, { leave: false })
    let release: () => void = () => {}
    const slow: Step<{ leave: boolean }> = {
      name: 'slow',
      start: () => new Promise<void>((resolve) => (release = resolve)),
      stop: () => void log.push('stop slow'),
    }
    const starting = list.start([step('a'), slow, step('b')])
    await new Promise((resolve) => setTimeout(resolve, 10))
    const stopping = list.stop({ leave: false })
    release()
    await expect(starting).rejects.toThrow(/stopping/)
    await stopping
    expect(log).toEqual(['start a', 'stop slow', 'stop a'])
  })

  it('runs a Startable as a step: its own start and stop, each safe twice', async () => {
    const calls: string[] = []
    let running = false
    const subsystem: Startable = {
      start: () => {
        if (running) return
        running = true
        calls.push('start')
      },
      stop: async () => {
        if (!running) return
        running = false
        calls.push('stop')
      },
    }
    const list = new StartList<void>(silentLogger, undefined)
    await list.start([startable('sub', subsystem), startable('again', subsystem)])
    await list.stop()
    await list.stop()
    expect(calls).toEqual(['start', 'stop'])
  })
})
