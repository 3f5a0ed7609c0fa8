import { describe, expect, it } from 'vitest'
import { listenFailure } from '../../src/bootstrap/libp2p-node.js'
import { EXIT, errorObject, exitCodeOf, oneLine, operatorError } from '../../src/cli/exit-codes.js'
import { PortInUseError } from '../../src/shared/errors.js'

/** libp2p 2.x's start error, as its transport manager words it. */
function libp2pListenError(addr: string, cause: string): Error {
  const err = new Error(
    `Some configured addresses failed to be listened on, you may need to remove one or more listen addresses from your configuration or set \`transportManager.faultTolerance\` to NO_FATAL:\n
  ${addr}: Error: ${cause}
      at Server.setupListenHandle [as _listen2] (node:net:2328:16)
      at listenInCluster (node:net:2437:12)
`,
  )
  err.name = 'UnsupportedListenAddressesError'
  return err
}

describe('start errors an operator can act on', () => {
  it("turns libp2p's listen failure into one line with a stable code", () => {
    const inUse = listenFailure(
      libp2pListenError(
        '/ip4/127.0.0.1/tcp/7946',
        'listen EADDRINUSE: address already in use 127.0.0.1:7946',
      ),
    )
    expect(inUse).toBeInstanceOf(PortInUseError)
    expect(inUse?.code).toBe('ERR_PORT_IN_USE')
    expect(inUse?.message).toBe(
      'cannot listen on /ip4/127.0.0.1/tcp/7946: the port is in use by another process (another agent?); stop it or choose another port',
    )
    const foreign = listenFailure(
      libp2pListenError(
        '/ip4/10.9.9.9/tcp/7946',
        'listen EADDRNOTAVAIL: address not available 10.9.9.9:7946',
      ),
    )
    expect(foreign).toMatchObject({ code: 'ERR_LISTEN_ADDRESS' })
    expect(foreign?.message).toContain("is not one of this machine's")
    const privileged = listenFailure(
      libp2pListenError('/ip4/0.0.0.0/tcp/80', 'listen EACCES: permission denied'),
    )
    expect(privileged?.message).toContain('ports below 1024 need privileges')
    for (const err of [inUse, foreign, privileged]) expect(err?.message).not.toContain('\n')
    expect(listenFailure(new Error('something else'))).toBeNull()
  })

  it("names the address of a listener's EADDRINUSE that no Shoal error wrapped", () => {
    const raw = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8080'), {
      code: 'EADDRINUSE',
      syscall: 'listen',
      address: '127.0.0.1',
      port: 8080,
    })
    const err = operatorError(raw)
    expect(err).toBeInstanceOf(PortInUseError)
    expect(errorObject(err).error).toEqual({
      code: 'ERR_PORT_IN_USE',
      message:
        'cannot listen on 127.0.0.1:8080: the port is in use by another process; stop it or choose another port',
    })
    expect(exitCodeOf(err)).toBe(EXIT.failed)
    const other = Object.assign(new Error('ENOENT: x'), { code: 'ENOENT' })
    expect(operatorError(other)).toBe(other)
  })

  it('prints any message on one line, stack frames left out', () => {
    expect(oneLine('it failed:\n\n  /ip4/1.2.3.4/tcp/1: Error: boom\n      at f (x.js:1:1)\n')).toBe(
      'it failed: /ip4/1.2.3.4/tcp/1: Error: boom',
    )
    expect(errorObject(new Error('a\n    at b (c.js:1:1)')).error.message).toBe('a')
  })
})
