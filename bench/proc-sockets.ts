/**
 * libp2p connections per agent process, read from /proc: the established TCP
 * sockets a process holds (its /proc/PID/fd links to socket:[inode], matched in
 * /proc/net/tcp) that either sit on its own libp2p listen port (inbound) or lead
 * to another agent's (outbound). The API connections the bench polls through are
 * on neither, so they are not counted.
 */
import { readdir, readFile, readlink } from 'node:fs/promises'

/** An agent process and the TCP port its libp2p node listens on. */
export interface SocketOwner {
  pid: number
  p2pPort: number
}

export interface ProcessConnections {
  /** Established TCP sockets of libp2p (inbound and outbound). */
  connections: number
  /** Distinct agents at the other end (two sockets to one peer count once). */
  peers: number
}

interface TcpSocket {
  localPort: number
  remotePort: number
  inode: string
}

/** Connections of each process in `owners`, in their order; null where its /proc entry is gone. */
export async function libp2pConnections(owners: SocketOwner[]): Promise<Array<ProcessConnections | null>> {
  const sockets = await establishedSockets()
  const byInode = new Map(sockets.map((s) => [s.inode, s]))
  const listenPorts = new Map(owners.map((o) => [o.p2pPort, o.pid]))
  const held = await Promise.all(owners.map((o) => socketInodes(o.pid)))
  // Which process holds each local port: the far end of an inbound connection is an outbound socket of a peer.
  const portOwner = new Map<number, number>()
  owners.forEach((owner, i) => {
    for (const inode of held[i] ?? []) {
      const socket = byInode.get(inode)
      if (socket != null) portOwner.set(socket.localPort, owner.pid)
    }
  })
  return owners.map((owner, i) => {
    const inodes = held[i]
    if (inodes == null) return null
    let connections = 0
    const peers = new Set<number>()
    for (const inode of inodes) {
      const socket = byInode.get(inode)
      if (socket == null) continue
      const inbound = socket.localPort === owner.p2pPort
      const outboundTo = listenPorts.get(socket.remotePort)
      if (!inbound && outboundTo == null) continue
      connections++
      const peer = inbound ? portOwner.get(socket.remotePort) : outboundTo
      if (peer != null && peer !== owner.pid) peers.add(peer)
    }
    return { connections, peers: peers.size }
  })
}

/** Established TCP sockets of this network namespace (IPv4 and IPv6 tables). */
async function establishedSockets(): Promise<TcpSocket[]> {
  const out: TcpSocket[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '')
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // sl local_address rem_address st ... inode (field 9); state 01 is ESTABLISHED.
      if (f.length < 10 || f[3] !== '01') continue
      out.push({ localPort: port(f[1]!), remotePort: port(f[2]!), inode: f[9]! })
    }
  }
  return out
}

function port(address: string): number {
  return Number.parseInt(address.slice(address.lastIndexOf(':') + 1), 16)
}

/** Inodes of the sockets a process has open; null once it is gone. */
async function socketInodes(pid: number): Promise<string[] | null> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => null)
  if (fds == null) return null
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')))
  return links.flatMap((link) => /^socket:\[(\d+)\]$/.exec(link)?.[1] ?? [])
}
