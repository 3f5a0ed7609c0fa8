import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeNewSecret } from '../../src/bootstrap/index.js'
import { freePort } from '../../src/shared/ports.js'
import { makeDistributionDir, makeKey } from '../helpers/distribution.js'
import { type AgentProcess, CLI, runCli, spawnAgent } from '../helpers/processes.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'
import { filesUnder, leaks, privateKeyForms, type Secret, swarmKeyForms } from './helpers/secrets.js'

const token = () => randomBytes(24).toString('hex')
const TOKENS = { viewer: token(), developer: token(), operator: token(), admin: token() }
/** Tokens a client sends by mistake: a real one with a typo, and one cut short. */
const WRONG = [`${TOKENS.admin}x`, TOKENS.developer.slice(0, 30)]

const noCli = skipReason(
  import.meta.url,
  'secrets and tokens stay out of logs',
  existsSync(CLI) ? null : `${CLI} is missing (run npm run build)`,
)

describe.skipIf(noCli != null)('secrets and tokens stay out of logs and answers', () => {
  let dir: string
  let agent: AgentProcess | undefined
  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('a debug-level agent that used the secret, every token and a publisher key shows none of them anywhere', async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-leaks-'))
    const data = join(dir, 'data')
    const secretFile = join(dir, 'cluster.secret')
    await writeNewSecret(secretFile)
    const tokensFile = join(dir, 'tokens.json')
    await writeFile(
      tokensFile,
      JSON.stringify({
        tokens: Object.entries(TOKENS).map(([role, value]) => ({
          token: value,
          role,
          name: `${role}-holder`,
        })),
      }),
      { mode: 0o600 },
    )
    const keys = await makeKey(dir)
    const pem = await readFile(keys.key, 'utf8')
    const secrets: Secret[] = [
      swarmKeyForms('the cluster secret', await readFile(secretFile)),
      privateKeyForms('the publisher key', pem),
      ...Object.entries(TOKENS).map(([role, value]) => ({ name: `the ${role} token`, forms: [value] })),
      ...WRONG.map((value, i) => ({ name: `wrong token ${i}`, forms: [value] })),
    ]

    agent = await spawnAgent(
      [
        '--cluster',
        'leaks',
        '--data',
        data,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--api',
        `127.0.0.1:${await freePort()}`,
        '--secret-file',
        secretFile,
        '--tokens',
        tokensFile,
        '--trust',
        keys.pub,
        '--no-mdns',
        '--preset',
        'test',
        '--log-level',
        'debug',
      ],
      dir,
    )
    let stdout = JSON.stringify(agent.info)
    agent.child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8')
    })
    const api = agent.info.api
    const call = async (method: string, path: string, bearer?: string, body?: string | FormData) => {
      const response = await fetch(`${api}${path}`, {
        method,
        headers: bearer == null ? {} : { authorization: `Bearer ${bearer}` },
        ...(body == null ? {} : { body }),
      })
      return { status: response.status, text: await response.text() }
    }
    const answers: Array<[string, string]> = []
    const keep = async (what: string, answer: Promise<{ status: number; text: string }>, status: number) => {
      const { status: got, text } = await answer
      expect([what, got]).toEqual([what, status])
      answers.push([what, text])
    }

    // Refused attempts: no token, wrong tokens, wrong roles.
    await keep('no token', call('GET', '/api/status'), 401)
    for (const wrong of WRONG) await keep('a wrong token', call('GET', '/api/members', wrong), 401)
    await keep('a viewer rolling out', call('POST', '/api/rollouts', TOKENS.viewer, '{}'), 403)
    await keep('a developer adding nodes', call('POST', '/api/nodes', TOKENS.developer, '{}'), 403)
    await keep('an operator publishing', call('POST', '/api/distributions', TOKENS.operator, '{}'), 403)

    // Publishing: with the CLI (the key stays with the client), then through the
    // dashboard's form (the key travels to the agent), then the form with a broken key.
    const content = await makeDistributionDir(join(dir, 'app'), { 'app.bin': 5000 })
    const cli = await runCli(
      ['publish', content, '--name', 'app', '--version', '1.0', '--key', keys.key, '--api', api, '--json'],
      { SHOAL_TOKEN: TOKENS.developer },
    )
    expect(cli.code).toBe(0)
    const form = (key: string, version: string) => {
      const body = new FormData()
      body.set('name', 'app')
      body.set('version', version)
      body.set('key', new Blob([key]), 'publisher.key')
      body.append('file', new Blob([randomBytes(3000)]), 'app.bin')
      return body
    }
    await keep('the publish form', call('POST', '/api/publish', TOKENS.developer, form(pem, '1.1')), 201)
    // The DER header spoiled, the key bits intact: an echo of it would leak them too.
    const broken = pem.replace('\nMC4C', '\nXXXX')
    expect(broken).not.toBe(pem)
    secrets.push({ name: 'the broken key', forms: [broken.split('\n')[1]!] })
    await keep(
      'the form with a broken key',
      call('POST', '/api/publish', TOKENS.admin, form(broken, '1.2')),
      400,
    )
    await keep(
      'a rollout',
      call('POST', '/api/rollouts', TOKENS.admin, JSON.stringify({ distribution: 'app@1.1' })),
      202,
    )
    await waitFor('the rollout to finish', async () => {
      const status = JSON.parse((await call('GET', '/api/status', TOKENS.viewer)).text) as {
        distribution: string | null
      }
      return status.distribution === 'app@1.1'
    })

    // Everything a user or a scraper can read.
    for (const path of [
      '/api/status',
      '/api/members',
      '/api/distributions',
      '/api/rollouts',
      '/api/manager',
      '/api/audit',
      '/api/nodes',
    ])
      await keep(`GET ${path}`, call('GET', path, TOKENS.viewer), 200)
    await keep('GET /metrics', call('GET', '/metrics'), 200)
    const events = await fetch(`${api}/api/events`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
      signal: AbortSignal.timeout(5_000),
    })
    const reader = events.body!.getReader()
    let snapshot = ''
    while (!snapshot.includes('\n\n')) snapshot += new TextDecoder().decode((await reader.read()).value)
    await reader.cancel()
    answers.push(['the event stream', snapshot])
    const reads = [['status', '--json'], ['members', '--json'], ['status']]
    const results = await Promise.all(
      reads.map((args) => runCli([...args, '--api', api], { SHOAL_TOKEN: TOKENS.viewer })),
    )
    for (const [i, result] of results.entries()) {
      expect(result.code).toBe(0)
      answers.push([`shoal ${reads[i]!.join(' ')}`, result.stdout + result.stderr])
    }
    answers.push(['shoal publish', cli.stdout + cli.stderr])

    expect(await agent.stop('SIGTERM')).toBe(0)
    // spawnAgent writes the agent's stderr to DIR/agent-1.log (numbered per test file).
    const stderr = await readFile(join(dir, 'agent-1.log'), 'utf8')
    // The grep is not vacuous: the log is at debug level and saw the work above.
    expect(stderr).toMatch(/DEBUG/)
    expect(stderr).toMatch(/distribution published.*app@1\.0/)
    expect(answers.find(([what]) => what === 'GET /api/status')![1]).toContain(secretFile)

    const found = [
      ...leaks('stdout', stdout, secrets),
      ...leaks('stderr', stderr, secrets),
      ...answers.flatMap(([what, text]) => leaks(what, text, secrets)),
    ]
    // The data folder: logs, state, blobs, everything but the node's own libp2p key.
    for (const [path, text] of await filesUnder(data, (p) => p === 'peer.key'))
      found.push(...leaks(path, text, secrets))
    expect(found).toEqual([])
  })
})
