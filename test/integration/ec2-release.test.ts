import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2'
import { createAdaptorServer } from '@hono/node-server'
import { mockClient } from 'aws-sdk-client-mock'
import { extract, list } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ApiBackend, createApiApp, TokenTable } from '../../src/api/index.js'
import { CLOUD_INIT_PATHS } from '../../src/providers/cloud-init.js'
import { Ec2Provider } from '../../src/providers/ec2.js'
import { LaunchRecords, NodeOperations, type NodeSpec, Releases } from '../../src/providers/index.js'
import { silentLogger } from '../../src/shared/logger.js'

/**
 * The install step of a node launched on EC2, for real but without AWS: the ec2
 * provider (EC2 mocked) renders the user-data; its fetch-release.sh runs with the
 * real curl and sha256sum against the launcher's real API route on loopback, and
 * the downloaded tarball is unpacked and checked. Expired and altered URLs are
 * refused with their error codes. The clock URLs expire by is a variable here.
 */

const run = promisify(execFile)
const ec2 = mockClient(EC2Client)
const VERSION = '7.8.9-test'
const HOUR = 60 * 60_000

let dir: string
let root: string
let server: Server
let base: string
let clock = Date.parse('2030-01-01T00:00:00Z')
let releases: Releases
let userData: string

/** The content of a literal-block (`content: |`) file in a rendered cloud-config. */
function literalFile(doc: string, path: string): string {
  const lines = doc.split('\n')
  const start = lines.indexOf(`  - path: ${path}`)
  expect(start).toBeGreaterThanOrEqual(0)
  const contentAt = lines.indexOf('    content: |', start)
  const out: string[] = []
  for (const line of lines.slice(contentAt + 1)) {
    if (line !== '' && !line.startsWith('      ')) break
    out.push(line.slice(6))
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`
}

async function writeTree(base: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(base, path, '..'), { recursive: true })
    await writeFile(join(base, path), content)
  }
}

/** Runs fetch-release.sh (as install.sh does) into a fresh folder; never throws. */
async function fetchRelease(
  script: string,
): Promise<{ code: number; stdout: string; stderr: string; dest: string }> {
  const dest = await mkdtemp(join(dir, 'dest-'))
  const file = join(dest, 'fetch-release.sh')
  await writeFile(file, script)
  await chmod(file, 0o700)
  try {
    const { stdout, stderr } = await run('bash', [file, dest], { env: { PATH: '/usr/bin:/bin' } })
    return { code: 0, stdout, stderr, dest }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, dest }
  }
}

/** The release URL in a fetch script, and the script with another URL. */
function urlIn(script: string): string {
  const match = /'(http:\/\/[^']+\/releases\/[^']+)'/.exec(script)
  expect(match).not.toBeNull()
  return match![1]!
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-release-'))
  root = join(dir, 'pkg')
  // An installed package as npm leaves it: what `files` lists, and what must not travel.
  await writeTree(root, {
    'package.json': JSON.stringify({
      name: 'shoal',
      version: VERSION,
      bin: { shoal: 'dist/src/cli/main.js' },
      files: ['dist', 'dashboard', 'examples/educa/build.mjs'],
    }),
    'README.md': '# Shoal\n',
    'dist/src/cli/main.js': '#!/usr/bin/env node\nconsole.log("shoal")\n',
    'dist/src/shared/version.js': 'export const VERSION = "x"\n',
    'dist/.DS_Store': 'junk',
    'dashboard/index.html': '<!doctype html>\n',
    'examples/educa/build.mjs': 'export {}\n',
    'examples/educa/notes.txt': 'not listed\n',
    'node_modules/dep/index.js': 'not packed\n',
    'src/secret-draft.ts': 'not listed\n',
  })
  releases = new Releases({
    cacheDir: join(dir, 'data', 'releases'),
    packageRoot: root,
    urlTtlMs: HOUR,
    now: () => clock,
  })
  // The agent's API app with tokens configured: the release route needs none of them.
  const backend: { nodeOps?: NodeOperations } = {}
  const app = createApiApp(
    backend as ApiBackend,
    new TokenTable([{ token: 'a'.repeat(32), name: 'ops', role: 'admin' }]),
    silentLogger,
  )
  server = createAdaptorServer({ fetch: app.fetch }) as Server
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0new' }] })
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: [{ InstanceId: 'i-0new', State: { Name: 'running' } }] }],
  })
  const provider = new Ec2Provider(
    {
      region: 'eu-west-1',
      imageId: 'ami-1',
      instanceType: 't3.small',
      launchedBy: '12D3KooWLauncher',
      pollMs: 2,
      startTimeoutMs: 10_000,
      releases,
      releaseUrl: base,
    },
    silentLogger,
    new EC2Client({ region: 'eu-west-1' }),
  )
  const records = new LaunchRecords({ get: async () => undefined, put: async () => {}, async *values() {} })
  // The route reaches the release through the agent's node operations, as in a running agent.
  backend.nodeOps = new NodeOperations(
    {
      self: '12D3KooWLauncher',
      baseSpec: {
        cluster: 'prod',
        secretFile: null,
        trust: [],
        preset: 'cloud',
        mdns: false,
        tokensFile: null,
      },
      defaultProvider: 'ec2',
      readyTimeoutMs: 1000,
      leaveTimeoutMs: 1000,
    },
    {
      members: () => [],
      selfAddrs: () => [],
      targetFor: () => null,
      providers: new Map([['ec2', provider]]),
      records,
      retire: async () => {},
      logger: silentLogger,
    },
  )
  const spec: NodeSpec = {
    cluster: 'prod',
    secretFile: null,
    trust: [],
    bootstrap: [],
    roles: [],
    tags: {},
    preset: 'cloud',
    mdns: false,
    tokensFile: null,
  }
  const steps: string[] = []
  await provider.launch(spec, (s) => steps.push(s))
  expect(steps[0]).toMatch(
    new RegExp(
      `^instances download Shoal ${VERSION.replaceAll('.', '\\.')} \\(sha256 [0-9a-f]{12}…\\) from ${base}`,
    ),
  )
  const call = ec2.commandCalls(RunInstancesCommand).at(-1)!
  userData = Buffer.from(call.args[0].input.UserData!, 'base64').toString('utf8')
})

afterAll(async () => {
  ec2.restore()
  await new Promise<void>((resolve) => (server == null ? resolve() : server.close(() => resolve())))
  await rm(dir, { recursive: true, force: true })
})

describe('a node launched on ec2 installs Shoal from its launcher', () => {
  it('downloads the release over the real API route, checks its sha256, and gets the package npm pack would make', async () => {
    const script = literalFile(userData, CLOUD_INIT_PATHS.fetchRelease)
    expect(urlIn(script).startsWith(`${base}/releases/`)).toBe(true)
    const res = await fetchRelease(script)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    const file = res.stdout.trim()
    expect(file).toBe(join(res.dest, `shoal-${VERSION}.tgz`))
    const bytes = await readFile(file)
    const served = await releases.current()
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(served.sha256)
    expect(script).toContain(served.sha256)

    const out = join(res.dest, 'x')
    await mkdir(out)
    await extract({ file, cwd: out })
    expect(await readdir(out)).toEqual(['package'])
    const pkg = JSON.parse(await readFile(join(out, 'package', 'package.json'), 'utf8'))
    expect(pkg).toMatchObject({ name: 'shoal', version: VERSION })
    expect(await readFile(join(out, 'package', 'dist/src/cli/main.js'), 'utf8')).toContain('shoal')
    const listed = async (p: string) => (await readdir(join(out, 'package', p))).sort()
    expect(await listed('.')).toEqual(['README.md', 'dashboard', 'dist', 'examples', 'package.json'])
    expect(await listed('dist')).toEqual(['src'])
    expect(await listed('examples/educa')).toEqual(['build.mjs'])

    // install.sh runs exactly this script, then installs the file it printed.
    const install = literalFile(userData, CLOUD_INIT_PATHS.install)
    expect(install).toContain(`release=$(bash ${CLOUD_INIT_PATHS.fetchRelease} "$release_dir")`)
    expect(install).toContain('npm install -g --no-fund --no-audit "$release"')
    expect(install).toContain(`!= '${VERSION}' ]`)
    expect(install).not.toContain('shoal@')
  })

  it('refuses an altered URL with ERR_RELEASE_URL_SIGNATURE, and the script installs nothing', async () => {
    const script = literalFile(userData, CLOUD_INIT_PATHS.fetchRelease)
    const url = urlIn(script)
    const token = url.slice(url.lastIndexOf('/') + 1)
    const [expires, sha, mac] = token.split('.') as [string, string, string]
    const forged = [
      `${Number(expires) + 86_400}.${sha}.${mac}`, // a later expiry
      `${expires}.${'0'.repeat(64)}.${mac}`, // another file
      `${expires}.${sha}.${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BA' : 'AA'}`, // another signature
      'not-a-token',
    ]
    for (const t of forged) {
      const res = await fetch(`${base}/releases/${t}`)
      expect(res.status).toBe(403)
      expect((await res.json()) as unknown).toMatchObject({ error: { code: 'ERR_RELEASE_URL_SIGNATURE' } })
    }
    const res = await fetchRelease(script.replace(url, `${base}/releases/${forged[0]}`))
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/HTTP 403\).*ERR_RELEASE_URL_SIGNATURE/)
    expect(await readdir(res.dest)).toEqual(['fetch-release.sh'])
  })

  it('refuses a file whose sha256 differs from the one in the user-data', async () => {
    const script = literalFile(userData, CLOUD_INIT_PATHS.fetchRelease)
    const { sha256 } = await releases.current()
    // The release server answers; the hash the user-data expects is another.
    const res = await fetchRelease(script.replace(`expected='${sha256}'`, `expected='${'f'.repeat(64)}'`))
    expect(res.code).toBe(1)
    expect(res.stderr).toContain(`has sha256 ${sha256}, not ${'f'.repeat(64)}`)
    expect(await readdir(res.dest)).toEqual(['fetch-release.sh'])
  })

  it('refuses the URL with ERR_RELEASE_URL_EXPIRED once its time is up', async () => {
    const script = literalFile(userData, CLOUD_INIT_PATHS.fetchRelease)
    const saved = clock
    try {
      clock += HOUR - 2_000
      expect((await fetch(urlIn(script), { method: 'HEAD' })).status).toBe(200)
      clock += 2_000
      const direct = await fetch(urlIn(script))
      expect(direct.status).toBe(410)
      expect((await direct.json()) as unknown).toMatchObject({ error: { code: 'ERR_RELEASE_URL_EXPIRED' } })
      const res = await fetchRelease(script)
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(/HTTP 410\).*ERR_RELEASE_URL_EXPIRED/)
      expect(await readdir(res.dest)).toEqual(['fetch-release.sh'])
    } finally {
      clock = saved
    }
  })
})

describe("the launcher's release", () => {
  it('packs this checkout with the files npm pack would (needs the build, as the test command does first)', async () => {
    const here = fileURLToPath(new URL('../../', import.meta.url))
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: here })
    const expected = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map(
      (f) => f.path,
    )
    const release = await new Releases({
      cacheDir: join(dir, 'checkout'),
      packageRoot: here,
      urlTtlMs: HOUR,
    }).current()
    const names: string[] = []
    await list({ file: release.path, onReadEntry: (entry) => names.push(entry.path) })
    expect(names.map((n) => n.replace(/^package\//, '')).sort()).toEqual(expected.sort())
    expect(names).toContain('package/dist/src/cli/main.js')
  })
})
