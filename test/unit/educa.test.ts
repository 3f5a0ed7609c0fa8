import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tar from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEduca } from '../../examples/educa/build.mjs'
import { parseDescriptor } from '../../src/runtime/descriptor.js'
import { freePort } from '../../src/shared/ports.js'
import { waitFor } from '../helpers/wait.js'

interface DistributionFile {
  artifacts: Record<string, { kind: string; descriptor?: unknown }>
  config: { greeting: string }
  placement: Record<string, string>
}

let root: string
let built: { '1.0': string; '1.1': string }
const children: ChildProcess[] = []
const servers: Server[] = []

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'educa-test-'))
  built = await buildEduca(join(root, 'a'))
})

afterAll(async () => {
  for (const child of children) if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
  for (const server of servers) server.closeAllConnections()
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))))
  await rm(root, { recursive: true, force: true })
})

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort()
}

const readDistribution = async (dir: string): Promise<DistributionFile> =>
  JSON.parse(await readFile(join(dir, 'distribution.json'), 'utf8'))

/** Unpacks DIST/NAME.tgz into a folder of its own, as the agent would. */
async function unpack(dist: string, name: string): Promise<string> {
  const dir = join(root, 'run', `${name}-${dist.slice(-3)}`)
  await mkdir(dir, { recursive: true })
  await tar.x({ file: join(dist, `${name}.tgz`), cwd: dir })
  return dir
}

/** Runs DIR/server.mjs with its own Node, on PORT, with only the environment it is given. */
function runComponent(dir: string, port: number, env: Record<string, string>) {
  const child = spawn(process.execPath, [join(dir, 'server.mjs')], {
    env: { PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr += chunk
  })
  children.push(child)
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  return { child, exit, stderr: () => stderr }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

interface FakeApi {
  url: string
  /** Sends a new endpoint list on every open events stream. */
  publish(endpoints: string[]): void
  /** Ends every events stream after setting the list a reconnecting client will get. */
  drop(endpoints: string[]): void
}

/** Answers the two service-discovery routes of the agent API with the catalog endpoints it is given. */
async function fakeAgentApi(initial: string[]): Promise<FakeApi> {
  let answer = ''
  const set = (endpoints: string[]) => {
    answer = JSON.stringify({
      service: 'catalog',
      endpoints: endpoints.map((endpoint, i) => ({
        node: `node-${i}`,
        component: 'catalog',
        version: '1.1',
        endpoint,
        local: i === 0,
      })),
    })
  }
  set(initial)
  const streams = new Set<ServerResponse>()
  const server = createServer((req, res) => {
    if (req.url === '/api/services/catalog') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer)
    } else if (req.url === '/api/services/catalog/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      // CRLF line ends and a comment, which a stream may carry, to exercise the parser.
      res.write(': hello\r\n\r\n')
      res.write(`event: endpoints\r\ndata: ${answer}\r\n\r\n`)
      streams.add(res)
      res.once('close', () => streams.delete(res))
    } else {
      res.writeHead(404).end()
    }
  })
  servers.push(server)
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const address = server.address()
  if (address == null || typeof address === 'string') throw new Error('no address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    publish: (endpoints) => {
      set(endpoints)
      for (const res of streams) res.write(`event: endpoints\ndata: ${answer}\n\n`)
    },
    drop: (endpoints) => {
      set(endpoints)
      for (const res of streams) res.end()
    },
  }
}

