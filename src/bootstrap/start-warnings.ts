import type { AgentConfig } from './config.js'

/**
 * What an agent's options make it unable to do, as one warning line each, for the
 * agent to log at start: options that are valid but almost never what was meant.
 * Pure, so every case is a unit test.
 */
export function startWarnings(
  config: Pick<AgentConfig, 'trust' | 'bootstrap' | 'mdns' | 'discoverEc2'>,
): string[] {
  const warnings: string[] = []
  if (config.trust.length === 0)
    warnings.push(
      'no --trust was given, so this agent trusts no publisher and will never install a component; ' +
        'pass --trust FILE.pub (a key from "shoal key new FILE") to run what that key signs',
    )
  if (config.bootstrap.length === 0 && !config.mdns && config.discoverEc2 == null)
    warnings.push(
      'no --bootstrap was given and mDNS is off, so this agent looks for no peers and stays a cluster of one ' +
        'until another agent joins through it; pass --bootstrap MULTIADDR of a member to join a cluster',
    )
  return warnings
}
