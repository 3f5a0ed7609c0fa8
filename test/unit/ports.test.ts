import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { freePort } from '../../src/shared/ports.js'

function ephemeralLow(): number {
  return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
}

describe('freePort', () => {
  it('hands out distinct ports below the ephemeral range that can be bound', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
    expect(new Set(ports).size).toBe(ports.length)
    for (const port of ports) expect(port).toBeLessThan(ephemeralLow())
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(ports[0], '127.0.0.1', resolve))
    server.close()
  })

  it('returns the preferred port when it is free, another one when it is taken', async () => {
    const preferred = await freePort()
    expect(await freePort('127.0.0.1', preferred)).toBe(preferred)
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(preferred, '127.0.0.1', resolve))
    try {
      expect(await freePort('127.0.0.1', preferred)).not.toBe(preferred)
    } finally {
      server.close()
    }
  })
})