describe('educa sample', () => {
  it('builds byte-identical folders twice', async () => {
    const again = await buildEduca(join(root, 'b'))
    for (const version of ['1.0', '1.1'] as const) {
      const files = await filesUnder(built[version])
      expect(files).toEqual(['catalog.tgz', 'conf/educa.json', 'distribution.json', 'web.tgz'])
      expect(await filesUnder(again[version])).toEqual(files)
      for (const file of files) {
        const first = await readFile(join(built[version], file))
        const second = await readFile(join(again[version], file))
        expect(first.equals(second), `${version}/${file}`).toBe(true)
      }
    }
  })

  it('packs server.mjs and release.json at the root of each tarball', async () => {
    for (const name of ['web', 'catalog']) {
      const entries: string[] = []
      await tar.t({
        file: join(built['1.1'], `${name}.tgz`),
        onReadEntry: (entry) => entries.push(entry.path),
      })
      expect(entries).toEqual(['release.json', 'server.mjs'])
    }
  })

  it('describes both versions with valid descriptors', async () => {
    for (const version of ['1.0', '1.1'] as const) {
      const dist = await readDistribution(built[version])
      const components = Object.entries(dist.artifacts).filter(([, a]) => a.kind === 'component')
      expect(components.map(([name]) => name).sort()).toEqual(['catalog.tgz', 'web.tgz'])
      for (const [name, artifact] of components) {
        const descriptor = parseDescriptor(name, artifact.descriptor)
        expect(`${descriptor.name}.tgz`).toBe(name)
        expect(descriptor.http).toBe(true)
      }
      expect(dist.artifacts['conf/educa.json']).toEqual({ kind: 'config' })
      expect(dist.config.greeting).toBe(
        `Welcome to Educa ${version}${version === '1.1' ? ': now with course levels' : ''}`,
      )
      expect(dist.placement).toEqual({ web: 'all', catalog: 'all' })
    }
  })

  it('runs 1.1: the web page shows the catalog, then degrades when the catalog stops', async () => {
    const dist = built['1.1']
    const [catalogDir, webDir] = await Promise.all([unpack(dist, 'catalog'), unpack(dist, 'web')])
    const [catalogPort, webPort] = [await freePort(), await freePort()]
    const catalogEndpoint = `http://127.0.0.1:${catalogPort}`
    const api = await fakeAgentApi([catalogEndpoint])
    const { greeting } = (await readDistribution(dist)).config

    const catalog = runComponent(catalogDir, catalogPort, { SHOAL_VERSION: '1.1', SHOAL_NODE_ID: 'node-a' })
    const web = runComponent(webDir, webPort, {
      SHOAL_VERSION: '1.1',
      SHOAL_NODE_ID: 'node-a',
      SHOAL_API: api.url,
      SHOAL_CONFIG: JSON.stringify({ greeting }),
      // The distribution folder holds conf/educa.json under its artifact name, as the agent's config dir does.
      SHOAL_CONFIG_DIR: dist,
    })
    const page = `http://127.0.0.1:${webPort}/`
    const healthy = async () => (await getJson(`${catalogEndpoint}/healthz`)).status === 200
    await waitFor('catalog health', healthy, { timeout: 30_000 })
    const courses = await getJson(`${catalogEndpoint}/courses`)
    expect(courses.body).toMatchObject({ component: 'catalog', version: '1.1', node: 'node-a' })
    expect(courses.body.courses).toHaveLength(4)
    const levels = (courses.body.courses as { level?: string }[]).map((c) => c.level)
    expect(levels).toEqual(['beginner', 'intermediate', 'advanced', 'intermediate'])

    const catalogOf = async () => (await getJson(page)).body.catalog as { endpoint?: string; error?: string }
    const found = async () => (await catalogOf()).endpoint != null
    await waitFor('web to find the catalog', found, { timeout: 30_000 })
    const up = await getJson(page)
    expect(up.status).toBe(200)
    expect(up.body).toEqual({
      app: 'educa',
      version: '1.1',
      node: 'node-a',
      title: 'Educa',
      greeting: 'Welcome to Educa 1.1: now with course levels',
      theme: 'ocean',
      catalog: {
        node: 'node-a',
        version: '1.1',
        courses: [
          'Peer-to-peer networks',
          'Gossip protocols',
          'Failure detection with SWIM',
          'Rolling upgrades',
        ],
        endpoint: catalogEndpoint,
      },
    })

    // Changes arrive on the events stream: no endpoints, no catalog, though it still runs.
    api.publish([])
    await waitFor('web to see no catalog', async () => (await catalogOf()).error === 'unavailable')
    // After the stream drops, web reconnects; a dead first endpoint falls back to the next one.
    const dead = `http://127.0.0.1:${await freePort()}`
    api.drop([dead, catalogEndpoint])
    const fellBack = async () => (await catalogOf()).endpoint === catalogEndpoint
    await waitFor('web to reconnect and fall back', fellBack, { timeout: 30_000 })

    catalog.child.kill('SIGTERM')
    expect(await catalog.exit).toBe(0)
    const down = await getJson(page)
    expect(down.status).toBe(200)
    expect(down.body).toMatchObject({ app: 'educa', version: '1.1', catalog: { error: 'unavailable' } })

    // The open events stream must not keep web from stopping cleanly.
    web.child.kill('SIGTERM')
    expect(await web.exit, web.stderr()).toBe(0)
  })

  it('runs 1.0 without an agent API or config: defaults and no catalog', async () => {
    const webDir = await unpack(built['1.0'], 'web')
    const port = await freePort()
    const web = runComponent(webDir, port, {})
    const front = () => getJson(`http://127.0.0.1:${port}/`)
    const answer = await waitFor('web 1.0 front page', front, { timeout: 30_000 })
    expect(answer).toEqual({
      status: 200,
      body: {
        app: 'educa',
        version: '1.0',
        node: null,
        title: 'Educa',
        greeting: 'Welcome to Educa',
        catalog: { error: 'unavailable' },
      },
    })
    web.child.kill('SIGTERM')
    expect(await web.exit).toBe(0)
  })
})
