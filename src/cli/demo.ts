import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, openSync } from 'node:fs'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { MemberView } from '../api/index.js'
import { writeNewKeyPair } from '../artifacts/index.js'
import { writeNewSecret } from '../bootstrap/index.js'
import { hasObserverRole } from '../membership/index.js'
import { AGENT_NODE_FLAGS, freePort, writeFileAtomic } from '../shared/index.js'
import { ApiClient } from './client.js'
import { DemoTimeoutError } from './errors.js'
import { publish } from './publish.js'
import { rollout } from './rollout.js'
import { handleStopSignals, REPEAT_WINDOW_MS } from './stop-signals.js'

export interface DemoOptions {
  nodes: number
  data: string
  json: boolean
}

const CLUSTER = 'demo'
const CLI = fileURLToPath(new URL('./main.js', import.meta.url))
/** How long the demo waits for every agent to list every other as alive. */
const CONVERGE_TIMEOUT_MS = 30_000
/**
 * How long an agent (drain, leave, stop its components) or the load balancer gets
 * to stop gracefully before the demo forces it: the `lan` drain timeout (30 s)
 * plus the components' stop timeouts, with room to spare.
 */
const STOP_GRACE_MS = 60_000
/** How long a forced process gets to end its components and exit before SIGKILL. */
const FORCE_GRACE_MS = 5000
/** How long the demo waits for educa to run everywhere. */
const ROLLOUT_TIMEOUT_MS = 120_000
/** The sample application's build script, from the package root (dist/src/cli → examples). */
const EDUCA_BUILD = new URL('../../../examples/educa/build.mjs', import.meta.url)

