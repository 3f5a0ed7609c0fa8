import { describe, expect, it } from 'vitest'
import { resolveAgentConfig } from '../../src/bootstrap/config.js'
import { startWarnings } from '../../src/bootstrap/start-warnings.js'

const MEMBER = '/ip4/10.0.0.5/tcp/7946'

describe('warnings an agent gives at start', () => {
  it('says nothing of an agent that trusts a publisher and can find peers', () => {
    expect(startWarnings(resolveAgentConfig({ cluster: 'prod', trust: ['p.pub'] }))).toEqual([])
    expect(
      startWarnings(
        resolveAgentConfig({ cluster: 'prod', trust: ['p.pub'], mdns: false, bootstrap: [MEMBER] }),
      ),
    ).toEqual([])
    expect(
      startWarnings(
        resolveAgentConfig({
          cluster: 'prod',
          trust: ['p.pub'],
          mdns: false,
          discoverEc2: { region: 'eu-west-1' },
        }),
      ),
    ).toEqual([])
  })

  it('warns in one line that an agent without --trust can never install anything', () => {
    const warnings = startWarnings(resolveAgentConfig({ cluster: 'prod' }))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(
      /^no --trust was given, .* will never install a component; pass --trust FILE\.pub/,
    )
    expect(warnings[0]).not.toContain('\n')
  })

  it('warns in one line that an agent without --bootstrap and mDNS stays a cluster of one', () => {
    const warnings = startWarnings(resolveAgentConfig({ cluster: 'prod', trust: ['p.pub'], mdns: false }))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^no --bootstrap was given and mDNS is off, .* cluster of one/)
    expect(warnings[0]).not.toContain('\n')
  })

  it('gives both warnings, trust first', () => {
    const warnings = startWarnings(resolveAgentConfig({ cluster: 'prod', mdns: false }))
    expect(warnings.map((w) => w.split(' ')[1])).toEqual(['--trust', '--bootstrap'])
  })
})
