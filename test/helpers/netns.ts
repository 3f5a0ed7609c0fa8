/**
 * Private Linux network-namespace topologies for tests that need a real LAN
 * (multicast, several hosts) that loopback cannot give: a "switch" namespace
 * holding a bridge, and host namespaces each with one veth whose peer is a
 * port of that bridge. Nothing is created in the caller's own namespace, so the
 * test hosts can reach each other and nothing else. Needs root and iproute2.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** The interface each host namespace gets (its peer in the switch namespace is `vh<N>`). */
export const HOST_IFACE = 'eth0'

export interface NetnsHost {
  /** Namespace name, for `ip netns exec`. */
  ns: string
  /** IPv4 address of the host on the private subnet. */
  ip: string
}

export interface BridgedHosts {
  switchNs: string
  hosts: NetnsHost[]
  /** Deletes every namespace this topology created (their veths and bridge go with them). */
  destroy(): Promise<void>
}

export interface BridgedHostsOptions {
  /** Number of host namespaces. */
  count: number
  /** First three octets of the private /24, e.g. '10.213.77'. Exists only inside these namespaces. */
  subnet: string
  /** Namespace name prefix; a random suffix is added so parallel runs do not collide. */
  prefix?: string
  /** Last octet of the first host (the next hosts count up). Default 11. */
  firstHost?: number
}

/** Runs `ip ARGS...`; rejects with ip's stderr in the message. */
export async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('ip', args, { timeout: 10_000 })
    return stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

/** The argv that runs `command args...` inside namespace `ns` (ip execs it: the pid is the command's). */
export function inNetns(ns: string, command: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, command, ...args]]
}

export function randomSuffix(): string {
  return randomBytes(3).toString('hex')
}

/**
 * Whether this process can make network namespaces; tries it for real (root
 * alone is not enough in an unprivileged container). Resolves to null when it
 * can, or to the reason it cannot.
 */
export async function netnsUnavailableReason(): Promise<string | null> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the test as root)'
  const probe = `shoal-probe-${randomSuffix()}`
  try {
    await ip('netns', 'add', probe)
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`
  }
  try {
    await ip('netns', 'del', probe)
  } catch (err) {
    return `created probe namespace ${probe} but could not delete it: ${(err as Error).message}`
  }
  return null
}

/**
 * Builds the switch namespace with bridge `br0` (multicast snooping off, so
 * mDNS floods to every port) and `count` host namespaces at SUBNET.firstHost..,
 * each with lo and eth0 up and a multicast route (mDNS needs it: notes/stack.md).
 * On failure, whatever was created is removed before the error is thrown.
 */
export async function createBridgedHosts(options: BridgedHostsOptions): Promise<BridgedHosts> {
  const suffix = randomSuffix()
  const prefix = options.prefix ?? 'shoal'
  const first = options.firstHost ?? 11
  if (options.count < 1 || first + options.count > 254) throw new Error('host count does not fit in the /24')
  const created: string[] = []
  const destroy = async () => {
    const errors: string[] = []
    // Hosts first, then the switch: each deletion takes its veth ends along.
    for (const ns of [...created].reverse()) {
      await ip('netns', 'del', ns).catch((err: Error) => errors.push(err.message))
    }
    created.length = 0
    if (errors.length > 0) throw new Error(`network namespace cleanup failed: ${errors.join('; ')}`)
  }
  const addNs = async (ns: string) => {
    await ip('netns', 'add', ns)
    created.push(ns)
  }
  const switchNs = `${prefix}-sw-${suffix}`
  const hosts: NetnsHost[] = []
  try {
    await addNs(switchNs)
    await ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    await ip('-n', switchNs, 'link', 'set', 'br0', 'up')
    for (let i = 0; i < options.count; i++) {
      const host: NetnsHost = { ns: `${prefix}-h${i + 1}-${suffix}`, ip: `${options.subnet}.${first + i}` }
      await addNs(host.ns)
      const port = `vh${i + 1}`
      // Created inside the switch namespace with its peer placed straight into the host's.
      await ip(
        '-n',
        switchNs,
        'link',
        'add',
        port,
        'type',
        'veth',
        'peer',
        'name',
        HOST_IFACE,
        'netns',
        host.ns,
      )
      await ip('-n', switchNs, 'link', 'set', port, 'master', 'br0')
      await ip('-n', switchNs, 'link', 'set', port, 'up')
      await ip('-n', host.ns, 'link', 'set', 'lo', 'up')
      await ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', HOST_IFACE)
      await ip('-n', host.ns, 'link', 'set', HOST_IFACE, 'up')
      await ip('-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', HOST_IFACE)
      hosts.push(host)
    }
  } catch (err) {
    await destroy().catch(() => {})
    throw err
  }
  return { switchNs, hosts, destroy }
}