/**
 * `shoal demo`: a closed local cluster of agent processes on this machine, each
 * with its own data folder and log file, joined through the first one. Runs until
 * SIGINT/SIGTERM, then stops every agent it started (each leaves gracefully).
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const dataDir = resolve(options.data)
  await mkdir(dataDir, { recursive: true })
  const secretFile = join(dataDir, 'cluster.secret')
  if (!existsSync(secretFile)) await writeNewSecret(secretFile)
  const keyFile = join(dataDir, 'publisher.key')
  if (!existsSync(keyFile)) await writeNewKeyPair(keyFile)
  const tokensFile = join(dataDir, 'tokens.json')
  const token = await demoToken(tokensFile)

  const children: ChildProcess[] = []
  let stopping: Promise<void> | undefined
  let signalled = false
  let forceNow: () => void = () => {}
  const forced = new Promise<void>((resolve) => {
    forceNow = resolve
  })
  // Agents, the load balancer and the nodes launched through them (`node copy`), all at once.
  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      // A child that never started has no pid (and kill(-1) would signal every process of the user).
      const spawned = children.filter((c) => c.pid != null).map(childProcess)
      const processes = [...spawned, ...(await launchedNodes(join(dataDir, 'nodes')))]
      await Promise.all(processes.map((p) => terminate(p, forced)))
    })()
    return stopping
  }
  // Ctrl-C reaches the demo, npx and every agent at once, and npx passes it on:
  // repeats within a few seconds are the same request (cli/stop-signals.ts).
  handleStopSignals({
    stop: async () => {
      signalled = true
      if (!options.json) console.log('\nstopping the demo cluster…')
      await stopAll()
    },
    force: async () => {
      forceNow()
      await stopAll()
    },
  })

  try {
    const firstP2pPort = await freePort('127.0.0.1', 7946)
    const apis: string[] = []
    for (let i = 0; i < options.nodes; i++) {
      const apiPort = await freePort('127.0.0.1', 7070 + i)
      const p2pPort = i === 0 ? firstP2pPort : 0
      const nodeDir = join(dataDir, `node-${i + 1}`)
      await mkdir(nodeDir, { recursive: true })
      const args = [
        ...AGENT_NODE_FLAGS,
        CLI,
        'agent',
        '--cluster',
        CLUSTER,
        '--data',
        nodeDir,
        '--listen',
        `/ip4/127.0.0.1/tcp/${p2pPort}`,
        '--api',
        `127.0.0.1:${apiPort}`,
        '--secret-file',
        secretFile,
        '--trust',
        `${keyFile}.pub`,
        '--tokens',
        tokensFile,
        '--no-mdns',
        ...(i === 0 ? [] : ['--bootstrap', `/ip4/127.0.0.1/tcp/${firstP2pPort}`]),
      ]
      // Stopped while starting: start nothing more (stopAll already has what it must stop).
      if (stopping != null) return
      const log = openSync(join(nodeDir, 'agent.log'), 'a')
      const child = spawn(process.execPath, args, { stdio: ['ignore', log, log] })
      child.once('exit', (code) => {
        if (stopping != null) return
        // Exit code 0: it was removed (`shoal node remove` or the dashboard's − button); the others go on.
        if (code === 0) return console.log(`agent ${i + 1} was removed from the cluster and stopped`)
        console.error(`agent ${i + 1} exited unexpectedly (code ${code}); see ${join(nodeDir, 'agent.log')}`)
        void stopAll().then(() => process.exit(1))
      })
      children.push(child)
      apis.push(`http://127.0.0.1:${apiPort}`)
    }
    // The load balancer: an observer member routing to every ready `web`.
    const lbPort = await freePort('127.0.0.1', 8080)
    const adminPort = await freePort('127.0.0.1', 9180)
    const lbDir = join(dataDir, 'lb')
    await mkdir(lbDir, { recursive: true })
    if (stopping != null) return
    const lbLog = openSync(join(lbDir, 'lb.log'), 'a')
    const lbArgs = [CLI, 'lb', '--cluster', CLUSTER, '--listen', `127.0.0.1:${lbPort}`, '--data', lbDir]
    lbArgs.push('--bootstrap', `/ip4/127.0.0.1/tcp/${firstP2pPort}`, '--p2p-listen', '/ip4/127.0.0.1/tcp/0')
    lbArgs.push('--admin', `127.0.0.1:${adminPort}`, '--secret-file', secretFile, '--no-mdns')
    const lb = spawn(process.execPath, [...AGENT_NODE_FLAGS, ...lbArgs], { stdio: ['ignore', lbLog, lbLog] })
    lb.once('exit', (code) => {
      if (stopping != null) return
      console.error(`the load balancer exited unexpectedly (code ${code}); see ${join(lbDir, 'lb.log')}`)
      void stopAll().then(() => process.exit(1))
    })
    children.push(lb)
    const app = `http://127.0.0.1:${lbPort}`
    const lbAdmin = `http://127.0.0.1:${adminPort}`

    await waitForConvergence(apis, token)
    await deployEduca(new ApiClient(apis[0]!, token), keyFile, join(dataDir, 'educa'), options.json)
    await waitForApp(app, lbAdmin, options.nodes)
    const lastNode = (await new ApiClient(apis.at(-1)!, token).get<{ id: string }>('/api/status')).id
    if (options.json) {
      console.log(JSON.stringify({ app, lbAdmin, dashboard: apis[0], apis, token }))
    } else {
      console.log(`Shoal demo: ${options.nodes} agents in cluster "${CLUSTER}" (closed by ${secretFile})`)
      for (const [i, api] of apis.entries())
        console.log(`  agent ${i + 1}  API ${api}   log ${join(dataDir, `node-${i + 1}`, 'agent.log')}`)
      console.log(`  load balancer ${lbAdmin}/_shoal/lb   log ${join(lbDir, 'lb.log')}`)
      console.log(`\nDashboard: ${apis[0]}/#token=${token}   (the admin token: ${token})`)
      console.log(`App:       ${app}   (educa 1.0 through the load balancer; 1.1 is published too)`)
      console.log('\nTry, in another shell:')
      console.log(`  export SHOAL_API=${apis[0]} SHOAL_TOKEN=${token}`)
      console.log(`  npx shoal node copy ${lastNode} --wait`)
      console.log('  npx shoal rollout educa@1.1 --strategy rolling --wait')
      console.log('  npx shoal rollback educa --wait')
      console.log(`(tokens for other roles go in ${tokensFile}; the publisher key is ${keyFile})`)
      console.log('Press Ctrl+C to stop every agent.')
    }
  } catch (err) {
    await stopAll()
    // Stopped by a signal while starting: the failure is the stop itself, and the handler exits.
    if (signalled) return
    throw err
  }
}

/**
 * Builds the sample application, publishes educa 1.0 and 1.1 and rolls 1.0 out
 * to every agent.
 */
async function deployEduca(
  client: ApiClient,
  keyFile: string,
  buildDir: string,
  quiet: boolean,
): Promise<void> {
  const { buildEduca } = (await import(EDUCA_BUILD.href)) as {
    buildEduca(out: string): Promise<Record<'1.0' | '1.1', string>>
  }
  const builds = await buildEduca(buildDir)
  for (const version of ['1.0', '1.1'] as const) {
    if (!quiet) console.log(`publishing educa ${version}…`)
    await publish(client, { dir: builds[version], name: 'educa', version, keyFile, progress: false })
  }
  if (!quiet) console.log('rolling out educa@1.0 to every agent…')
  await rollout(
    client,
    { distribution: 'educa@1.0', strategy: 'all-at-once' },
    { timeoutMs: ROLLOUT_TIMEOUT_MS, progress: !quiet },
  )
}

