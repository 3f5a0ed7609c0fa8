/**
 * Hosts in private network namespaces for the artifacts benchmark: a switch
 * namespace with bridge `br0`, host namespaces with one veth each (`eth0`, its
 * bridge port `vhN`), every link shaped with `tc` in both directions. Nothing is
 * created in the caller's namespace, so the hosts reach each other and nothing
 * else. Needs root and iproute2 (adapted from test/helpers/netns.ts).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

export const HOST_IFACE = 'eth0'

export interface Host {
  ns: string
  ip: string
}

export interface Topology {
  switchNs: string
  hosts: Host[]
  /** The qdisc set on each link direction, as given to tc. */
  qdisc: string[]
  destroy(): Promise<void>
}

async function run(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { timeout: 10_000 })
    return stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

const ip = (...args: string[]) => run('ip', args)
const tc = (...args: string[]) => run('tc', args)

/** Null when this process can make namespaces and shape links, else why not. */
export async function netnsUnavailableReason(): Promise<string | null> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  const probe = `shoal-bprobe-${randomBytes(3).toString('hex')}`
  try {
    await ip('netns', 'add', probe)
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`
  }
  try {
    await tc('-n', probe, 'qdisc', 'show')
  } catch (err) {
    return `tc is not usable: ${(err as Error).message}`
  } finally {
    await ip('netns', 'del', probe).catch(() => {})
  }
  return null
}

/**
 * `count` hosts at SUBNET.11.. on one bridge; each host's egress (eth0) and
 * ingress (its bridge port's egress) shaped to `rateMbit` with a token bucket.
 * On failure whatever was made is removed before the error is thrown.
 */
export async function createShapedHosts(options: {
  count: number
  subnet: string
  rateMbit: number
  prefix?: string
  /** Gets the teardown before anything is made, so an interruption midway can still remove it. */
  register?: (destroy: () => Promise<void>) => void
}): Promise<Topology> {
  const suffix = randomBytes(3).toString('hex')
  const prefix = options.prefix ?? 'shoal-bench'
  const created: string[] = []
  const destroy = async () => {
    const errors: string[] = []
    for (const ns of created.splice(0).reverse()) {
      await ip('netns', 'del', ns).catch((err: Error) => errors.push(err.message))
    }
    if (errors.length > 0) throw new Error(`network namespace cleanup failed: ${errors.join('; ')}`)
  }
  options.register?.(destroy)
  const qdisc = tbf(options.rateMbit)
  const switchNs = `${prefix}-sw-${suffix}`
  const hosts: Host[] = []
  try {
    await ip('netns', 'add', switchNs)
    created.push(switchNs)
    await ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', switchNs, 'link', 'set', 'br0', 'up')
    for (let i = 0; i < options.count; i++) {
      const host: Host = { ns: `${prefix}-h${i + 1}-${suffix}`, ip: `${options.subnet}.${11 + i}` }
      await ip('netns', 'add', host.ns)
      created.push(host.ns)
      const port = `vh${i + 1}`
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
      await tc('-n', host.ns, 'qdisc', 'add', 'dev', HOST_IFACE, 'root', ...qdisc)
      await tc('-n', switchNs, 'qdisc', 'add', 'dev', port, 'root', ...qdisc)
      hosts.push(host)
    }
  } catch (err) {
    await destroy().catch(() => {})
    throw err
  }
  return { switchNs, hosts, qdisc, destroy }
}

/** The qdisc of every link direction at `rateMbit`, as tc arguments. */
function tbf(rateMbit: number): string[] {
  // burst: well above one 64 KiB GSO segment; latency bounds the queue (rate x 20 ms).
  return ['tbf', 'rate', `${rateMbit}mbit`, 'burst', '256kb', 'latency', '20ms']
}

/** Reshapes both directions of every link of the topology to `rateMbit`; the qdisc now set. */
export async function reshape(topology: Topology, rateMbit: number): Promise<string[]> {
  const qdisc = tbf(rateMbit)
  await Promise.all(
    topology.hosts.map(async (host, i) => {
      await tc('-n', host.ns, 'qdisc', 'replace', 'dev', HOST_IFACE, 'root', ...qdisc)
      await tc('-n', topology.switchNs, 'qdisc', 'replace', 'dev', `vh${i + 1}`, 'root', ...qdisc)
    }),
  )
  topology.qdisc = qdisc
  return qdisc
}

/** The argv that runs `command args...` in namespace `ns` (ip execs it: the pid is the command's). */
export function inNetns(ns: string, command: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, command, ...args]]
}

/** Bytes each host's link carried so far: `up` from the host (eth0 egress), `down` to it (its bridge port's egress). */
export async function linkBytes(
  topology: Topology,
  count: number,
): Promise<{ up: number[]; down: number[] }> {
  const sent = async (args: string[]) => {
    const text = await tc('-s', ...args).catch(() => '')
    return Number(/Sent (\d+) bytes/.exec(text)?.[1] ?? Number.NaN)
  }
  const hosts = topology.hosts.slice(0, count)
  const [up, down] = await Promise.all([
    Promise.all(hosts.map((h) => sent(['-n', h.ns, 'qdisc', 'show', 'dev', HOST_IFACE]))),
    Promise.all(hosts.map((_, i) => sent(['-n', topology.switchNs, 'qdisc', 'show', 'dev', `vh${i + 1}`]))),
  ])
  return { up, down }
}
