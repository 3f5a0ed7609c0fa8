import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { AGENT_NODE_FLAGS } from '../src/shared/version.js'

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))

/** The first line a child prints (agents and `shoal lb` print one JSON line once they listen). */
export async function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)))
  })
}

export interface LbProcess {
  child: ChildProcess
  /** The application's address (the proxy). */
  url: string
  /** Its admin listener: `/_shoal/lb`, `/metrics`. */
  admin: string
}

/**
 * `shoal lb` for cluster `bench-proc` on 127.0.0.1 (proxy on `port`, admin listener
 * on a port the OS picks), joining through `bootstrap`; `flags` are added as given.
 */
export async function startLb(init: {
  port: number
  data: string
  bootstrap: string[]
  flags?: string[]
}): Promise<LbProcess> {
  const child = spawn(
    process.execPath,
    [...AGENT_NODE_FLAGS, CLI, 'lb', '--cluster', 'bench-proc', '--listen', `127.0.0.1:${init.port}`]
      .concat(['--admin', '127.0.0.1:0', '--no-mdns', '--data', init.data])
      .concat(['--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--log-level', 'error'])
      .concat(
        init.bootstrap.flatMap((b) => ['--bootstrap', b]),
        init.flags ?? [],
      ),
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const { url, admin } = JSON.parse(await firstLine(child)) as { url: string; admin: string }
  return { child, url, admin }
}
