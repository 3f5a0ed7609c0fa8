import { describe, expect, it } from 'vitest'
import { parseHostPort, resolveAgentConfig } from '../../src/bootstrap/config.js'
import { EXIT, exitCodeOf } from '../../src/cli/exit-codes.js'
import { decodeGossip, decodeProbeRequest, encode } from '../../src/membership/messages.js'
import { OptionError, ShoalError } from '../../src/shared/errors.js'

describe('agent configuration', () => {
  it('applies the documented defaults', () => {
    const config = resolveAgentConfig({ cluster: 'prod-eu' })
    expect(config.api).toEqual({ host: '127.0.0.1', port: 7070 })
    expect(config.listen).toEqual(['/ip4/0.0.0.0/tcp/7946'])
    expect(config.mdns).toBe(true)
    expect(config.preset).toBe('lan')
    expect(config.dataDir).toMatch(/\.shoal\/prod-eu$/)
    expect(structuredClone(config)).toEqual(config)
  })

  it('refuses bad cluster names, addresses and timers with ERR_CONFIG', () => {
    for (const options of [
      { cluster: 'Bad Name' },
      { cluster: '-x' },
      { cluster: 'ok', listen: ['/ip4/127.0.0.1/udp/7946'] },
      { cluster: 'ok', api: 'localhost:99999' },
      { cluster: 'ok', timers: { probeInterval: -1 } },
    ]) {
      expect(() => resolveAgentConfig(options)).toThrow(ShoalError)
      try {
        resolveAgentConfig(options)
      } catch (err) {
        expect((err as ShoalError).code).toBe('ERR_CONFIG')
      }
    }
  })

  it('refuses bootstrap addresses no node can dial with ERR_BAD_BOOTSTRAP, as option errors (exit 2)', () => {
    const id = '12D3KooWHJNavF2ib6GtfWtRxyK9kChgqPro14BuWktfAcS6LB1j'
    for (const [address, says] of [
      ['not-a-multiaddr', 'is not a multiaddr'],
      ['/ip4/127.0.0.1/tcpx/7946', 'is not a multiaddr'],
      ['10.0.0.5:7946', 'write /ip4/10.0.0.5/tcp/7946'],
      ['seed.example:7946', 'write /dns/seed.example/tcp/7946'],
      ['/ip4/10.0.0.5', 'is not an address this node can dial'],
      ['/ip4/10.0.0.5/udp/7946', 'is not an address this node can dial'],
      [`/p2p/${id}`, 'is not an address this node can dial'],
      ['/ip4/10.0.0.5/tcp/7946/p2p/QmNotAPeer', 'ends in /p2p/QmNotAPeer, which is not a peer id'],
    ] as const) {
      let thrown: unknown
      try {
        resolveAgentConfig({ cluster: 'ok', bootstrap: [address] })
      } catch (err) {
        thrown = err
      }
      expect(thrown, address).toBeInstanceOf(OptionError)
      expect(thrown).toMatchObject({ code: 'ERR_BAD_BOOTSTRAP' })
      expect((thrown as Error).message).toMatch(new RegExp(`^--bootstrap "${address}" `))
      expect((thrown as Error).message).toContain(says)
      expect(exitCodeOf(thrown)).toBe(EXIT.usage)
    }
  })

  it('accepts bootstrap addresses with or without /p2p/PEER_ID, and DNS names', () => {
    const id = '12D3KooWHJNavF2ib6GtfWtRxyK9kChgqPro14BuWktfAcS6LB1j'
    const bootstrap = [
      '/ip4/10.0.0.5/tcp/7946',
      `/ip4/10.0.0.5/tcp/7946/p2p/${id}`,
      '/ip6/::1/tcp/7946',
      `/dns4/seed.example/tcp/7946/p2p/${id}`,
      '/dnsaddr/bootstrap.example',
    ]
    expect(resolveAgentConfig({ cluster: 'ok', bootstrap }).bootstrap).toEqual(bootstrap)
  })

  it('parses API addresses', () => {
    expect(parseHostPort('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 })
    expect(parseHostPort('7071')).toEqual({ host: '127.0.0.1', port: 7071 })
    expect(parseHostPort('[::1]:7070')).toEqual({ host: '::1', port: 7070 })
  })
})

describe('membership wire format', () => {
  const id = '12D3KooWHJNavF2ib6GtfWtRxyK9kChgqPro14BuWktfAcS6LB1j'

  it('round-trips valid messages', () => {
    const message = { v: 1 as const, claims: [{ kind: 'left' as const, id, incarnation: 3 }] }
    expect(decodeGossip(encode(message))).toEqual(message)
  })

  it('refuses malformed input with ERR_MEMBERSHIP_MESSAGE', () => {
    const bad = [
      new TextEncoder().encode('{not json'),
      encode({ v: 1, claims: [{ kind: 'left', id: 'not-a-peer-id', incarnation: 1 }] } as never),
      encode({ v: 1, claims: [{ kind: 'alive', id, incarnation: -1, addrs: [], meta: {} }] } as never),
      encode({
        v: 1,
        claims: [{ kind: 'alive', id, incarnation: 1, addrs: [], meta: { big: 'x'.repeat(20_000) } }],
      }),
      encode({ v: 2, claims: [] } as never),
    ]
    for (const bytes of bad)
      expect(() => decodeGossip(bytes)).toThrow(expect.objectContaining({ code: 'ERR_MEMBERSHIP_MESSAGE' }))
    expect(() => decodeProbeRequest(encode({ t: 'ping-req', target: 'nope', addrs: [] } as never))).toThrow()
  })
})