/** Waits until the load balancer routes to `nodes` ready backends and educa answers through it. */
async function waitForApp(app: string, lbAdmin: string, nodes: number): Promise<void> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS
  while (Date.now() < deadline) {
    const ready = await fetch(`${lbAdmin}/_shoal/lb`)
      .then((res) => res.json() as Promise<{ backends: Array<{ state: string }> }>)
      .then((s) => s.backends.filter((b) => b.state === 'ready').length)
      .catch(() => 0)
    if (
      ready === nodes &&
      (await fetch(app)
        .then((res) => res.ok)
        .catch(() => false))
    )
      return
    await sleep(200)
  }
  throw new DemoTimeoutError(`educa did not answer through the load balancer at ${app}`)
}

async function waitForConvergence(apis: string[], token: string): Promise<void> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS
  while (Date.now() < deadline) {
    const views = await Promise.all(
      apis.map((api) =>
        new ApiClient(api, token).get<MemberView[]>('/api/members').catch(() => [] as MemberView[]),
      ),
    )
    if (
      views.every(
        (view) => view.filter((m) => m.state === 'alive' && !hasObserverRole(m.roles)).length === apis.length,
      )
    )
      return
    await sleep(200)
  }
  throw new DemoTimeoutError(
    `the demo agents did not all see each other within ${CONVERGE_TIMEOUT_MS / 1000} s; see their agent.log files`,
  )
}

/**
 * The demo's admin token: read from its tokens file, or a new random one written
 * there (0600) on the first run. Agents load the file with `--tokens`.
 */
async function demoToken(file: string): Promise<string> {
  if (existsSync(file)) {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as {
      tokens: Array<{ token: string; role: string }>
    }
    const admin = parsed.tokens.find((t) => t.role === 'admin')
    if (admin != null) return admin.token
  }
  const token = randomBytes(24).toString('base64url')
  await writeFileAtomic(
    file,
    `${JSON.stringify({ tokens: [{ name: 'demo admin', role: 'admin', token }] }, null, 2)}\n`,
    0o600,
  )
  return token
}

/** A process the demo stops: one it spawned, or a node launched through its agents. */
interface Stoppable {
  pid: number
  /** Resolves once the process has ended. */
  gone: Promise<void>
}

function childProcess(child: ChildProcess): Stoppable {
  const gone =
    child.exitCode != null || child.signalCode != null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return { pid: child.pid!, gone }
}

/**
 * The nodes the demo's agents launched (`node copy`, `node add`: the local
 * provider's detached agents, each with its pid in `<root>/node-*\/agent.json`).
 * They run in process groups of their own, so no terminal signal reaches them.
 */
async function launchedNodes(root: string): Promise<Stoppable[]> {
  const folders = await readdir(root).catch(() => [] as string[])
  const found: Stoppable[] = []
  for (const folder of folders) {
    const run = await readFile(join(root, folder, 'agent.json'), 'utf8')
      .then((text) => JSON.parse(text) as { pid?: unknown })
      .catch(() => null)
    if (typeof run?.pid !== 'number') continue
    // Only a process that is still that node's agent (a pid may have been reused since).
    const command = await readFile(`/proc/${run.pid}/cmdline`, 'utf8').catch(() => '')
    if (!command.includes(join(root, folder))) continue
    const pid = run.pid
    found.push({
      pid,
      gone: (async () => {
        while (isRunning(pid)) await sleep(100)
      })(),
    })
  }
  return found
}

/**
 * Stops one process: SIGTERM and up to STOP_GRACE_MS for its graceful stop;
 * then (or at once when the demo's stop is `forced`) a later signal, which makes
 * it force its own stop (cli/stop-signals.ts: its components go with it); SIGKILL
 * only if that does not end it within FORCE_GRACE_MS.
 */
async function terminate(target: Stoppable, forced: Promise<void>): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(target.pid, name)
    } catch {
      // already gone
    }
  }
  const sentAt = Date.now()
  signal('SIGTERM')
  const ended = await Promise.race([
    target.gone.then(() => true),
    sleep(STOP_GRACE_MS).then(() => false),
    forced.then(() => false),
  ])
  if (ended) return
  // A signal sooner than the repeat window would count as the same request.
  const early = sentAt + REPEAT_WINDOW_MS + 500 - Date.now()
  if (early > 0) await Promise.race([target.gone, sleep(early)])
  signal('SIGTERM')
  if (await Promise.race([target.gone.then(() => true), sleep(FORCE_GRACE_MS).then(() => false)])) return
  signal('SIGKILL')
  await target.gone
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
